"""ToyFaces: shapes, ranges, determinism across processes, splits, overrides, cache, OOD."""
import subprocess
import sys

import pytest
import torch

from course_lib import toyfaces as tf
from course_lib.facedraw import MIRRORED, mirror_attributes
from course_lib.toyfaces import ATTRIBUTE_NAMES, ATTRIBUTES, ToyFaces


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))


def test_attributes_are_documented_data():
    assert len(ATTRIBUTES) >= 12
    kinds = {a.kind for a in ATTRIBUTES}
    assert kinds == {"binary", "categorical", "continuous"}
    for a in ATTRIBUTES:
        assert a.doc and a.num_classes >= 2
        if a.kind != "continuous":
            assert len(a.choices) == a.num_classes
    assert ToyFaces.ATTRIBUTE_NAMES == ATTRIBUTE_NAMES


@pytest.mark.parametrize("size", [16, 32, 64])
def test_shapes_and_ranges(size):
    ds = ToyFaces(split="train", size=12, image_size=size, cache=False)
    assert ds.images.shape == (12, 3, size, size) and ds.images.dtype == torch.uint8
    assert ds.attributes.shape == (12, len(ATTRIBUTES))
    assert ds.labels.shape == (12, len(ATTRIBUTES)) and ds.labels.dtype == torch.int64
    image, attrs = ds[3]
    assert image.shape == (3, size, size) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert torch.equal(attrs, ds.attributes[3])
    for j, a in enumerate(ATTRIBUTES):  # labels are valid classes
        assert 0 <= ds.labels[:, j].min() and ds.labels[:, j].max() < a.num_classes


def test_render_128_and_antialiasing():
    x = tf.render(tf.sample_attributes(2, 0), 128)
    assert x.shape == (2, 3, 128, 128)
    # Anti-aliased edges: many intermediate values, not just a handful of flat colours.
    assert len(torch.unique((x[0] * 255).round())) > 100


