"""The project's own exceptions: each carries a one-line message meant for the user.

The CLI turns these into ``error: <message>`` on stderr and a non-zero exit status, never a
traceback. Library code raises them at the boundary (reading files, validating arguments) and
names the file, the record or line, and what is wrong.
"""

from __future__ import annotations

import os


class PottsError(Exception):
    """Base class: a failure the user can act on, with a one-line message."""

    exit_code = 1


class InputError(PottsError):
    """A file or argument the user gave is unusable (missing, malformed, inconsistent)."""

    exit_code = 2

    def __init__(self, message: str, path: str | os.PathLike | None = None,
                 record: str | None = None, line: int | None = None):
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if record is not None:
            where.append(f"record {record}")
        text = f"{', '.join(where)}: {message}" if where else message
        super().__init__(" ".join(text.split()))
        self.path = None if path is None else str(path)
        self.record = record
        self.line = line


class ResourceError(PottsError):
    """The job does not fit the device or the memory limit (the message gives the estimate
    and what to change), or a resource it needs is busy (an output folder locked by another
    batch run): waiting, a smaller job or another place may succeed where the same command
    fails now."""

    exit_code = 3


class DeviceError(PottsError):
    """The requested device is not available (e.g. ``--device cuda`` without a GPU)."""

    exit_code = 4


class NumericalError(PottsError):
    """The objective or the parameters became NaN/Inf during a fit."""

    exit_code = 5
