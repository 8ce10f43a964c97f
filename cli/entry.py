"""The ``potts-gwg`` entry point. Loading the command line imports torch (seconds): Ctrl-C
then is one line and exit 130 too, not a traceback from inside an import. The process's
allocator keeps freed arrays for reuse first (:mod:`potts_gwg.allocator`)."""

from __future__ import annotations

import sys

from ..allocator import keep_freed_memory

EXIT_INTERRUPTED = 130


def run() -> None:
    keep_freed_memory()
    try:
        from .main import main
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    main(prog_name="potts-gwg")
