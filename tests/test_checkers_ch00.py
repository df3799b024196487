"""The chapter-00 checker passes the reference and fails the stub and wrong answers."""
import pytest
import torch

from course_lib.checkers import ExerciseError
from course_lib.checkers.ch00 import check_to_unit_range

from exercise_stub import stub


def test_reference_passes(capsys):
    check_to_unit_range(lambda x: x.to(torch.float32) / 255.0)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong,message",
    [
        (stub, "not implemented"),
        (lambda x: x.float(), "divide by 255"),
        (lambda x: x.float() / 256, "not 256"),
        (lambda x: x // 255, "dtype"),
        (lambda x: x.float().mean(dim=1) / 255, "shape"),
        (lambda x: x.div_(255), "in-place division"),  # uint8 in-place div crashes: say why
        (lambda x: (x.float() / 255).flip(0), "differ"),
        # NumPy's / 255.0 gives float64, which the float32 networks refuse later
        (lambda x: torch.from_numpy(x.numpy() / 255.0), "dtype torch.float64; the networks"),
        (lambda x: x.double() / 255, "dtype torch.float64"),
    ],
)
def test_wrong_answers_fail_with_a_useful_message(wrong, message):
    with pytest.raises(ExerciseError) as err:
        check_to_unit_range(wrong)
    assert message in str(err.value)


@pytest.mark.parametrize("wrong, message", [
    (lambda x: (x.float() - x.min()) / (x.max() - x.min()), "batch's own min and max"),
    (lambda x: x.float() / x.max(), "divided by the batch's maximum"),
    (lambda x: x.float() / x.float().amax((1, 2, 3), keepdim=True), "Divide by 255"),
])
def test_rescaling_by_the_batch_fails_on_images_without_0_and_255(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_to_unit_range(wrong)
