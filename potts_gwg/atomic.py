"""Atomic file output: write to a temporary file in the target folder, then rename.

A failure (or a kill) part way leaves the user's previous file, if any, untouched and no
partial output behind. A symbolic link is written through (its target is replaced, the link
stays); a FIFO or a device (``/dev/stdout``) gets the finished bytes written into it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import InputError


def output_target(path: str | os.PathLike) -> Path:
    """The file that writing ``path`` changes: ``path`` itself, a symbolic link's target, or
    the FIFO or device it names. Raises :class:`InputError` (naming ``path``) for a folder or
    a parent that is not a folder, so commands can check their outputs before the work."""
    given = Path(path)
    try:
        mode = os.stat(given).st_mode               # follows links
    except FileNotFoundError:
        mode = None
    except NotADirectoryError:
        mode = None                                  # reported below, with the culprit
    if mode is not None and stat.S_ISDIR(mode):
        raise InputError("is a folder; give a file name", given)
    if mode is not None and not stat.S_ISREG(mode):
        return given                                 # FIFO, device, socket: written into
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    for parent in target.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise InputError(f"{parent} is not a folder", given)
            break
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path`` atomically (see the module
    doc for links and special files).

    ``suffix`` is kept on the temporary name for writers that insist on an extension
    (``numpy.savez`` appends ``.npz``; matplotlib picks a format from it).
    """
    target = output_target(path)
    special = target.exists() and not target.is_file()
    if not special:
        target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f"{suffix}.tmp",
                                         dir=None if special else target.parent)
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        if special:
            with open(temporary_path, "rb") as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
        else:
            # mkstemp creates 0600; give the file the permissions a plain open() would have.
            os.chmod(temporary_path, 0o666 & ~_current_umask())
            os.replace(temporary_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary_path.unlink()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file for writing; it becomes ``path`` only if the block succeeds."""
    with atomic_path(path) as temporary, open(temporary, mode) as stream:
        yield stream
        stream.flush()
        os.fsync(stream.fileno())


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete what a killed writer of ``path`` left: its ``.<name>.*.tmp`` files.

    Only a SIGKILL (or power loss) during :func:`atomic_path` leaves one; call this before
    writing ``path`` again, from the one process that owns it. Returns what was removed.
    """
    target = output_target(path)
    if target.exists() and not target.is_file():
        return []                                    # a FIFO or device has no temporaries
    removed = []
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
            removed.append(leftover)
    return removed
