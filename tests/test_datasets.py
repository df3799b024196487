"""load_dataset: ToyFaces, a fake CelebA tree and an image folder built on disk; no network."""
import numpy as np
import pytest
import torch
from PIL import Image

from course_lib.datasets import DATASETS, ImageSet, load_dataset
from course_lib.toyfaces import ToyFaces

CELEBA_ATTRS = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive"] + [f"A{i}" for i in range(37)]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def fake_celeba(tmp_path):
    """A 6-image CelebA tree (178x218 JPEGs): partition 0,0,0,1,2,2."""
    base = tmp_path / "data" / "celeba"
    (base / "img_align_celeba").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"{i:06d}.jpg" for i in range(1, 7)]
    for i, n in enumerate(names):
        pixels = np.full((218, 178, 3), 40 * i, dtype=np.uint8)
        pixels[:35] = 255  # a white band the 148-px centre crop (rows 35..183) removes
        Image.fromarray(pixels).save(base / "img_align_celeba" / n, quality=95)
    lines = [str(len(names)), " ".join(CELEBA_ATTRS)]
    for n in names:
        lines.append(n + " " + " ".join(str(v) for v in rng.choice([-1, 1], size=40)))
    (base / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    parts = [0, 0, 0, 1, 2, 2]
    (base / "list_eval_partition.txt").write_text(
        "\n".join(f"{n} {p}" for n, p in zip(names, parts)) + "\n")
    return tmp_path / "data"


def test_toyfaces_through_the_entry_point():
    ds = load_dataset("toyfaces", image_size=32, size=10, split="val")
    assert isinstance(ds, ToyFaces) and ds.images.shape == (10, 3, 32, 32)


def test_fake_celeba_loads_with_standard_preprocessing(fake_celeba):
    ds = load_dataset("celeba", root=fake_celeba, image_size=16, split="train")
    assert isinstance(ds, ImageSet) and len(ds) == 3
    assert ds.images.shape == (3, 3, 16, 16) and ds.images.dtype == torch.uint8
    assert ds.labels.shape == (3, 40) and set(ds.labels.unique().tolist()) <= {0, 1}
    assert ds.label_names[:2] == ("5_o_Clock_Shadow", "Arched_Eyebrows")
    assert ds.images[1].float().mean().sub(40).abs() < 3   # centre crop dropped the white band
    image, label = ds[2]
    assert image.shape == (3, 16, 16) and 0 <= image.min() and image.max() <= 1
    assert len(load_dataset("celeba", root=fake_celeba / "celeba", image_size=16, split="test")) == 2
    assert len(load_dataset("celeba", root=fake_celeba, image_size=16, split="val")) == 1


def test_celeba_missing_files_give_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("celeba", root=tmp_path / "nowhere", image_size=64)
    msg = str(err.value)
    for needed in ("img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt",
                   "<root>/celeba/"):
        assert needed in msg
    with pytest.raises(FileNotFoundError, match="root"):
        load_dataset("celeba")


def test_celeba_failed_download_says_how_to_get_it(tmp_path, monkeypatch):
    import torchvision

    def broken(*args, **kwargs):
        raise RuntimeError("Google Drive quota exceeded")
    monkeypatch.setattr(torchvision.datasets, "CelebA", broken)
    with pytest.raises(RuntimeError, match="(?s)download failed.*quota.*list_attr_celeba"):
        load_dataset("celeba", root=tmp_path, download=True)


def test_imagefolder_recursive_with_skips(tmp_path):
    root = tmp_path / "pics"
    for cls, n in (("cats", 3), ("dogs", 2)):
        (root / cls / "sub").mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((20, 30, 3), 60 * i, np.uint8)).save(root / cls / "sub" / f"{i}.png")
    (root / "cats" / "notes.txt").write_text("not an image")
    (root / "dogs" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning, match=r"skipped 2 .*files: cats/notes.txt, dogs/broken.jpg"):
        ds = load_dataset("imagefolder", root=root, image_size=8, split="all")
    assert ds.images.shape == (5, 3, 8, 8) and ds.skipped == 2
    assert ds.label_names == ("cats", "dogs") and ds.labels.tolist() == [0, 0, 0, 1, 1]
    with pytest.warns(UserWarning):
        parts = [len(load_dataset("imagefolder", root=root, image_size=8, split=s))
                 for s in ("train", "val", "test") if _has_split(root, s)]
    assert sum(parts) == 5


def _has_split(root, split):
    try:
        load_dataset("imagefolder", root=root, image_size=8, split=split)
        return True
    except FileNotFoundError:
        return False


