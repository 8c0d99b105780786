"""Palette files: GIMP .gpl, JSON, or the colours of an image."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import ImageWriteError, PathLike, _atomic_save, reason
from .profiles import is_srgb, to_srgb
from .read import ImageReadError, read_colour_profile
from .write import checked_palette, has_alpha


PALETTE_SUFFIXES = (".gpl", ".json")


def _gpl_rows(text):
    """Colour rows of a GIMP palette's text; ValueError naming the line of a bad one."""
    lines = text.splitlines()
    if not lines or not lines[0].strip().startswith("GIMP Palette"):
        raise ValueError("the first line is not 'GIMP Palette'")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields or fields[0].startswith("#") or fields[0].rstrip(":") in ("Name", "Columns"):
            continue  # blank lines, comments, Name: and Columns: headers
        try:
            row = [int(field) for field in fields[:3]]
        except ValueError:
            row = []
        if len(row) != 3:
            raise ValueError(f"line {number} is not 'R G B [name]': {line.strip()!r}")
        if min(row) < 0 or max(row) > 255:
            raise ValueError(f"line {number} has a value outside 0..255: {line.strip()!r}")
        rows.append(row)
    return rows


def _json_rows(data):
    """Colour rows of a parsed JSON palette; ValueError naming the first bad row."""
    rows = data["palette"] if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise ValueError("expected a list of [r, g, b] rows, or {\"palette\": [...]}")
    for number, row in enumerate(rows):
        # bool is an int in Python; a palette of true/false is a mistake, not 1s and 0s.
        if (not isinstance(row, list) or len(row) not in (3, 4) or len(row) != len(rows[0])
                or not all(type(value) is int and 0 <= value <= 255 for value in row)):
            raise ValueError(
                f"row {number} is {json.dumps(row)[:40]}; every row must be 3 integers 0..255 "
                "(r, g, b), or 4 with alpha, all rows alike"
            )
    return rows


def _image_colours(path):
    """The colours of an image, in sRGB (converted through its colour profile): an
    indexed image's palette entries in use, or the distinct colours of a full-colour
    image with at most 256 of them."""
    colours = _colours_as_stored(path)
    profile = read_colour_profile(path)
    return colours if is_srgb(profile) else to_srgb(colours.astype(np.uint8)[None], profile)[0]


def _colours_as_stored(path):
    with Image.open(path) as image:
        if image.mode == "P":
            used = np.unique(np.asarray(image))
            entries = np.array(image.getpalette() or [], dtype=np.int64).reshape(-1, 3)
            if used.size and used[-1] >= len(entries):
                raise ValueError(f"its pixels use palette index {used[-1]}, but its palette has {len(entries)} entries")
            return entries[used]
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
        colours = np.unique(pixels, axis=0)
        if len(colours) > 256:
            raise ValueError(f"it has {len(colours)} colours; a palette image has at most 256")
        return colours


def read_palette(path: PathLike) -> np.ndarray:
    """A palette (m, 3) uint8 from a GIMP .gpl file, a .json list of [r, g, b] rows (or
    {"palette": [...]}; rows of 4 give (m, 4) with alpha), or an image: an indexed
    image's palette entries in use, or the distinct colours of a full-colour image with
    at most 256 of them.  Palette files hold sRGB colours; an image's colours are
    converted to sRGB through its profile.  A malformed file raises ImageReadError naming
    what is wrong."""
    path = Path(path)
    if not path.is_file():
        what = "no such palette file" if not path.exists() else "is not a palette file (a folder, a pipe or a device)"
        raise ImageReadError(f"{path}: {what}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".gpl":
            palette = np.array(_gpl_rows(path.read_text(errors="replace")), dtype=np.int64)
        elif suffix == ".json":
            palette = np.array(_json_rows(json.loads(path.read_text(errors="replace"))), dtype=np.int64)
        else:
            palette = _image_colours(path)
    except json.JSONDecodeError as error:
        raise ImageReadError(f"{path}: cannot read a palette (not JSON: {error})") from None
    except MemoryError:
        raise
    except Exception as error:  # anything a decoder raises: the file is the problem
        raise ImageReadError(f"{path}: cannot read a palette ({reason(error)})") from None
    if len(palette) == 0:
        raise ImageReadError(f"{path}: cannot read a palette (it has no colours)")
    return palette.astype(np.uint8).reshape(len(palette), -1)


def write_palette(path, palette, *, replace=True, outputs=None):
    """Write a palette (m, C) uint8 as GIMP .gpl or .json (by suffix), atomically.

    Grey palettes (C = 1, 2) are written as r = g = b.  A palette with transparency
    (C = 2 or 4 with some alpha below 255) goes into .json as [r, g, b, a] rows; a .gpl
    file cannot hold alpha, so that raises ImageWriteError.  ``replace`` and ``outputs``
    as for write_quantized.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in PALETTE_SUFFIXES:
        raise ImageWriteError(f"{path}: unknown palette format {suffix or '(no suffix)'}; use .gpl or .json")
    try:
        palette = checked_palette(palette)
    except ImageWriteError as error:
        raise ImageWriteError(f"{path}: {error}") from None
    reason_not = palette_capacity_error(path, palette)
    if reason_not:
        raise ImageWriteError(f"{path}: {reason_not}")
    colour = palette[:, :3] if palette.shape[1] >= 3 else np.repeat(palette[:, :1], 3, axis=1)
    if has_alpha(palette):
        colour = np.concatenate([colour, palette[:, -1:]], axis=1)
    if suffix == ".gpl":
        lines = ["GIMP Palette", f"Name: {Path(path).stem}", "Columns: 16", "#"]
        lines += [f"{r:3d} {g:3d} {b:3d}\t#{r:02x}{g:02x}{b:02x}" for r, g, b in colour.tolist()]
        text = "\n".join(lines) + "\n"
    else:
        text = json.dumps({"palette": colour.tolist()}) + "\n"

    def save(temporary):
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)

    _atomic_save(path, save, replace=replace, outputs=outputs)


def palette_capacity_error(path, palette_or_channels):
    """Why a palette (m, C), or an image of C channels (an int), cannot be saved at
    ``path``, or None: .gpl files hold no alpha."""
    if Path(path).suffix.lower() != ".gpl":
        return None
    if isinstance(palette_or_channels, int):
        transparent = palette_or_channels in (2, 4)
    else:
        transparent = has_alpha(palette_or_channels)
    if transparent:
        return "a .gpl palette cannot hold transparency; save the palette as .json ([r, g, b, a] rows)"
    return None