def test_deterministic_across_processes():
    ds = ToyFaces(split="val", size=6, image_size=32, seed=7, cache=False)
    code = ("import torch,sys; from course_lib.toyfaces import ToyFaces; "
            "ds=ToyFaces(split='val', size=6, image_size=32, seed=7, cache=False); "
            "sys.stdout.write(str(int(ds.images.long().sum())) + ' ' + "
            "str(float(ds.attributes.double().sum())))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    pix, att = out.stdout.split()
    assert int(pix) == int(ds.images.long().sum())
    assert float(att) == float(ds.attributes.double().sum())


def test_index_stream_is_prefix_stable():
    a = tf.sample_attributes(10, seed=3, split="train")
    b = tf.sample_attributes(4, seed=3, split="train", start=6)
    assert torch.equal(a[6:], b)


def test_splits_and_seeds_differ():
    tr = tf.sample_attributes(500, 0, split="train")
    va = tf.sample_attributes(500, 0, split="val")
    te = tf.sample_attributes(500, 0, split="test")
    other = tf.sample_attributes(500, 1, split="train")
    for x, y in [(tr, va), (tr, te), (va, te), (tr, other)]:
        # no attribute vector (continuous values included) occurs in both
        assert not (x[:, None, :] == y[None, :, :]).all(-1).any()


def test_attribute_distribution():
    a = tf.sample_attributes(4000, 0)
    labels = tf.attributes_to_labels(a)
    for j, att in enumerate(ATTRIBUTES):
        counts = torch.bincount(labels[:, j], minlength=att.num_classes).float() / len(a)
        if att.kind == "binary":
            assert abs(counts[1].item() - att.p) < 0.04, att.name
        else:  # uniform over classes
            assert (counts - 1 / att.num_classes).abs().max() < 0.04, att.name


def test_overrides_change_pixels():
    ds = ToyFaces(split="train", size=8, image_size=32, overrides={"smile": 1.0, "skin": "green"},
                  cache=False)
    assert (ds.column("smile") == 1.0).all()
    assert (ds.column("skin") == ATTRIBUTES[0].choices.__len__()).all()  # first OOD tone
    frown = ToyFaces(split="train", size=8, image_size=32, overrides={"smile": -1.0}, cache=False)
    assert (ds.images != frown.images).any()
    with pytest.raises(KeyError, match="unknown ToyFaces attribute"):
        tf.sample_attributes(2, 0, {"nose_size": 1.0})
    with pytest.raises(ValueError, match="has no value"):
        tf.sample_attributes(2, 0, {"skin": "purple"})


def test_each_attribute_is_visible():
    base = tf.sample_attributes(8, 5)
    base[:, ATTRIBUTE_NAMES.index("hair_style")] = 1.0   # short hair (visible top + no cover)
    ref = tf.render(base, 32)
    for j, a in enumerate(ATTRIBUTES):
        alt = base.clone()
        if a.kind == "continuous":
            alt[:, j] = torch.where(alt[:, j] > (a.low + a.high) / 2, a.low, a.high)
        else:
            alt[:, j] = (alt[:, j] + 1) % a.num_classes
        diff = (tf.render(alt, 32) - ref).abs().mean().item()
        assert diff > 1e-3, f"changing {a.name} does not change the image"


@pytest.mark.parametrize("kind", tf.OOD_KINDS)
def test_ood_kinds_differ_from_normal(kind):
    images, attrs = tf.ood_faces(kind, 4, 32, seed=0)
    assert images.shape == (4, 3, 32, 32)
    normal = tf.render(attrs.clone().clamp_max(100), 32)  # same attributes, normal parts
    if kind in ("no_mouth", "three_eyes", "no_eyes"):
        assert (images - normal).abs().mean() > 1e-3
    with pytest.raises(ValueError, match="unknown out-of-distribution kind"):
        tf.ood_faces("two_heads", 2)


def test_cache_roundtrip_and_a_corrupt_file_is_rebuilt(monkeypatch):
    first = ToyFaces(split="test", size=300, image_size=32)
    assert first.cache_path.exists() and first.cache_path.parent.name == "toyfaces"
    real_render = tf.render

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again although the cache holds the set")

    monkeypatch.setattr(tf, "render", no_render)
    second = ToyFaces(split="test", size=300, image_size=32)   # from the cache: no render call
    assert torch.equal(first.images, second.images) and torch.equal(first.attributes, second.attributes)
    first.cache_path.write_bytes(b"corrupt")  # a torn cache is rebuilt, not trusted
    with pytest.raises(AssertionError, match="rendered again"):
        ToyFaces(split="test", size=300, image_size=32)
    monkeypatch.setattr(tf, "render", real_render)
    assert torch.equal(ToyFaces(split="test", size=300, image_size=32).images, first.images)
    assert torch.load(first.cache_path, weights_only=True)["data"]["images"].shape == (300, 3, 32, 32)


def test_the_cache_key_holds_the_background():
    radial = ToyFaces(split="val", size=4, image_size=16)
    gradient = ToyFaces(split="val", size=4, image_size=16, background="gradient")
    assert radial.cache_path != gradient.cache_path
    assert not torch.equal(radial.images, gradient.images)
    assert torch.equal(ToyFaces(split="val", size=4, image_size=16, background="gradient").images,
                       gradient.images)


@pytest.mark.parametrize("kwargs, match", [
    (dict(size=0), "size must be a positive int"),
    (dict(size=4, split="holdout"), "split must be one of"),
    (dict(size=4, image_size=4), "image_size must be an int >= 8"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ToyFaces(cache=False, **kwargs)


def test_render_rejects_wrong_attribute_shape():
    with pytest.raises(ValueError, match="attributes must be"):
        tf.render(torch.zeros(2, 3), 32)


def test_chunking_and_threads_do_not_change_pixels():
    a = tf.sample_attributes(20, 2)
    threads = torch.get_num_threads()
    ref = tf.render(a, 32, batch_size=256)
    assert torch.equal(tf.render(a, 32, batch_size=3), ref)
    assert torch.get_num_threads() == threads  # the render thread pool restores the setting


def test_a_mirrored_face_is_the_face_with_the_mirrored_attributes_negated():
    faces = ToyFaces(split="test", size=24, image_size=32, cache=False)
    mirrored = tf.render(mirror_attributes(faces.attributes), 32)
    assert (tf.render(faces.attributes, 32).flip(3) - mirrored).abs().max() < 1e-5
    for name in MIRRORED:                         # drawn from ranges symmetric about 0
        a = ATTRIBUTES[ATTRIBUTE_NAMES.index(name)]
        assert a.low == -a.high
    with pytest.raises(ValueError, match="raw attributes"):
        mirror_attributes(faces.attributes[:, :3])
