"""Atomic file output: write to a temporary file in the target folder, then rename.

A failure (or a kill) part way leaves the user's previous file, if any, untouched and no
partial output behind.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    ``suffix`` is kept on the temporary name for writers that insist on an extension
    (``numpy.savez`` appends ``.npz``; matplotlib picks a format from it).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f"{suffix}.tmp",
                                         dir=target.parent)
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
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
    target = Path(path)
    removed = []
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
            removed.append(leftover)
    return removed
