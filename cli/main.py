"""The ``potts-gwg`` command group and its error handling.

Every command raises the library's :class:`~potts_gwg.errors.PottsError` subclasses for
problems the user can fix; here they become ``error: <one line>`` on stderr and the error's
exit status, never a traceback. Out of memory anywhere (CUDA, the CPU allocator) becomes a
:class:`~potts_gwg.errors.ResourceError` (exit 3). Ctrl-C, SIGTERM and SIGHUP (the terminal
closed) unwind the command like an exception, so atomic writes remove their temporary files and
no partial output is left.
Set ``POTTS_GWG_DEBUG=1`` to see tracebacks of unexpected failures.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import signal
import sys
import threading

import click

from potts_gwg import __version__
from potts_gwg.device import (
    is_out_of_memory,
    memory_estimate_scope,
    out_of_memory_error,
)
from potts_gwg.errors import InputError, PottsError, ResourceError
from potts_gwg.interrupts import HANGUP, detach_from_terminal

from .entry import EXIT_INTERRUPTED

EXIT_INTERNAL = 70
EXIT_TERMINATED = 128 + signal.SIGTERM  # SIGHUP: 128 + 1
TERMINATING_SIGNALS = (signal.SIGTERM, HANGUP) if HANGUP is not None else (signal.SIGTERM,)

# The commands: name -> (module of this package, the summary `potts-gwg --help` lists, which is
# the first sentence of the command's own help). A command's module is imported only when it
# runs: importing them all (torch among them, ~2 s) would slow `--help` and `contacts`.
COMMANDS = {
    "batch": ("batch", "Fit and evaluate every family of INPUT into OUTDIR/<id>/, resumably."),
    "contacts": ("contacts",
                 "Predict contacts from the Potts MODEL file written by `potts-gwg fit`."),
    "ebm": ("ebm", "Energy-based models on binary or categorical data: PCD training with GWG "
                   "or Gibbs chains, sampling, and AIS evaluation."),
    "fit": ("fit", "Fit a Potts model to the alignment MSA and write it as an .npz model file."),
    "msa-info": ("msa_info", "Summarise the alignment MSA as the other commands will see it."),
    "sample": ("sample", "Sample sequences from the Potts model in MODEL (an .npz written by "
                         "`potts-gwg fit`)."),
}


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread: whatever cleans up after Ctrl-C runs for
    it too."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum, frame):
    if signum == HANGUP:
        # A hang-up comes twice (the shell, then the kernel): the second must not cut the
        # clean-up short (a batch's closing summary) or kill the process after it.
        signal.signal(HANGUP, signal.SIG_IGN)
        detach_from_terminal()
    raise Terminated(signum)


@contextlib.contextmanager
def _sigterm_unwinds():
    """While a command runs, SIGTERM and SIGHUP raise :class:`Terminated` instead of killing
    the process outright (which would skip ``finally`` blocks and leave temporary files). An
    ignored signal (SIGHUP under ``nohup``) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for number in TERMINATING_SIGNALS:
        handler = signal.getsignal(number)
        if handler is not signal.SIG_IGN and handler is not None:
            previous[number] = signal.signal(number, _raise_terminated)
    try:
        yield
    finally:
        for number, handler in previous.items():
            if number != HANGUP or signal.getsignal(number) is _raise_terminated:
                signal.signal(number, handler)  # (hung up: SIGHUP stays ignored to the exit)


class LazyGroup(click.Group):
    """A Click group whose ``lazy_commands`` (name -> (module of this package, summary), as
    :data:`COMMANDS`) are listed by ``--help`` from their summaries and imported only when
    they run."""

    def __init__(self, *args, lazy_commands: dict[str, tuple[str, str]] | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in self.lazy_commands:
            module = importlib.import_module(f"{__package__}.{self.lazy_commands[name][0]}")
            command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list with each first sentence whole (wrapped, not cut); a lazy
        command's comes without importing it."""
        rows = [(name, self.commands[name].get_short_help_str(limit=1000)
                 if name in self.commands else self.lazy_commands[name][1])
                for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class PottsGroup(LazyGroup):
    """A Click group that reports library errors as one line and a non-zero exit status."""

    def invoke(self, ctx: click.Context):
        with memory_estimate_scope():  # outside the handlers: they quote the estimate
            return self._invoke_reporting_errors(ctx)

    def _options_of(self, ctx: click.Context) -> set[str] | None:
        """The options of the subcommand that ran (to suggest only what it offers)."""
        command = self.get_command(ctx, ctx.invoked_subcommand or "")
        if command is None:
            return None
        return {name for parameter in command.params for name in parameter.opts}

    def _invoke_reporting_errors(self, ctx: click.Context):
        try:
            with _sigterm_unwinds():
                return super().invoke(ctx)
        except PottsError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(error.exit_code)
        except BrokenPipeError:
            # The reader of our output went away (e.g. `| head`): stop quietly.
            _silence_standard_output()
            sys.exit(0)
        except Terminated as error:
            click.echo(f"error: terminated ({signal.Signals(error.signum).name})", err=True)
            sys.exit(128 + error.signum)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except OSError as error:
            # The system refused a read or write the command could not check beforehand
            # (a full disk, standard output on /dev/full): say what and where, no traceback.
            resource = error.errno in (errno.ENOSPC, errno.EDQUOT)
            where = (f"{error.filename}: " if error.filename is not None else
                     "writing the output: " if resource or error.errno == errno.EIO else "")
            click.echo(f"error: {where}{error.strerror or error}", err=True)
            _silence_standard_output()  # the exit's flush of stdout would fail again
            sys.exit(ResourceError.exit_code if resource else InputError.exit_code)
        except Exception as error:  # an unexpected bug: one line, traceback on request
            if is_out_of_memory(error):
                resource_error = out_of_memory_error(error, self._options_of(ctx))
                click.echo(f"error: {resource_error}", err=True)
                sys.exit(resource_error.exit_code)
            if os.environ.get("POTTS_GWG_DEBUG"):
                raise
            click.echo(f"error: internal error ({type(error).__name__}: {error}); "
                       "rerun with POTTS_GWG_DEBUG=1 for the traceback and report it",
                       err=True)
            sys.exit(EXIT_INTERNAL)


def _silence_standard_output() -> None:
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@click.group(cls=PottsGroup, lazy_commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="potts-gwg")
def main():
    """Protein Potts models: read an MSA, fit a Potts model, predict residue contacts.

    \b
    Typical use:
      potts-gwg msa-info family.a3m
      potts-gwg fit family.a3m -o family.npz
      potts-gwg contacts family.npz --pdb 1abc.pdb --chain A
      potts-gwg sample family.npz -n 1000 -o samples.fasta
      potts-gwg batch families.tsv -o results/

    Positions are 1-based query columns: the query is the first record unless --query,
    --query-index or --query-file says otherwise; insert states and columns where the query
    has a gap are dropped.
    """
