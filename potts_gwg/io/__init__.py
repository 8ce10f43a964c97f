"""File formats: alignments, structures, model files."""
