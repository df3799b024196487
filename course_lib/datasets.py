"""Real image data behind the same interface as ToyFaces: one entry point, ``load_dataset``.

Every data set comes back materialised in memory (fast CPU training wants in-memory uint8
tensors, not a DataLoader over files) as an object with

- ``images``: uint8 ``(N, C, S, S)`` (``ds[i]`` gives float images in [0, 1]),
- ``labels``: int64 ``(N,)`` class labels or ``(N, A)`` binary attributes (or ``None``),
- ``label_names``: the class or attribute names.

Names: ``toyfaces`` (built in, no files), ``celeba`` (aligned CelebA, 40 binary attributes,
the usual 64x64 preprocessing: centre crop 148 of 178x218, then resize; Liu et al. 2015),
``imagefolder`` (any folder of images, searched recursively: see :func:`load_dataset` for
how labels come from class folders), ``mnist``,
``fashion-mnist``, ``cifar10`` (through torchvision). Downloads only with
``download=True``; nothing here touches the network otherwise.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from course_lib.cache import load_or_build, resolve_cache_dir
from course_lib.images import to_float
from course_lib.toyfaces import ToyFaces

__all__ = ["DATASETS", "ImageSet", "load_dataset", "CELEBA_HELP", "IMAGE_EXTENSIONS"]

DATASETS = ("toyfaces", "celeba", "imagefolder", "mnist", "fashion-mnist", "cifar10")
SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

CELEBA_HELP = """\
To use CelebA, get these files by hand (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html,
"Align&Cropped Images"; Google Drive often refuses automatic downloads: quota pages,
HTML saved as a .zip) and lay them out as

    <root>/celeba/img_align_celeba/000001.jpg ... 202599.jpg   (unzip img_align_celeba.zip)
    <root>/celeba/list_attr_celeba.txt
    <root>/celeba/list_eval_partition.txt

then call load_dataset("celeba", root="<root>") (root may also be the celeba folder itself).
Or use the built-in data: load_dataset("toyfaces")."""


class ImageSet(Dataset):
    """A materialised image data set: ``ds[i]`` -> (float image (C, S, S) in [0, 1], label)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, *, name: str,
                 label_names: tuple[str, ...] = (), skipped: int = 0):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} "
                             f"{tuple(images.shape)}")
        self.images, self.labels, self.name = images, labels, name
        self.label_names, self.skipped = tuple(label_names), skipped

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        label = self.labels[i] if self.labels is not None else torch.zeros((), dtype=torch.int64)
        return to_float(self.images[i]), label

    def __repr__(self) -> str:
        return (f"ImageSet({self.name!r}, n={len(self)}, shape={tuple(self.images.shape[1:])}, "
                f"labels={None if self.labels is None else tuple(self.labels.shape)})")


# ----------------------------------------------------------------------------- helpers

BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white, as a browser shows them


def _pil_rgb(img):
    """Any PIL image -> 8-bit RGB, upright and with its full tonal range.

    Phones store portraits sideways with an EXIF orientation tag: apply it. 16-bit grey
    PNGs (mode ``I;16``) and 32-bit ``I``/``F`` images are rescaled to 0..255 first:
    ``convert("RGB")`` would clip every value above 255 and turn them almost white.
    Transparent images (RGBA, LA, palette with transparency) are composited on
    :data:`BACKGROUND`: ``convert("RGB")`` would keep whatever colour the hidden pixels hold,
    often black. Float images outside [0, 1] and [0, 255] (e.g. [-1, 1]) are refused with a
    ``ValueError`` rather than clipped.
    """
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (*BACKGROUND, 255)), rgba)
    if img.mode.startswith("I") or img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        if a.size and (a.min() < 0 or a.max() > (255 if img.mode == "F" else 65535) or not np.isfinite(a).all()):
            raise ValueError(f"{img.mode} pixel values in [{a.min():.3g}, {a.max():.3g}], expected "
                             f"[0, 1] or [0, 255]: rescale the image and save it again")
        if img.mode.startswith("I;16") or (img.mode == "I" and a.max() > 255):
            a = a / 65535.0 * 255.0
        elif img.mode == "F" and a.max() <= 1.0:     # float images in [0, 1]
            a = a * 255.0
        img = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")
    return img.convert("RGB")


