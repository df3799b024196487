"""Device/precision selection (CUDA and MPS mocked), seeding, the on-device loader."""
from pathlib import Path

import pytest
import torch

from course_lib import device as device_mod
from course_lib.runtime import DeviceLoader, autocast, get_device, runtime, seed_everything
from tests.script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_hw(monkeypatch):
    """Pretend to have (or not have) CUDA / bf16 / MPS, without touching real hardware."""
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.delenv("COURSE_AMP", raising=False)
    monkeypatch.delenv("COURSE_CHANNELS_LAST", raising=False)
    monkeypatch.delenv("COURSE_COMPILE", raising=False)

    def set_hw(*, cuda=False, bf16=True, mps=False):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(device_mod, "_mps_available", lambda: mps)
    return set_hw


def test_device_order_cuda_then_mps_then_cpu(fake_hw):
    fake_hw(cuda=True, mps=True)
    assert get_device().type == "cuda"
    fake_hw(cuda=False, mps=True)
    assert get_device().type == "mps"
    fake_hw(cuda=False, mps=False)
    assert get_device().type == "cpu"


def test_device_override_by_argument_and_env(fake_hw, monkeypatch):
    fake_hw(cuda=True)
    assert get_device("cpu").type == "cpu"
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device().type == "cpu"
    assert get_device("cuda:0") == torch.device("cuda:0")  # argument beats env


def test_unavailable_device_is_a_clear_error(fake_hw):
    fake_hw(cuda=False, mps=False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        get_device("cuda")
    with pytest.raises(RuntimeError, match="MPS is not available"):
        get_device("mps")


def test_precision_per_device(fake_hw):
    fake_hw(cuda=True, bf16=True)
    plan = runtime()
    assert (plan.precision, plan.use_scaler, plan.channels_last, plan.compile) == ("bf16", False, True, False)
    fake_hw(cuda=True, bf16=False)  # e.g. a T4 or V100: fp16 needs a GradScaler
    plan = runtime()
    assert (plan.precision, plan.use_scaler) == ("fp16", True)
    fake_hw(cuda=False, mps=True)
    assert runtime().precision == "fp32"
    fake_hw(cuda=False, mps=False)
    plan = runtime()
    assert (plan.precision, plan.channels_last, plan.compile) == ("fp32", False, False)  # never bf16 on CPU


def test_precision_overrides(fake_hw, monkeypatch):
    fake_hw(cuda=False)
    assert runtime(amp="bf16").precision == "bf16"  # allowed when asked for explicitly
    with pytest.raises(ValueError, match="fp16 autocast is not supported on CPU"):
        runtime(amp="fp16")
    monkeypatch.setenv("COURSE_AMP", "fp64")
    with pytest.raises(ValueError, match=r"COURSE_AMP\) must be one of auto, off, bf16, fp16"):
        runtime()
    for documented in ("off", "auto", "bf16"):  # the values README lists (fp16 needs a GPU)
        monkeypatch.setenv("COURSE_AMP", documented)
        assert runtime().precision == ("bf16" if documented == "bf16" else "fp32")
    monkeypatch.setenv("COURSE_AMP", "fp32")
    monkeypatch.setenv("COURSE_CHANNELS_LAST", "1")
    monkeypatch.setenv("COURSE_COMPILE", "0")
    plan = runtime()
    assert plan.channels_last and not plan.compile
    monkeypatch.setenv("COURSE_CHANNELS_LAST", "maybe")
    with pytest.raises(ValueError, match="COURSE_CHANNELS_LAST"):
        runtime()


def test_autocast_is_noop_in_fp32_and_scaler_disabled(fake_hw):
    fake_hw(cuda=False)
    plan = runtime()
    lin = torch.nn.Linear(4, 2)
    with autocast(plan):
        assert lin(torch.randn(3, 4)).dtype == torch.float32
    assert not plan.grad_scaler().is_enabled()
    model = plan.prepare(torch.nn.Conv2d(3, 4, 3))
    assert next(model.parameters()).device.type == "cpu"
    assert "cpu, fp32" in plan.describe()


def test_seed_everything_repeats():
    seed_everything(3)
    a = (torch.randn(5), __import__("numpy").random.rand(3), __import__("random").random())
    seed_everything(3)
    b = (torch.randn(5), __import__("numpy").random.rand(3), __import__("random").random())
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2]
    with pytest.raises(ValueError):
        seed_everything(-1)


def _data(n=10):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    labels = torch.arange(n)
    return images, labels


def test_device_loader_batches_are_float_and_aligned():
    images, labels = _data(10)
    loader = DeviceLoader(images * 25, labels, batch_size=4, device="cpu", seed=1)
    assert len(loader) == 2  # drop_last
    batches = list(loader)
    assert len(batches) == 2
    x, y = batches[0]
    assert x.dtype == torch.float32 and x.shape == (4, 3, 4, 4)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert torch.allclose(x[:, 0, 0, 0], y.float() * 25 / 255)  # labels follow their images


def test_device_loader_epochs_cover_everything_in_new_orders():
    images, labels = _data(10)
    loader = DeviceLoader(images, labels, batch_size=4, device="cpu", drop_last=False, seed=0)
    assert len(loader) == 3
    e0 = torch.cat([y for _, y in loader])
    e1 = torch.cat([y for _, y in loader])
    assert sorted(e0.tolist()) == list(range(10)) == sorted(e1.tolist())
    assert not torch.equal(e0, e1)  # reshuffled each epoch
    assert torch.equal(DeviceLoader(images, batch_size=10, device="cpu", shuffle=False).order(0),
                       torch.arange(10))


def test_device_loader_can_start_at_any_step():
    images, labels = _data(12)
    loader = DeviceLoader(images, labels, batch_size=4, device="cpu", seed=5)
    stream = loader.batches(0)
    full = [next(stream)[1] for _ in range(8)]  # two epochs and a bit
    stream = loader.batches(5)
    late = [next(stream)[1] for _ in range(3)]
    for a, b in zip(full[5:], late):
        assert torch.equal(a, b)


def test_device_loader_rejects_bad_input():
    images, labels = _data(10)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        DeviceLoader(images[0], batch_size=2, device="cpu")
    with pytest.raises(ValueError, match="labels has 9 rows"):
        DeviceLoader(images, labels[:9], batch_size=2, device="cpu")
    with pytest.raises(ValueError, match="larger than the data set"):
        DeviceLoader(images, batch_size=11, device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        DeviceLoader(images.int(), batch_size=2, device="cpu")


def test_require_idle_refuses_a_busy_machine_unless_forced(monkeypatch):
    """bench/idle.py, which `make execute` runs before each chapter and chapter_times.py imports."""
    import os

    idle = load_script("bench/idle.py", name="idle")
    require_idle = idle.require_idle
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.5, 1.0, 1.0))
    with pytest.raises(SystemExit, match="above 1 per core"):
        require_idle()
    assert require_idle(force=True) == 2.5
    monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 1.0, 1.0))
    assert require_idle() == 1.9
