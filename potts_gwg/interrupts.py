"""Ctrl-C and SIGTERM held back until a long loop reaches a point where its state is whole.

A PCD update changes the parameters and the chains in place; an interrupt in the middle would
leave a state no checkpoint should hold. Inside :func:`held_interrupts` the first SIGINT or
SIGTERM only sets a flag that the loop polls between updates (it then saves its checkpoint and
stops); a second one acts at once. When the block ends, a held signal is raised again and
handled as it would have been (Ctrl-C: ``KeyboardInterrupt``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def held_interrupts(notice: Callable[[str], None] = lambda message: None
                    ) -> Iterator[Callable[[], bool]]:
    """Yield ``requested()``: True once an interrupt is held. ``notice`` tells the user what
    happens. Signal handlers belong to the main thread: elsewhere nothing is held."""
    previous = {number: signal.getsignal(number) for number in HELD_SIGNALS}
    # An ignored signal stays ignored (batch workers ignore Ctrl-C: the batch handles it).
    previous = {number: handler for number, handler in previous.items()
                if handler is not signal.SIG_IGN}
    if threading.current_thread() is not threading.main_thread() or None in previous.values():
        yield lambda: False               # (None: a handler set outside Python, not restorable)
        return
    received: list[int] = []

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    def hold(number: int, frame) -> None:
        if received:                       # asked twice: act now, as without holding
            received.clear()
            restore()
            signal.raise_signal(number)
            return
        received.append(number)
        notice(f"{signal.Signals(number).name}: stopping after this update to save a "
               "checkpoint (again to stop at once)")

    for number in previous:
        signal.signal(number, hold)
    try:
        yield lambda: bool(received)
    finally:
        restore()
        if received:
            signal.raise_signal(received[0])
