"""The ToyFaces attribute network: shapes, caching, and a Frechet distance that notices damage."""
import pytest
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from course_lib import feature_net as fn
from course_lib.feature_net import AttributeNet, FeatureNetConfig, feature_net_history, load_feature_net
from course_lib.metrics import corrupt_images, domain_frechet, frechet_distance
from course_lib.toyfaces import ATTRIBUTES, ToyFaces

TINY = FeatureNetConfig(image_size=16, width=8, feature_dim=32, train_size=512, val_size=256, steps=60,
                        batch_size=32, lr=5e-3)


@pytest.fixture(scope="module")
def tiny_net(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("COURSE_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("COURSE_PROGRESS", "none")
    fn._LOADED.clear()
    net = load_feature_net(16, config=TINY, device="cpu")
    yield net
    mp.undo()


def test_shapes_and_inputs():
    net = AttributeNet(image_size=16, width=8, feature_dim=24).eval()
    x8 = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)  # other size, uint8
    assert net(x8).shape == (5, 24) and (net(x8) >= 0).all()
    assert net.logits(torch.rand(5, 1, 16, 16)).shape == (5, sum(a.num_classes for a in ATTRIBUTES))
    assert net.predict_attributes(x8).shape == (5, len(ATTRIBUTES))
    assert net.features(x8, batch_size=2).shape == (5, 24)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(5, 4, 16, 16))
    with pytest.raises(ValueError, match="multiple of 8"):
        AttributeNet(image_size=20)


def test_config_for_profiles():
    assert FeatureNetConfig.for_profile("cpu").image_size == 32
    assert FeatureNetConfig.for_profile("gpu").image_size == 64
    assert FeatureNetConfig.for_profile("smoke", image_size=32).image_size == 32


def test_trains_learns_and_caches(tiny_net, monkeypatch):
    last = feature_net_history(tiny_net)[-1]
    # after 60 tiny steps: the hat (25% of faces) is easy (chance 0.75)
    assert last["val_acc/hat"] > 0.85 and last["val_acc_mean"] > 0.35
    first_loss = feature_net_history(tiny_net)[0]["loss"]
    assert feature_net_history(tiny_net)[-2]["loss"] < first_loss
    assert load_feature_net(16, config=TINY, device="cpu") is tiny_net  # in-process memo
    fn._LOADED.clear()

    def no_training(*args, **kwargs):
        raise AssertionError("should have loaded from the cache")
    monkeypatch.setattr(fn, "train_feature_net", no_training)
    again = load_feature_net(16, config=TINY, device="cpu")
    x = torch.rand(4, 3, 16, 16)
    assert torch.allclose(again(x), tiny_net(x))


def test_torchmetrics_fid_with_our_net_agrees(tiny_net):
    a = ToyFaces(split="val", size=64, image_size=16, seed=1).images
    b = corrupt_images(a, kind="noise", strength=0.1).mul(255).round().to(torch.uint8)
    fid = FrechetInceptionDistance(feature=tiny_net)  # uint8 in, features out: works offline
    fid.update(a, real=True)
    fid.update(b, real=False)
    ours = frechet_distance(tiny_net.features(a), tiny_net.features(b))
    assert ours == pytest.approx(float(fid.compute()), rel=1e-3)


@pytest.mark.parametrize("kind,strengths", [("noise", [0.0, 0.1, 0.25, 0.5]),
                                            ("blur", [0.0, 0.8, 1.6, 3.2]),
                                            ("shuffle", [0.0, 0.25, 0.5, 1.0])])
def test_domain_frechet_grows_with_corruption(tiny_net, kind, strengths):
    real = ToyFaces(split="test", size=200, image_size=16, seed=0).images
    other = ToyFaces(split="val", size=200, image_size=16, seed=0).images
    # the same faces, damaged more and more: the distance must grow strictly from 0
    values = [domain_frechet(real, corrupt_images(real, kind=kind, strength=s), n=200, net=tiny_net)
              for s in strengths]
    assert values[0] == pytest.approx(0.0, abs=1e-6)
    assert all(a < b for a, b in zip(values, values[1:])), values
    # and strong damage stands out above the sampling floor of two clean sets of n=200
    floor = domain_frechet(real, other, n=200, net=tiny_net)
    damaged = domain_frechet(real, corrupt_images(other, kind=kind, strength=strengths[-1]), n=200, net=tiny_net)
    assert damaged > 2 * floor, (floor, damaged)


def test_sanity_report_lists_accuracy_and_each_damage(tiny_net, monkeypatch):
    """``python -m course_lib.metrics``: the report lives beside the metrics it checks."""
    from course_lib import metrics
    net = load_feature_net(16, config=TINY, device="cpu")  # tiny_net, from the cache or the memo
    monkeypatch.setattr(metrics, "load_feature_net", lambda image_size=None: net)
    lines = metrics.sanity_report(16, n=64).splitlines()
    mean_acc = feature_net_history(net)[-1]["val_acc_mean"]
    assert lines[0].endswith(f"mean validation accuracy {mean_acc:.3f} over {len(ATTRIBUTES)} attributes")
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:]}
    assert set(rows) == {"noise", "blur", "shuffle"} and all(len(v) == 8 for v in rows.values())
    noise = [float(v) for v in rows["noise"][1::2]]
    assert noise[-1] > noise[0], noise   # std 0.2 noise moves the distance above the clean floor
