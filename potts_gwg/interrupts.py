"""Ctrl-C, SIGTERM and SIGHUP held back until a long loop reaches a point where its state is
whole.

A PCD update changes the parameters and the chains in place; an interrupt in the middle would
leave a state no checkpoint should hold. Inside :func:`held_interrupts` the first SIGINT,
SIGTERM or SIGHUP (the terminal closed, e.g. a dropped ssh session) only sets a flag that the
loop polls between updates (it then saves its checkpoint and stops); a second one acts at once
(but not a second SIGHUP: a hang-up is sent twice). When the block ends, a held signal is
raised again and handled as it would have been (Ctrl-C: ``KeyboardInterrupt``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
from collections.abc import Callable, Iterator

HANGUP = getattr(signal, "SIGHUP", None)  # not on Windows
HELD_SIGNALS = tuple(number for number in (signal.SIGINT, signal.SIGTERM, HANGUP)
                     if number is not None)


def detach_from_terminal() -> None:
    """After SIGHUP the terminal is gone and writing to it fails (EIO): standard output and
    error, where they are such a terminal, go to /dev/null, so that the checkpoint or clean-up
    that follows is not cut short by its own progress lines."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for descriptor in (1, 2):
            if _hung_up(descriptor):
                os.dup2(null, descriptor)
    finally:
        os.close(null)


def _hung_up(descriptor: int) -> bool:
    """A terminal that hung up answers EIO (``isatty`` is then False); files, pipes and live
    terminals do not."""
    import termios  # Unix only, as SIGHUP

    try:
        termios.tcgetattr(descriptor)
    except termios.error as error:
        return error.args[0] == errno.EIO
    except OSError:
        return False
    return False


@contextlib.contextmanager
def held_interrupts(notice: Callable[[str], None] = lambda message: None
                    ) -> Iterator[Callable[[], bool]]:
    """Yield ``requested()``: True once an interrupt is held. ``notice`` tells the user what
    happens. Signal handlers belong to the main thread: elsewhere nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    # An ignored signal stays ignored (batch workers ignore Ctrl-C: the batch handles it), and
    # a handler set outside Python (None: not restorable) is left alone.
    previous = {number: handler for number in HELD_SIGNALS
                if (handler := signal.getsignal(number)) not in (signal.SIG_IGN, None)}
    received: list[int] = []

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    def hold(number: int, frame) -> None:
        if received and number == HANGUP:  # a hang-up comes twice (the shell, the kernel):
            return                          # not a request to stop at once
        if received:                       # asked twice: act now, as without holding
            received.clear()
            restore()
            signal.raise_signal(number)
            return
        received.append(number)
        if number == HANGUP:
            detach_from_terminal()
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