def test_mnist_from_a_local_folder(tmp_path):
    """A tiny MNIST in torchvision's raw format: grayscale -> 3 channels, resized."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 20), ("t10k", 4)):
        images = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            np.array([0, 0, 8, 3], np.uint8).tobytes() + np.array([n, 28, 28], ">i4").tobytes()
            + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            np.array([0, 0, 8, 1], np.uint8).tobytes() + np.array([n], ">i4").tobytes()
            + labels.tobytes())
    train = load_dataset("mnist", root=tmp_path, image_size=32, split="train")
    assert train.images.shape == (18, 3, 32, 32) and train.labels.shape == (18,)
    assert len(load_dataset("mnist", root=tmp_path, image_size=32, split="val")) == 2
    gray = load_dataset("mnist", root=tmp_path, image_size=16, split="test", rgb=False)
    assert gray.images.shape == (4, 1, 16, 16)


def test_torchvision_missing_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_dataset("cifar10", root=tmp_path, image_size=32)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(name="imagenet"), ValueError, "unknown data set"),
    (dict(name="toyfaces", image_size=0), ValueError, "image_size must be a positive int"),
    (dict(name="toyfaces", size=-3), ValueError, "size must be a positive int"),
    (dict(name="toyfaces", split="all"), ValueError, "split must be one of"),
    (dict(name="imagefolder", root="/definitely/not/here"), FileNotFoundError, "does not exist"),
])
def test_bad_arguments(kwargs, err, match):
    name = kwargs.pop("name")
    with pytest.raises(err, match=match):
        load_dataset(name, **kwargs)


def test_every_name_is_listed():
    assert set(DATASETS) == {"toyfaces", "celeba", "imagefolder", "mnist", "fashion-mnist", "cifar10"}


def test_imagefolder_16_bit_png_keeps_its_tones(tmp_path):
    root = tmp_path / "scans"
    root.mkdir()
    Image.fromarray(np.full((16, 16), 32768, np.uint16)).save(root / "mid.png")   # mid grey, 16 bit
    Image.fromarray(np.linspace(0, 65535, 256).reshape(16, 16).astype(np.uint16)).save(root / "ramp.png")
    assert Image.open(root / "mid.png").mode == "I;16"
    ds = load_dataset("imagefolder", root=root, image_size=16, split="all")
    mid, ramp = ds.images[0].float(), ds.images[1].float()
    assert abs(mid.mean().item() - 127.5) < 1.5         # not 255: convert("RGB") used to clip it
    assert ramp.min() < 5 and ramp.max() > 250 and abs(ramp.mean().item() - 127.5) < 3


def test_imagefolder_applies_exif_orientation(tmp_path):
    root = tmp_path / "phone"
    root.mkdir()
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = (255, 0, 0)        # stored: red left half, blue right half
    a[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6               # "rotate 90 degrees clockwise to display"
    Image.fromarray(a).save(root / "portrait.jpg", exif=exif, quality=95)
    img = load_dataset("imagefolder", root=root, image_size=8, split="all").images[0].float()
    top, bottom = img[:, :4].mean((1, 2)), img[:, 4:].mean((1, 2))   # (3,) mean colour per half
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60   # upright: red on top


def test_imagefolder_refuses_loose_images_beside_class_folders(tmp_path):
    root = tmp_path / "pets"
    (root / "cats").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "cats" / "a.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "stray.png")
    with pytest.raises(ValueError, match=r"class folders \['cats'\] but also 1 images at its top \(stray.png\)"):
        load_dataset("imagefolder", root=root, image_size=8, split="all")
    (root / "stray.png").unlink()
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("a folder without images is no class")
    with pytest.warns(UserWarning, match="notes/readme.txt"):
        ds = load_dataset("imagefolder", root=root, image_size=8, split="all")
    assert ds.label_names == ("cats",) and ds.labels.tolist() == [0]


def test_imagefolder_of_loose_images_is_one_class(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    ds = load_dataset("imagefolder", root=tmp_path, image_size=8, split="all")
    assert ds.label_names == ("all",) and ds.labels.tolist() == [0, 0, 0]


def test_celeba_is_decoded_once_and_a_corrupt_cache_is_decoded_again(fake_celeba, tmp_path, monkeypatch):
    from course_lib import datasets
    first = load_dataset("celeba", root=fake_celeba, image_size=16, split="train")
    (cached,) = (tmp_path / "cache" / "data").glob("celeba_train_16px-*.pt")
    real_decode = datasets._pil_to_uint8

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded the JPEGs again although the cache holds them")

    monkeypatch.setattr(datasets, "_pil_to_uint8", no_decode)
    assert torch.equal(load_dataset("celeba", root=fake_celeba, image_size=16, split="train").images,
                       first.images)
    cached.write_bytes(b"torn")
    with pytest.raises(AssertionError, match="decoded the JPEGs again"):
        load_dataset("celeba", root=fake_celeba, image_size=16, split="train")
    monkeypatch.setattr(datasets, "_pil_to_uint8", real_decode)
    assert torch.equal(load_dataset("celeba", root=fake_celeba, image_size=16, split="train").labels,
                       first.labels)
