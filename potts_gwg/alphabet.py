"""The amino-acid alphabet and the encoding of aligned sequences to state indices.

Convention (docs/README): q = 21 states in the order ``ACDEFGHIKLMNPQRSTVWY-``; the gap is
the last state. Letters outside the alphabet (B, J, O, U, X, Z, ``*``) count as gap and are
counted so the user can be told how many there were.
"""

from __future__ import annotations

import numpy as np

PROTEIN_ALPHABET = "ACDEFGHIKLMNPQRSTVWY-"
GAP = "-"
NONSTANDARD_LETTERS = "BJOUXZ*"


def encoding_table(alphabet: str = PROTEIN_ALPHABET) -> np.ndarray:
    """A 256-entry lookup from byte to state index; -1 marks bytes that are not allowed.

    Upper- and lower-case letters of the alphabet map to their index; ``-`` and ``.`` and the
    non-standard letters map to the gap index (the alphabet's ``-``, or its last state).
    """
    table = np.full(256, -1, dtype=np.int16)
    gap_index = alphabet.index(GAP) if GAP in alphabet else len(alphabet) - 1
    for letter in NONSTANDARD_LETTERS + "-.":
        table[ord(letter)] = gap_index
        table[ord(letter.lower())] = gap_index
    for index, letter in enumerate(alphabet):
        table[ord(letter)] = index
        table[ord(letter.lower())] = index
    return table


def nonstandard_mask(rows: np.ndarray) -> np.ndarray:
    """Boolean mask of the bytes in ``rows`` (uint8 array) that are non-standard letters."""
    lookup = np.zeros(256, dtype=bool)
    for letter in NONSTANDARD_LETTERS:
        lookup[ord(letter)] = True
        lookup[ord(letter.lower())] = True
    return lookup[rows]
