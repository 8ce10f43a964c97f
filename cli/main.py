"""The ``potts-gwg`` command group and its error handling.

Every command raises the library's :class:`~potts_gwg.errors.PottsError` subclasses for
problems the user can fix; here they become ``error: <one line>`` on stderr and the error's
exit status, never a traceback. Set ``POTTS_GWG_DEBUG=1`` to see tracebacks of unexpected
failures.
"""

from __future__ import annotations

import os
import sys

import click

from potts_gwg import __version__
from potts_gwg.errors import PottsError

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class PottsGroup(click.Group):
    """A Click group that reports library errors as one line and a non-zero exit status."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PottsError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(error.exit_code)
        except BrokenPipeError:
            # The reader of our output went away (e.g. `| head`): stop quietly.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except MemoryError:
            click.echo("error: out of memory (see --max-memory, or use a machine with more "
                       "memory)", err=True)
            sys.exit(3)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as error:  # an unexpected bug: one line, traceback on request
            if os.environ.get("POTTS_GWG_DEBUG"):
                raise
            click.echo(f"error: internal error ({type(error).__name__}: {error}); "
                       "rerun with POTTS_GWG_DEBUG=1 for the traceback and report it",
                       err=True)
            sys.exit(EXIT_INTERNAL)


@click.group(cls=PottsGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                "max_content_width": 100})
@click.version_option(__version__, prog_name="potts-gwg")
def main():
    """Protein Potts models: read an MSA, fit a Potts model, predict residue contacts.

    \b
    Typical use:
      potts-gwg msa-info family.a3m
      potts-gwg fit family.a3m -o family.npz
      potts-gwg contacts family.npz --pdb 1abc.pdb --chain A

    Positions are 1-based query columns: the query is the first record unless --query,
    --query-index or --query-file says otherwise; insert states and columns where the query
    has a gap are dropped.
    """


def _register_commands() -> None:
    from . import batch, contacts, fit, msa_info, sample

    for module in (msa_info, fit, contacts, sample, batch):
        main.add_command(module.command)


_register_commands()
