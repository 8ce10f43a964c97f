"""The ``potts-gwg`` command line: thin Click commands over the library (installed as
potts_gwg.cli)."""
