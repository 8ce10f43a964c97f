"""The ``potts-gwg`` entry point. Loading the command line imports torch (seconds): Ctrl-C
then is one line and exit 130 too, not a traceback from inside an import."""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130


def run() -> None:
    try:
        from .main import main
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    main(prog_name="potts-gwg")
