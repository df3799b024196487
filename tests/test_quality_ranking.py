"""course_lib.quality_ranking: the sample-quality table ranked, and only real ranks claimed."""
import copy

import pytest

from course_lib.quality_ranking import ranking, ranking_finding
from course_lib.results import sample_quality


def _table(values):
    return {"profile": "test", "models": {name: {"frechet": {"mean": sum(v) / len(v), "std": 1.0, "values": v}}
                                          for name, v in values.items()}}


def test_ranking_orders_by_the_mean():
    table = _table({"a": [50.0, 51.0, 52.0], "b": [10.0, 11.0, 12.0], "c": [30.0, 31.0, 29.0]})
    assert [r[0] for r in ranking(table)] == ["b", "c", "a"]
    assert [r[0] for r in ranking(table, lower_is_better=False)] == ["a", "c", "b"]
    with pytest.raises(KeyError, match="no models"):
        ranking(table, names=["d"])


def test_the_finding_claims_a_lead_only_when_the_seeds_establish_it():
    clear = ranking_finding(_table({"a": [50.0, 51.0, 52.0], "b": [10.0, 11.0, 12.0]}), focus=["a"])
    assert clear.startswith("Lowest Frechet distance of the 2 models: b") and "Clearly ahead of every other" in clear
    assert "a ranks 2 of 2" in clear
    tied = ranking_finding(_table({"a": [10.0, 14.0, 12.5], "b": [10.0, 11.0, 12.0], "c": [90.0, 91.0, 92.0]}))
    assert "Not clearly ahead of a" in tied and "the lead is not established" in tied
    assert "clearly ahead of the rest" in tied


def test_the_committed_table_names_its_leader_from_the_numbers():
    table = copy.deepcopy(sample_quality("cpu"))
    best = min(table["models"], key=lambda n: table["models"][n]["frechet"]["mean"])
    assert f"models: {best} (" in ranking_finding(table, focus=["ddpm_reference"])
