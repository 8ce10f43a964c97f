"""The ``potts-gwg`` entry point. Ctrl-C while the command line loads is one line and exit
130 too, not a traceback from inside an import (the command that runs loads its own modules,
torch for most, under the group's error handling). The process's allocator keeps freed arrays
for reuse first (:mod:`potts_gwg.allocator`)."""

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
