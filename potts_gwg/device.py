"""Device choice, made at run time (never at import): ``auto`` falls back to CPU loudly."""

from __future__ import annotations

import sys

import torch

from .errors import DeviceError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str, announce=None) -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N`` into a ``torch.device``.

    ``auto`` takes the first CUDA GPU when there is one and otherwise says, on ``announce``
    (default: stderr), that it fell back to the CPU. ``cuda`` without a GPU is an error.
    """
    say = announce or (lambda message: print(message, file=sys.stderr))
    if name == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda", 0)
            say(f"device: auto -> {device} ({torch.cuda.get_device_name(device)})")
            return device
        say("device: auto -> cpu (no CUDA GPU found; running on the CPU)")
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
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
