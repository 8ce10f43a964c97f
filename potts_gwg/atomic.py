"""Atomic file output: write to a temporary file in the target folder, then rename.

A failure (or a kill) part way leaves the user's previous file, if any, untouched and no
partial output behind. A symbolic link is written through (its target is replaced, the link
stays); a FIFO or a device (``/dev/stdout``) gets the finished bytes written into it.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import gzip
import io
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import InputError, ResourceError

# Of the output's name, at most this many characters go into its temporary's name, so a
# legal name near the file system's 255-byte limit still leaves room for the random part.
TEMPORARY_NAME_CHARACTERS = 120


def output_target(path: str | os.PathLike,
                  inputs: tuple[str | os.PathLike | None, ...] = ()) -> Path:
    """The file that writing ``path`` changes: ``path`` itself, a symbolic link's target, or
    the FIFO or device it names. Raises :class:`InputError` (naming ``path``) for a folder, a
    parent that is not a folder or does not exist (a typo would otherwise leave folders
    behind), a folder this process cannot write, or a file that is one of the command's
    ``inputs`` (also through a link or ``..``), so commands check their outputs before the
    work and never overwrite what they read."""
    if str(path) == "-":
        raise InputError("-: this output is a file (standard output is offered only for text "
                         "such as contacts and samples); give a file name")
    given = Path(path)
    for source in inputs:
        if source is not None and _same_file(given, source):
            raise InputError(f"is also an input of this command ({source}); writing it would "
                             "destroy that input: give another output name", given)
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
    for parent in (target.parent, *target.parent.parents):
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise InputError(f"{parent} is not a folder", given)
            if parent != target.parent:
                missing = target.parent.relative_to(parent).parts[0]
                raise InputError(f"the folder {parent / missing} does not exist; create it "
                                 "first", given)
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InputError(f"cannot write in the folder {parent} (permission denied)",
                                 given)
            break
    return target


def check_outputs(outputs: tuple[str | os.PathLike | None, ...],
                  inputs: tuple[str | os.PathLike | None, ...]) -> None:
    """:func:`output_target` for each given output (None: not asked for), before the work."""
    for output in outputs:
        if output is not None:
            output_target(output, inputs=inputs)


def _same_file(output: Path, source: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(output, source)
    except OSError:  # the output, or a folder on its way (sub/../input), does not exist (yet)
        return os.path.exists(source) and os.path.realpath(output) == os.path.realpath(source)


def _temporary_prefix(target: Path) -> str:
    return f".{target.name[:TEMPORARY_NAME_CHARACTERS]}."


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path`` atomically (see the module
    doc for links and special files).

    ``suffix`` is kept on the temporary name for writers that insist on an extension
    (``numpy.savez`` appends ``.npz``; matplotlib picks a format from it).
    """
    target = output_target(path)
    special = target.exists() and not target.is_file()
    try:
        handle, temporary = tempfile.mkstemp(prefix=_temporary_prefix(target),
                                             suffix=f"{suffix}.tmp",
                                             dir=None if special else target.parent)
    except OSError as error:
        raise _write_error(error, target) from error
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        if special:
            with open(temporary_path, "rb") as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
        else:
            # mkstemp creates 0600: keep the replaced file's permissions, or give a new one
            # those a plain open() would.
            os.chmod(temporary_path, stat.S_IMODE(os.stat(target).st_mode) if target.exists()
                     else 0o666 & ~_current_umask())
            os.replace(temporary_path, target)
    except OSError as error:
        if isinstance(error, BrokenPipeError):
            raise
        raise _write_error(error, target) from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary_path.unlink()


def _write_error(error: OSError, target: Path) -> InputError | ResourceError:
    """A failed write as a one-line error naming the output, not its temporary file."""
    reason = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceError(f"{target}: cannot write: {reason}; free some space or write "
                             "elsewhere")
    return InputError(f"cannot write: {reason}", target)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file for writing (text: UTF-8, whatever the locale); it becomes
    ``path`` only if the block succeeds."""
    encoding = None if "b" in mode else "utf-8"
    with atomic_path(path) as temporary, open(temporary, mode, encoding=encoding) as stream:
        yield stream
        stream.flush()
        os.fsync(stream.fileno())


@contextlib.contextmanager
def atomic_text(path: str | os.PathLike) -> Iterator[IO[str]]:
    """:func:`atomic_open` for text, gzip-compressed when ``path`` ends in ``.gz`` (the
    readers take gzipped inputs, so ``out.tsv.gz`` must not be plain text under that name).
    The gzip header has no time stamp or name: the same content gives the same bytes."""
    if not str(path).lower().endswith(".gz"):
        with atomic_open(path) as stream:
            yield stream
        return
    with atomic_open(path, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed, \
            io.TextIOWrapper(packed, encoding="utf-8") as stream:
        yield stream


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete what a killed writer of ``path`` left: its ``.<name>.*.tmp`` files.

    Only a SIGKILL (or power loss) during :func:`atomic_path` leaves one; call this before
    writing ``path`` again, from the one process that owns it. Returns what was removed.
    """
    target = output_target(path)
    if target.exists() and not target.is_file():
        return []                                    # a FIFO or device has no temporaries
    removed = []
    for leftover in target.parent.glob(f"{glob.escape(_temporary_prefix(target))}*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
            removed.append(leftover)
    return removed
