"""Contact-prediction precision against a structure's distances (docs: "Precision").

All matrices are (L, L) over query positions (0-based here, 1-based in every output).
Distances are in Å with NaN where a residue has no coordinates; pairs touching such a residue
are left out of the ranking, not counted as non-contacts.
"""

from __future__ import annotations

import numpy as np

from potts_gwg.contacts import ranked_pairs
from potts_gwg.errors import InputError

SEPARATIONS = (6, 12, 24)
FRACTIONS = {"L": 1, "L/2": 2, "L/5": 5}
CONTACT_CUTOFF = 8.0


def native_contacts(distances: np.ndarray, cutoff: float = CONTACT_CUTOFF) -> np.ndarray:
    """(L, L) bool: distance < cutoff (Å); NaN distances are False."""
    return np.nan_to_num(np.asarray(distances, dtype=np.float64), nan=np.inf) < cutoff


def precision_at(scores: np.ndarray, distances: np.ndarray, min_separation: int, top: int,
                 cutoff: float = CONTACT_CUTOFF) -> float:
    """Fraction of contacts among the ``top`` best-scored known pairs, j − i ≥ min_separation.

    Fewer than ``top`` known pairs: the fraction is over those there are; none: NaN. NaN
    scores rank last.
    """
    distances = _same_shape(scores, distances)
    i, j = ranked_pairs(scores, min_separation, np.isfinite(distances))
    return _precision(distances[i[:top], j[:top]], cutoff)


def precision_table(scores: np.ndarray, distances: np.ndarray,
                    separations: tuple[int, ...] = SEPARATIONS,
                    cutoff: float = CONTACT_CUTOFF) -> list[dict]:
    """Precision at top L, L/2, L/5 (k = max(1, L // f)) for each minimum separation.

    One dict per (separation, fraction): min_separation, top ("L", "L/2", "L/5"), k,
    precision, n_evaluated (pairs actually ranked: min(k, known pairs)).
    """
    distances = _same_shape(scores, distances)
    length = distances.shape[0]
    table = []
    for separation in separations:
        i, j = ranked_pairs(scores, separation, np.isfinite(distances))
        ranked_distances = distances[i, j]
        for label, divisor in FRACTIONS.items():
            k = max(1, length // divisor)
            table.append({"min_separation": separation, "top": label, "k": k,
                          "precision": _precision(ranked_distances[:k], cutoff),
                          "n_evaluated": len(ranked_distances[:k])})
    return table


def _precision(distances_of_ranked: np.ndarray, cutoff: float) -> float:
    """Fraction of the given pair distances below cutoff; NaN when there are none."""
    if len(distances_of_ranked) == 0:
        return float("nan")
    return float((distances_of_ranked < cutoff).mean())


def _same_shape(scores: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """``distances`` as float64, checked to have the (L, L) shape of ``scores``."""
    scores, distances = _square(scores, "scores"), _square(distances, "distances")
    if scores.shape != distances.shape:
        raise InputError(f"scores {scores.shape} and distances {distances.shape} differ in shape")
    return distances


def _square(matrix: np.ndarray, name: str) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise InputError(f"{name} must be a square (L, L) matrix, got shape {matrix.shape}")
    return matrix
