"""Interrupts held until a safe point: the first waits, a second acts, nothing is lost."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys

import pytest

from potts_gwg.interrupts import held_interrupts


class Stopped(Exception):
    pass


def _raise_stopped(number, frame):
    raise Stopped(number)


@pytest.fixture(autouse=True)
def python_ctrl_c():
    """Python's own Ctrl-C handler, whatever the runner started with (a shell's background
    job ignores SIGINT, which held_interrupts rightly leaves alone)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_first_ctrl_c_is_held_then_raised_when_the_block_ends():
    notices = []
    steps_after = 0
    with pytest.raises(KeyboardInterrupt):
        with held_interrupts(notices.append) as requested:
            assert not requested()
            signal.raise_signal(signal.SIGINT)   # handled before raise_signal returns
            assert requested()
            for _ in range(3):                    # the loop goes on to its safe point
                steps_after += 1
    assert steps_after == 3
    assert notices == ["SIGINT: stopping after this update to save a checkpoint "
                       "(again to stop at once)"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_acts_at_once():
    reached = False
    with pytest.raises(KeyboardInterrupt):
        with held_interrupts() as requested:
            signal.raise_signal(signal.SIGINT)
            assert requested()
            signal.raise_signal(signal.SIGINT)
            reached = True
    assert not reached
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_go_to_the_previous_handler_after_the_block(number):
    previous = signal.signal(number, _raise_stopped)
    try:
        with pytest.raises(Stopped):
            with held_interrupts() as requested:
                signal.raise_signal(number)
                assert requested()
        assert signal.getsignal(number) is _raise_stopped
    finally:
        signal.signal(number, previous)


def test_a_second_sighup_is_the_same_hang_up_not_a_request_to_stop_at_once():
    """A closed terminal sends SIGHUP twice (the shell, then the kernel): the fit must still
    reach its safe point and save its checkpoint; the held signal is passed on once."""
    caught = []
    previous = signal.signal(signal.SIGHUP, lambda number, frame: caught.append(number))
    try:
        with held_interrupts() as requested:
            signal.raise_signal(signal.SIGHUP)
            signal.raise_signal(signal.SIGHUP)
            assert requested() and caught == []
            reached_safe_point = True
        assert reached_safe_point and caught == [signal.SIGHUP]
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_output_to_a_hung_up_terminal_goes_to_dev_null_after_sighup():
    """Writing to a terminal that hung up fails (EIO): a fit stopping for SIGHUP would die on
    its own progress line before saving its checkpoint. Pipes and files are left alone."""
    code = ("import os, pty\n"
            "from potts_gwg.interrupts import detach_from_terminal\n"
            "master, terminal = pty.openpty()\n"
            "os.dup2(terminal, 2)\n"
            "os.close(master)  # the terminal hangs up\n"
            "try:\n"
            "    os.write(2, b'progress')\n"
            "except OSError as error:\n"
            "    print('refused', error.errno)\n"
            "detach_from_terminal()\n"
            "os.write(2, b'progress')\n"
            "print('written')\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=60)
    assert completed.returncode == 0
    assert completed.stdout == f"refused {errno.EIO}\nwritten\n"  # stdout, a pipe, still works


def test_an_ignored_signal_stays_ignored_and_nothing_is_requested():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with held_interrupts() as requested:
        signal.raise_signal(signal.SIGINT)
        assert not requested()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_nothing_is_held_when_nothing_arrives():
    with held_interrupts() as requested:
        assert not requested()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
