"""Palette files: GIMP .gpl, JSON, or the colours of an image."""

from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import ImageWriteError, _atomic_save
from .read import ImageReadError


PALETTE_SUFFIXES = (".gpl", ".json")


def read_palette(path):
    """A palette (m, 3) uint8 from a GIMP .gpl file, a .json list of [r, g, b] rows (or
    {"palette": [...]}), or an image: an indexed image's palette entries in use, or the
    distinct colours of a full-colour image with at most 256 of them."""
    import json

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such palette file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".gpl":
            rows = []
            lines = path.read_text().splitlines()
            if not lines or not lines[0].strip().startswith("GIMP Palette"):
                raise ValueError("the first line is not 'GIMP Palette'")
            for line in lines[1:]:
                fields = line.split()
                if not fields or line.lstrip().startswith("#") or ":" in fields[0] or not fields[0].isdigit():
                    continue  # comments, Name:/Columns: headers
                rows.append([int(v) for v in fields[:3]])
            palette = np.array(rows)
        elif suffix == ".json":
            data = json.loads(path.read_text())
            palette = np.array(data["palette"] if isinstance(data, dict) else data)
        else:
            with Image.open(path) as image:
                if image.mode == "P":
                    used = np.unique(np.asarray(image))
                    entries = np.array(image.getpalette() or [], dtype=np.int64).reshape(-1, 3)
                    palette = entries[used]
                else:
                    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
                    palette = np.unique(pixels, axis=0)
                    if len(palette) > 256:
                        raise ValueError(f"it has {len(palette)} colours; a palette image has at most 256")
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as error:
        raise ImageReadError(f"{path}: cannot read a palette ({error})") from None
    if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) == 0:
        raise ImageReadError(f"{path}: cannot read a palette (expected rows of 3 values, got shape {palette.shape})")
    if palette.min() < 0 or palette.max() > 255:
        raise ImageReadError(f"{path}: palette values must be between 0 and 255")
    return palette.astype(np.uint8)


def write_palette(path, palette):
    """Write a palette (m, C) uint8 as GIMP .gpl or .json (by suffix), atomically."""
    import json

    suffix = Path(path).suffix.lower()
    rgb = palette if palette.shape[1] == 3 else np.repeat(palette[:, :1], 3, axis=1)
    if suffix == ".gpl":
        lines = ["GIMP Palette", f"Name: {Path(path).stem}", "Columns: 16", "#"]
        lines += [f"{r:3d} {g:3d} {b:3d}\t#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb.tolist()]
        text = "\n".join(lines) + "\n"
    elif suffix == ".json":
        text = json.dumps({"palette": rgb.tolist()}) + "\n"
    else:
        raise ImageWriteError(f"{path}: unknown palette format {suffix or '(no suffix)'}; use .gpl or .json")

    def save(temporary):
        with open(temporary, "w") as file:
            file.write(text)

    _atomic_save(path, save)
