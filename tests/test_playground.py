"""The GAN playground trains headless and counts modes correctly."""
import numpy as np
import pytest
import torch

from course_lib import playground as pg


def _blobs(centers, counts, std=0.03, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([c + std * rng.standard_normal((n, 2)) for c, n in zip(centers, counts)])


def test_modes_covered_counts_synthetic_sets():
    c = pg.ring_centers()
    assert pg.modes_covered(_blobs(c, [100] * 8), c) == 8
    assert pg.modes_covered(_blobs(c[:3], [100] * 3), c) == 3
    assert pg.modes_covered(c[:1] + 10.0, c) == 0                     # far from every mode
    # one mode holding 1% of the points is below the 2% threshold: not covered
    assert pg.modes_covered(_blobs(c[:2], [990, 10]), c) == 1
    assert pg.modes_covered(np.zeros((0, 2)), c) == 0
    assert pg.high_quality_fraction(_blobs(c, [10] * 8), c) == 1.0


@pytest.mark.parametrize("kind", pg.DATASETS)
def test_sample_data(kind):
    x = pg.sample_data(kind, 500, generator=torch.Generator().manual_seed(0))
    assert x.shape == (500, 2) and x.abs().max() < 3
    if kind == "ring":
        assert pg.modes_covered(x.numpy(), pg.ring_centers()) == 8
    with pytest.raises(ValueError):
        pg.sample_data("swissroll", 3)


@pytest.mark.parametrize("loss", ["ns", "wgan-clip", "wgan-gp"])
def test_train_runs_headless_and_returns_snapshots(loss):
    cfg = pg.PlaygroundConfig(loss=loss, steps=12, snapshots=3, width=16, batch_size=32, eval_points=200, grid=8)
    run = pg.train(cfg)
    assert [s.step for s in run.snapshots] == [0, 4, 8, 12]
    assert run.final.points.shape == (200, 2) and np.isfinite(run.final.points).all()
    assert run.final.surface.shape == (8, 8)
    assert 0 <= run.final.modes <= 8
    assert len(run.history["g_loss"]) == 12
    if loss == "ns":
        assert run.final.surface.min() >= 0 and run.final.surface.max() <= 1   # probabilities


def test_plots_render_headless():
    import matplotlib
    matplotlib.use("Agg")
    run = pg.train(pg.PlaygroundConfig(data="moons", steps=4, snapshots=2, width=8, eval_points=50, grid=4))
    assert run.final.modes == -1                      # no modes for non-ring data
    fig = pg.plot_snapshots(run)
    assert len(fig.axes) == 3
    html = pg.animate(run).to_jshtml()
    assert "<script" in html


def test_bad_config():
    with pytest.raises(ValueError):
        pg.PlaygroundConfig(loss="hinge")
    with pytest.raises(ValueError):
        pg.PlaygroundConfig(data="circles")
