"""Creating files without losing any.

Every output is first written in full to a temporary file beside it, then published
under its name.  Publishing without ``replace`` is a hard link, which fails when
anything exists under the name, even a file that appeared while fastkm was working;
where the file system has no hard links it falls back to creating the name
exclusively (``O_EXCL``) and copying.  With ``replace`` it is a rename over the old
file.  Several files published together (an image and its palette) appear all or
not at all: a failure takes back the ones already published (and puts back the files
they replaced).  Any exception, a signal turned into one included, removes the
temporary files; only ``kill -9`` can leave one, named ``.fastkm-XXXXXXXX.part``.
"""

import errno
import os
import secrets
import shutil
from pathlib import Path
from typing import Union

# A file name: a str or a pathlib.Path.
PathLike = Union[str, os.PathLike]


class ImageWriteError(OSError):
    """An output file could not be written; the message says why."""


class OutputExistsError(ImageWriteError):
    """An output file exists (perhaps it appeared meanwhile) and replacing was not asked for."""


# Temporary names have a fixed, short length, so that any name the file system takes as
# an output also leaves room for its temporary file.
TEMPORARY_PREFIX = ".fastkm-"
TEMPORARY_SUFFIX = ".part"
# Where os.link fails with these, the file system has no hard links: create the name
# exclusively and copy instead.
_NO_HARD_LINKS = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}


def reason(error):
    """The one-line reason of an exception: an OSError's strerror, or its message."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _new_temporary(folder):
    """Create an empty, uniquely named temporary file in folder; its path."""
    while True:
        path = folder / f"{TEMPORARY_PREFIX}{secrets.token_hex(4)}{TEMPORARY_SUFFIX}"
        try:
            # 0o666 less the umask: the published file gets the usual permissions.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:
            continue


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _create_from(temporary, path):
    """Give temporary's content the name path, failing if path exists (FileExistsError)."""
    try:
        os.link(temporary, path)
        return
    except OSError as error:
        if isinstance(error, FileExistsError) or error.errno not in _NO_HARD_LINKS:
            raise
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(temporary, "rb") as source, os.fdopen(handle, "wb") as target:
            shutil.copyfileobj(source, target)
            target.flush()
            os.fsync(target.fileno())
    except BaseException:
        _remove(path)
        raise


def _keep_aside(path):
    """A temporary hard link to the file at path (to put it back), or None when there is none."""
    if not os.path.lexists(path):
        return None
    backup = _new_temporary(Path(path).parent)
    os.unlink(backup)
    try:
        os.link(path, backup, follow_symlinks=False)
    except OSError:
        return None  # no hard links here: the replaced file cannot be put back
    return backup


class Outputs:
    """Files written all or nothing.

    ``add(path, save)`` calls ``save(temporary_path)`` to write a file beside ``path``;
    ``publish()`` gives every added file its name.  Without ``replace`` an existing file
    (even one that appeared after ``add``) is never replaced: publishing fails with
    OutputExistsError and nothing is published.  Use as a context manager: leaving it
    without publishing removes the temporary files.
    """

    def __init__(self, *, replace=False):
        self.replace = replace
        self._staged = []  # (temporary, path)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.discard()

    def discard(self):
        """Remove the temporary files not yet published."""
        for temporary, _ in self._staged:
            _remove(temporary)
        self._staged = []

    def add(self, path, save):
        """Write a file for path to a temporary name in its folder with save(temporary)."""
        path = Path(path)
        folder = path.parent if str(path.parent) else Path(".")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            temporary = _new_temporary(folder)
        except OSError as error:
            raise ImageWriteError(f"{path}: cannot write to folder {folder} ({reason(error)})") from None
        self._staged.append((temporary, path))
        try:
            save(str(temporary))
            with open(temporary, "rb+") as file:
                os.fsync(file.fileno())
        except Exception as error:
            self.discard()
            raise ImageWriteError(f"{path}: cannot write ({reason(error)})") from None
        except BaseException:
            self.discard()
            raise

    def publish(self):
        """Give each added file its name; all of them, or none (then raise ImageWriteError)."""
        published = []  # (path, the file it replaced, kept aside, or None)
        failed = None
        try:
            for temporary, path in self._staged:
                failed = path
                if self.replace:
                    backup = _keep_aside(path)
                    try:
                        os.replace(temporary, path)
                    except BaseException:
                        if backup is not None:
                            _remove(backup)
                        raise
                else:
                    backup = None
                    _create_from(temporary, path)
                published.append((path, backup))
        except BaseException as error:
            for done, backup in reversed(published):
                try:
                    if backup is not None:
                        os.replace(backup, done)
                    else:
                        os.unlink(done)
                except OSError:
                    pass
            self.discard()
            if isinstance(error, FileExistsError):
                raise OutputExistsError(f"{failed}: already exists; use --force to replace it") from None
            if isinstance(error, Exception):
                raise ImageWriteError(f"{failed}: cannot write ({reason(error)})") from None
            raise
        for _, backup in published:
            if backup is not None:
                _remove(backup)
        self.discard()  # the hard-linked temporaries


def _atomic_save(path, save, *, replace=True, outputs=None):
    """Write path with save(temporary_path): into ``outputs`` (published with it), or now."""
    if outputs is not None:
        outputs.add(path, save)
        return
    with Outputs(replace=replace) as alone:
        alone.add(path, save)
        alone.publish()
