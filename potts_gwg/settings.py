"""Checks of the numbers that settings objects (``FitOptions``, ``PlmSettings``,
``PcdSettings``) hold, run once when they are made.

Each returns the value as a plain Python ``int`` or ``float``: a numpy scalar (``np.int64``
from an array, ``np.float32``) is accepted and converted, so that it reaches the model file's
JSON meta as a number instead of failing there after the whole fit. A wrong type, a NaN or a
value out of range is a ``TypeError`` / ``ValueError`` naming the setting.
"""

from __future__ import annotations

import math
import numbers
import operator

MAX_SEED = 2 ** 63 - 1  # what every command takes and records (torch takes any 64-bit seed)


def integer(name: str, value, least: int | None = None, most: int | None = None) -> int:
    """``value`` as an ``int`` in [least, most]; floats (even 3.0) and booleans are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = operator.index(value)
    if (least is not None and value < least) or (most is not None and value > most):
        bounds = (f"in {least}..{most}" if least is not None and most is not None
                  else f">= {least}" if least is not None else f"<= {most}")
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return value


def real(name: str, value, least: float | None = None, most: float | None = None,
         above: float | None = None) -> float:
    """``value`` as a finite ``float`` with least <= value <= most and value > above."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    for failed, bound in ((least is not None and value < least, f">= {least}"),
                          (most is not None and value > most, f"<= {most}"),
                          (above is not None and value <= above, f"> {above}")):
        if failed:
            raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def seed(value) -> int:
    """A random seed: an integer in 0..MAX_SEED."""
    return integer("seed", value, 0, MAX_SEED)
