"""Which files a run reads and writes: inputs found in folders, default output names,
and the checks that keep every output off every input and off every other output."""

import functools
import os
import re
import unicodedata
from pathlib import Path

from .write import SOFTWARE


def default_output(path, n_colors):
    """The output beside an input when no -o is given: photo.jpg -> photo-k16.png."""
    path = Path(path)
    return path.with_name(f"{path.stem}-k{n_colors}.png")


# Names default_output gives: NAME-k<N>.png.
_DEFAULT_OUTPUT_NAME = re.compile(r"^(?P<stem>.+)-k[1-9][0-9]*\.png$", re.IGNORECASE)


def earlier_output_of(path, siblings):
    """The input among siblings (images in path's folder) of which path is an output of
    an earlier run: a PNG fastkm wrote (its "Software" text says so) named as fastkm
    names its default outputs (photo-k16.png beside photo.jpg, for any k); else None."""
    match = _DEFAULT_OUTPUT_NAME.match(Path(path).name)
    if match is None:
        return None
    source = next((s for s in siblings if s != path and s.stem == match["stem"]), None)
    return source if source is not None and written_by_fastkm(path) else None


def written_by_fastkm(path):
    """Whether path is a PNG that fastkm wrote (by its "Software" text)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get("Software") == SOFTWARE
    except Exception:  # unreadable: not an output of ours; the batch reports it as an input
        return False


@functools.lru_cache(maxsize=None)
def readable_suffixes():
    """Lower-case file suffixes of every format Pillow can open here (.jpg, .avif, .qoi...)."""
    from PIL import Image

    extensions = Image.registered_extensions()  # loads every plugin
    return frozenset(suffix.lower() for suffix, name in extensions.items() if name in Image.OPEN)


def _identity(path):
    """(device, inode) of the file path names (through links), or None if there is none."""
    try:
        status = os.stat(path)
    except (OSError, ValueError):
        return None
    return status.st_dev, status.st_ino


@functools.lru_cache(maxsize=256)
def _case_insensitive(folder):
    """Whether names in folder (or its nearest existing parent) ignore case."""
    folder = Path(folder)
    while True:
        try:
            exists = folder.is_dir()
        except OSError:
            exists = False
        if exists:
            for probe in (folder, *folder.parents):
                swapped = probe.name.swapcase()
                if swapped != probe.name:
                    try:
                        return os.path.samefile(probe, probe.with_name(swapped))
                    except (OSError, ValueError):
                        return False
            return False
        if folder.parent == folder:
            return False
        folder = folder.parent


def output_key(path):
    """A key equal for two paths that name the same file once written: the real path,
    case-folded and NFC-normalised where the folder ignores case."""
    real = os.path.realpath(path)
    if _case_insensitive(os.path.dirname(real)):
        return unicodedata.normalize("NFC", real).casefold()
    return real


class Inputs:
    """The files a run reads; ``clash(output)`` says whether an output would land on one."""

    def __init__(self, paths):
        self._real = {}  # real path -> input as given
        self._identity = {}  # (device, inode) -> input as given
        for path in paths:
            self.add(path)

    def add(self, path):
        self._real.setdefault(output_key(path), path)
        identity = _identity(path)
        if identity is not None:
            self._identity.setdefault(identity, path)

    def clash(self, output):
        """The input that writing output would replace or alias (same path through links,
        case or Unicode form, or a hard link to it), or None."""
        found = self._real.get(output_key(output))
        if found is None:
            identity = _identity(output)
            found = self._identity.get(identity) if identity is not None else None
        return found
