"""``python -m potts_gwg`` runs the ``potts-gwg`` command line."""

from potts_gwg.cli.main import main

main(prog_name="potts-gwg")
