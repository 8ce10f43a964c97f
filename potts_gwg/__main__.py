"""``python -m potts_gwg`` runs the ``potts-gwg`` command line."""

from potts_gwg.cli.entry import run

run()
