"""Atomic file creation: every output is written to a temporary name in its folder and
renamed into place, so an interrupted write never leaves a partial file behind."""

import os
import tempfile
from pathlib import Path


class ImageWriteError(OSError):
    """An output file could not be written; the message says why."""



def _atomic_save(path, save):
    """Call save(temporary_path) in the target folder, then rename onto ``path``."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
        os.close(handle)
    except OSError as error:
        raise ImageWriteError(f"{path}: cannot write to folder {folder} ({error.strerror or error})") from None
    try:
        save(temporary)
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        # mkstemp creates the file private (0600); give it the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException as error:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        if isinstance(error, Exception):  # not KeyboardInterrupt / SystemExit
            raise ImageWriteError(f"{path}: cannot write ({error or type(error).__name__})") from None
        raise