def _pil_to_uint8(img, image_size: int, crop: int | None = None) -> torch.Tensor:
    """PIL image -> uint8 (3, S, S): centre crop (``crop`` px, else the largest square), resize."""
    from PIL import Image

    img = _pil_rgb(img)
    w, h = img.size
    c = min(w, h) if crop is None else min(crop, w, h)
    left, top = (w - c) // 2, (h - c) // 2
    img = img.crop((left, top, left + c, top + c)).resize((image_size, image_size),
                                                          Image.BILINEAR, reducing_gap=None)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def _resize_uint8(images: torch.Tensor, image_size: int, rgb: bool) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C or 3, S, S), antialiased, in chunks."""
    out = []
    for chunk in images.split(4096):
        x = chunk.float()
        if x.shape[-1] != image_size:
            x = F.interpolate(x, size=(image_size, image_size), mode="bilinear",
                              antialias=True, align_corners=False)
        if rgb and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        out.append(x.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def _take(images, labels, size):
    if size is not None:
        images, labels = images[:size], (labels[:size] if labels is not None else None)
    return images, labels


# ----------------------------------------------------------------------------- CelebA

def _celeba_dir(root) -> Path:
    if root is None:
        raise FileNotFoundError("CelebA needs root=<folder>; nothing was given.\n" + CELEBA_HELP)
    root = Path(root).expanduser()
    for candidate in (root / "celeba", root):
        if (candidate / "img_align_celeba").is_dir():
            return candidate
    return root / "celeba"


def _load_celeba(root, image_size, split, download, size):
    base = _celeba_dir(root)
    needed = [base / "img_align_celeba", base / "list_attr_celeba.txt",
              base / "list_eval_partition.txt"]
    if download and not all(p.exists() for p in needed):
        try:
            import torchvision
            torchvision.datasets.CelebA(str(base.parent), split="all", download=True)
        except Exception as err:  # Drive quota pages, HTML saved as zip, no network, ...
            raise RuntimeError(f"CelebA download failed ({type(err).__name__}: {err}).\n"
                               + CELEBA_HELP) from err
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise FileNotFoundError("CelebA files are missing: " + ", ".join(missing) + "\n"
                                + CELEBA_HELP)
    lines = (base / "list_attr_celeba.txt").read_text().split("\n")
    names = tuple(lines[1].split())
    attrs = {}
    for line in lines[2:]:
        parts = line.split()
        if len(parts) == len(names) + 1:
            attrs[parts[0]] = [int(v) > 0 for v in parts[1:]]
    part = {}
    for line in (base / "list_eval_partition.txt").read_text().split("\n"):
        parts = line.split()
        if len(parts) == 2:
            part[parts[0]] = int(parts[1])
    want = SPLITS.index(split)
    files = sorted(f for f, p in part.items() if p == want and f in attrs)
    if size is not None:
        files = files[:size]
    if not files:
        raise FileNotFoundError(f"CelebA split {split!r} is empty in {base}.\n" + CELEBA_HELP)

    def build():
        from PIL import Image
        images = []
        for f in files:
            with Image.open(base / "img_align_celeba" / f) as img:
                images.append(_pil_to_uint8(img, image_size, crop=148))  # standard 64x64 recipe
        labels = torch.tensor([attrs[f] for f in files], dtype=torch.int64)
        return {"images": torch.stack(images), "labels": labels}

    # decoded once, then loaded from $COURSE_CACHE/data/ (a corrupt file is decoded again)
    key = {"root": str(base.resolve()), "image_size": image_size, "split": split, "n": len(files)}
    data = load_or_build(f"celeba_{split}_{image_size}px", build, key=key, data_version=None)
    return ImageSet(data["images"], data["labels"], name="celeba", label_names=names)


# ----------------------------------------------------------------------------- image folder

def _split_of(relpath: str) -> str:
    """80/10/10 train/val/test split by a hash of the relative path: stable as files are added."""
    h = int(hashlib.sha1(relpath.encode()).hexdigest()[:8], 16) % 10
    return "train" if h < 8 else ("val" if h == 8 else "test")


def _load_imagefolder(root, image_size, split, size):
    from PIL import Image, UnidentifiedImageError

    if root is None:
        raise FileNotFoundError("imagefolder needs root=<folder of images>; nothing was given.")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist or is not a folder.")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    is_image = [p.suffix.lower() in IMAGE_EXTENSIONS for p in files]
    classes = sorted({p.relative_to(root).parts[0] for p, ok in zip(files, is_image)
                      if ok and len(p.relative_to(root).parts) > 1})
    loose = [p.name for p, ok in zip(files, is_image) if ok and p.parent == root]
    if classes and loose:  # they would silently get the first class's label
        raise ValueError(
            f"image folder {root} has class folders {classes[:5]} but also {len(loose)} images "
            f"at its top ({', '.join(loose[:5])}{', ...' if len(loose) > 5 else ''}), which "
            "belong to no class: move them into a class folder (or a folder of their own), or "
            "point root at a folder that holds only images or only class folders")
    images, labels, skipped, why = [], [], [], []
    for p, ok in zip(files, is_image):
        rel = p.relative_to(root).as_posix()
        if not ok:
            skipped.append(rel)
            continue
        if split != "all" and _split_of(rel) != split:
            continue
        try:
            with Image.open(p) as img:
                images.append(_pil_to_uint8(img, image_size))
        except Image.DecompressionBombError as err:  # not an OSError: it would end the whole load
            skipped.append(rel)
            why.append(f"{rel}: {err} (raise PIL.Image.MAX_IMAGE_PIXELS to load it)")
            continue
        except (UnidentifiedImageError, OSError, ValueError) as err:
            skipped.append(rel)
            if isinstance(err, ValueError):
                why.append(f"{rel}: {err}")
            continue
        parts = p.relative_to(root).parts
        labels.append(classes.index(parts[0]) if len(parts) > 1 else 0)
        if size is not None and len(images) >= size:
            break
    if skipped:
        names = ", ".join(skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
        warnings.warn(f"imagefolder {root}: skipped {len(skipped)} non-image or unreadable "
                      f"files: {names}" + "".join(f". {w}" for w in why[:5]), stacklevel=3)
    if not images:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) for split {split!r} "
                                f"under {root} (skipped {len(skipped)} other files).")
    return ImageSet(torch.stack(images), torch.tensor(labels, dtype=torch.int64),
                    name="imagefolder", label_names=tuple(classes) or ("all",),
                    skipped=len(skipped))


# ----------------------------------------------------------------------------- torchvision

def _load_torchvision(name, root, image_size, split, download, size, rgb):
    import torchvision

    cls = {"mnist": torchvision.datasets.MNIST, "fashion-mnist": torchvision.datasets.FashionMNIST,
           "cifar10": torchvision.datasets.CIFAR10}[name]
    root = Path(root).expanduser() if root is not None else resolve_cache_dir() / "torchvision"
    try:
        ds = cls(str(root), train=(split != "test"), download=download)
    except Exception as err:
        raise FileNotFoundError(
            f"{name} is not in {root} ({type(err).__name__}: {err}). Pass download=True once "
            f"when online, or copy torchvision's {cls.__name__} folder under {root}.") from err
    data = torch.as_tensor(np.asarray(ds.data))
    images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)  # (N, C, H, W)
    labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    if split != "test":  # train = the first 90% of the official training set, val = the rest
        cut = int(0.9 * len(images))
        sl = slice(0, cut) if split == "train" else slice(cut, None)
        images, labels = images[sl], labels[sl]
    images, labels = _take(images, labels, size)
    return ImageSet(_resize_uint8(images, image_size, rgb), labels, name=name,
                    label_names=tuple(ds.classes))


# ----------------------------------------------------------------------------- entry point

def load_dataset(name: str, *, root=None, image_size: int = 64, split: str = "train",
                 download: bool = False, size: int | None = None, seed: int = 0,
                 rgb: bool = True, overrides: dict | None = None):
    """Load a data set materialised in memory, images resized to ``image_size``.

    Args:
        name: one of :data:`DATASETS`.
        root: folder with the files (CelebA, image folder, torchvision sets).
        image_size: side of the square output images (> 0).
        split: ``train``, ``val`` or ``test`` (``imagefolder`` also ``all``; torchvision
            sets: val = the last 10% of the official training set).
        download: allow torchvision to download (never by default).
        size: keep the first ``size`` images (required for ``toyfaces``: default 10,000).
        seed, overrides: ``toyfaces`` only (see :class:`course_lib.toyfaces.ToyFaces`).
        rgb: grayscale sets as 3 identical channels (the course's backbone wants 3).
    Returns:
        :class:`ImageSet` (``toyfaces``: a :class:`ToyFaces`, same ``images``/``labels``).

    ``imagefolder`` labels: images in class folders (``root/<class>/**/x.png``) get their
    folder's index in the sorted class names; a folder of loose images (no subfolders
    with images) is one class, ``"all"``. A tree with both is refused (a loose image
    belongs to no class). Images are turned upright by their EXIF orientation, 16-bit PNGs
    are rescaled to 8 bits, transparent pixels are composited on white (:data:`BACKGROUND`),
    and files that are not images or cannot be read (too large for PIL's decompression-bomb
    limit, float pixels outside [0, 1] and [0, 255]) are skipped with a warning naming them.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of {DATASETS}")
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 8:
        raise ValueError(f"image_size must be a positive int of at least 8 (the course's smallest "
                         f"images), got {image_size!r}")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        raise ValueError(f"size must be a positive int or None, got {size!r}")
    if not isinstance(download, bool):  # download="no" would be true
        raise TypeError(f"download must be True or False, got {download!r}")
    allowed = SPLITS + (("all",) if name == "imagefolder" else ())
    if split not in allowed:
        raise ValueError(f"split must be one of {allowed} for {name}, got {split!r}")
    if name == "toyfaces":
        return ToyFaces(split=split, size=size or 10_000, image_size=image_size, seed=seed,
                        overrides=overrides)
    if name == "celeba":
        return _load_celeba(root, image_size, split, download, size)
    if name == "imagefolder":
        return _load_imagefolder(root, image_size, split, size)
    return _load_torchvision(name, root, image_size, split, download, size, rgb)
