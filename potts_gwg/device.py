"""Device choice, made at run time (never at import): ``auto`` falls back to CPU loudly.

Importing this module does not import torch (seconds of start-up): the command line's error
handling and ``--device`` choices load with commands, like ``contacts``, that need no torch.

Also the translation of out-of-memory failures (CUDA, the CPU allocator, Python's
``MemoryError``) into a one-line :class:`ResourceError` that gives the job's memory estimate,
when the stage about to allocate noted one, and what to change.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import sys
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING

from .errors import DeviceError, ResourceError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
AUTO_FALLBACK = "no CUDA GPU found; running on the CPU"  # said whenever auto gets no GPU

if TYPE_CHECKING:
    import torch


def resolve_device(name: str, announce=None) -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N`` into a ``torch.device``.

    ``auto`` takes the first CUDA GPU when there is one and otherwise says, on ``announce``
    (default: stderr), that it fell back to the CPU. ``cuda`` without a GPU is an error.
    """
    import torch

    say = announce or (lambda message: print(message, file=sys.stderr))
    if name == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda", 0)
            say(f"device: auto -> {device} ({torch.cuda.get_device_name(device)})")
            return device
        say(f"device: auto -> cpu ({AUTO_FALLBACK})")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: no CUDA GPU is available on this machine "
                              "(use --device cpu or --device auto)")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
        return device
    raise DeviceError(f"--device {name}: unknown device (choose auto, cpu, cuda or cuda:N)")


def device_description(device: torch.device) -> str:
    """A short human description for logs and benchmark records."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


# (bytes, what) of the job now allocating, noted by the stage that estimated it.
_memory_estimate: contextvars.ContextVar[tuple[int, str] | None] = contextvars.ContextVar(
    "potts_gwg_memory_estimate", default=None)
_OUT_OF_MEMORY_TEXT = re.compile(r"out of memory|can't allocate memory|cannot allocate memory",
                                 re.IGNORECASE)


def note_memory_estimate(needed_bytes: int, what: str) -> None:
    """Remember the estimate of the job about to allocate (e.g. ``"a PLM fit of L=300,
    N=5000"``), so an out-of-memory failure can quote it."""
    _memory_estimate.set((int(needed_bytes), what))


@contextlib.contextmanager
def memory_estimate_scope() -> Iterator[None]:
    """One command or one batch family: estimates noted inside are forgotten after it."""
    token = _memory_estimate.set(None)
    try:
        yield
    finally:
        _memory_estimate.reset(token)


def is_out_of_memory(error: BaseException) -> bool:
    """True for torch's OutOfMemoryError (CUDA), an allocator's 'can't allocate memory'
    RuntimeError (CPU) and Python's MemoryError."""
    if isinstance(error, (MemoryError, *_torch_out_of_memory_types())):
        return True
    return isinstance(error, RuntimeError) and bool(_OUT_OF_MEMORY_TEXT.search(str(error)))


def _torch_out_of_memory_types() -> tuple[type[BaseException], ...]:
    """torch's out-of-memory exceptions, if torch is loaded: if it is not, none was raised."""
    torch = sys.modules.get("torch")
    if torch is None:
        return ()
    return (torch.OutOfMemoryError, torch.cuda.OutOfMemoryError)


def out_of_memory_error(error: BaseException,
                        options: Collection[str] | None = None) -> ResourceError:
    """The one-line message for an out-of-memory ``error``: where, how much was asked and
    free (from the allocator's message), the noted estimate, and what to change, among the
    command-line ``options`` of the command that failed (None: all of them)."""
    from .fit.memory import format_bytes

    text = str(error)
    on_gpu = isinstance(error, _torch_out_of_memory_types()) or "CUDA" in text
    details = []
    tried = re.search(r"[Tt]ried to allocate ([0-9.]+ [KMGT]?i?B)", text)
    tried_bytes = re.search(r"tried to allocate (\d+) bytes", text)
    if tried:
        details.append(f"tried to allocate {tried.group(1)}")
    elif tried_bytes:
        details.append(f"tried to allocate {format_bytes(int(tried_bytes.group(1)))}")
    capacity = re.search(r"total capacity of ([0-9.]+ [KMGT]?i?B) of which ([0-9.]+ [KMGT]?i?B) "
                         r"is free", text)
    if capacity:
        details.append(f"{capacity.group(2)} free of {capacity.group(1)}")
    where = "the GPU" if on_gpu else "the host (CPU memory)"
    message = f"out of memory on {where}" + (f" ({'; '.join(details)})" if details else "")
    estimate = _memory_estimate.get()
    if estimate is not None:
        message += f"; {estimate[1]} was estimated to need about {format_bytes(estimate[0])}"

    def offered(option: str) -> bool:
        return options is None or option in options

    changes = []
    if offered("--max-memory"):  # the commands that read alignments
        changes.append("a smaller alignment (fewer sequences or columns)")
    if offered("--chains"):
        changes.append("fewer --chains")
    if on_gpu and (offered("--device") or offered("--devices")):
        changes.append("--device cpu" if options is None or "--device" in options
                       else "--devices cpu")
    if offered("--max-memory"):
        changes.append("--max-memory SIZE to have jobs that cannot fit refused before they "
                       "start")
    if not changes:
        return ResourceError(f"{message}; use a machine with more memory")
    advice = changes[0] if len(changes) == 1 else f"{', '.join(changes[:-1])} or {changes[-1]}"
    return ResourceError(f"{message}; change: {advice}")
