"""Reading and writing the files the command line deals in: RGB images and trainId label PNGs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sqgan_core.labels import PALETTE, decolorize, validate_train_ids


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Any image Pillow reads -> H x W x 3 uint8 RGB (alpha dropped, grey expanded).

    16-bit grey (Pillow modes I;16*, and I holding 16-bit values) is scaled to 8 bits by 255/65535:
    Pillow's own convert("RGB") clips it, so a 16-bit PNG came out all white."""
    img = _open(path)
    if img.mode.startswith("I;16") or img.mode == "I":
        grey = np.asarray(img).astype(np.float64)
        if img.mode == "I" and (grey.min() < 0 or grey.max() > 65535):
            raise ValueError(f"{path}: 32-bit integer image with values outside 0..65535; save it as 8- or 16-bit")
        grey8 = np.round(grey * (255.0 / 65535.0)).astype(np.uint8)
        return np.repeat(grey8[..., None], 3, axis=2)
    if img.mode == "F":
        raise ValueError(f"{path}: floating-point image (mode F); save it as 8- or 16-bit RGB or grey")
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def read_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """A trainId PNG (8-bit grey or palette indices; 255 = void) -> H x W uint8.

    A Cityscapes *colour* label image (RGB) is accepted when its colours are palette colours, since
    people often grab the _gtFine_color.png by mistake; anything else is refused with the reason.
    """
    img = _open(path)
    if img.mode in ("L", "P"):
        return validate_train_ids(np.asarray(img, dtype=np.uint8))
    if img.mode in ("I", "I;16", "I;16B"):
        return validate_train_ids(np.asarray(img, dtype=np.int64))
    if img.mode in ("RGB", "RGBA"):
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
        labels = decolorize(rgb)
        black = (rgb == 0).all(-1)
        unknown = (labels == 255) & ~black
        if unknown.mean() > 0.01:
            raise ValueError(f"{path}: an RGB image whose colours are not the Cityscapes palette; "
                             "labels must be a single-channel trainId PNG (0..18, 255 = void)")
        return labels
    raise ValueError(f"{path}: unsupported label image mode {img.mode!r}; expected an 8-bit trainId PNG")


def write_rgb(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    _parent(path)
    Image.fromarray(np.asarray(rgb, dtype=np.uint8), "RGB").save(path)


def write_labels(path: str | os.PathLike[str], labels: np.ndarray) -> None:
    """trainIds as an 8-bit palette PNG: the values are the trainIds (readable by any loader) and
    viewers show Cityscapes colours."""
    _parent(path)
    img = Image.fromarray(np.asarray(labels, dtype=np.uint8), "P")
    pal = np.zeros((256, 3), dtype=np.uint8)
    pal[: len(PALETTE)] = PALETTE
    img.putpalette(pal.reshape(-1).tolist())
    img.save(path)


def _open(path: str | os.PathLike[str]) -> Image.Image:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such image file: {p}")
    try:
        img = Image.open(p)
        img.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{p}: not a readable image ({exc})") from None
    return img


LABEL_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")  # lossless formats that keep a palette image's indices


def check_output_path(path: str | os.PathLike[str], kind: str = "file") -> Path:
    """Refuse an output path before any work is done (loading a model, decoding a frame), so a long
    run never ends in a failed write. kind: "rgb" (an image Pillow can write), "labels" (a lossless
    palette image: PNG, BMP, TIFF) or "file" (any bytes). Missing parent folders are created later;
    a parent that is a file, or a path that is a directory, is refused here."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"output {p} is a directory; give a file name")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"output {p}: {parent} is a file, not a folder")
            break
    if kind == "file":
        return p
    ext = p.suffix.lower()
    if not ext:
        raise ValueError(f"output {p} has no extension: the format comes from it (e.g. .png)")
    if kind == "labels":
        if ext not in LABEL_EXTENSIONS:
            raise ValueError(f"output {p}: a label map must be saved losslessly ({', '.join(LABEL_EXTENSIONS)}), "
                             f"not {ext}")
        return p
    Image.init()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"output {p}: Pillow cannot write {ext} images (try .png)")
    return p


def _parent(path: str | os.PathLike[str]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
