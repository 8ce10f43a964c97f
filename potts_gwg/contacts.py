"""Contact scores from couplings: zero-sum gauge, Frobenius norm over amino acids, APC.

Pure functions on numpy arrays. Shapes: J (L, L, q, q); scores (L, L), symmetric, zero on
the diagonal. Definitions (docs/README):
  F_ij = ‖J̃_ij‖_F, J̃_ij the 20 × 20 amino-acid block of J_ij (gap state excluded) in the
         zero-sum gauge (every row and column of the block sums to zero);
  S_ij = F_ij − F_i· F_·j / F_··  (APC, with F_i· = Σ_j F_ij, diagonal F_ii = 0).
"""

from __future__ import annotations

import numpy as np

GAP = "-"
# Bytes of one float64 block of gauged couplings in ``frobenius_scores``.
GAUGE_BLOCK_BYTES = 8 * 2**20


def zero_sum_gauge(J: np.ndarray) -> np.ndarray:
    """J̃[i,j,a,b] = J − mean over a − mean over b + mean over (a, b), per block (float64)."""
    couplings = J.astype(np.float64)
    return (couplings - couplings.mean(axis=2, keepdims=True)
            - couplings.mean(axis=3, keepdims=True)
            + couplings.mean(axis=(2, 3), keepdims=True))


def frobenius_scores(J: np.ndarray, alphabet: str) -> np.ndarray:
    """F (L, L): Frobenius norms of the zero-sum-gauged blocks over the non-gap states."""
    J = np.asarray(J)
    if J.ndim != 4 or J.shape[0] != J.shape[1] or J.shape[2] != J.shape[3] \
            or J.dtype.kind != "f":
        raise ValueError(f"J must be (L, L, q, q) floats, got shape {J.shape} {J.dtype}")
    if len(alphabet) != J.shape[2]:
        raise ValueError(f"the alphabet {alphabet!r} has {len(alphabet)} letters, J has "
                         f"q = {J.shape[2]} states: the letters name J's states in order")
    if J.size and not (np.isfinite(J.max()) and np.isfinite(J.min())):  # NaN: in both
        raise ValueError("J must be finite: it holds NaN or infinite values (every score of "
                         "the pairs they touch, and through APC most others, would be NaN)")
    residue_states = np.array([index for index, letter in enumerate(alphabet) if letter != GAP],
                              dtype=np.intp)
    length, n_residue_states = J.shape[0], len(residue_states)
    scores = np.empty((length, length))
    # A few rows i at a time: the float64 temporaries stay near GAUGE_BLOCK_BYTES instead of
    # several copies of J (5.4 GiB of fresh pages at L = 458, most of `contacts`' time).
    rows = max(1, GAUGE_BLOCK_BYTES // (8 * max(1, length) * max(1, n_residue_states) ** 2))
    for start in range(0, length, rows):
        block = J[start:start + rows][:, :, residue_states][:, :, :, residue_states]
        scores[start:start + rows] = np.sqrt((zero_sum_gauge(block) ** 2).sum(axis=(2, 3)))
    np.fill_diagonal(scores, 0.0)
    return scores


def average_product_correction(scores: np.ndarray) -> np.ndarray:
    """S = F − F_i· F_·j / F_·· with row/column sums over all j (the diagonal is zero)."""
    row_sums = scores.sum(axis=1)
    total = row_sums.sum()
    if total <= 0:
        corrected = scores.copy()
    else:
        corrected = scores - np.outer(row_sums, row_sums) / total
    np.fill_diagonal(corrected, 0.0)
    return corrected


def contact_scores(J: np.ndarray, alphabet: str, apc: bool = True) -> np.ndarray:
    """The score matrix users rank pairs by: APC-corrected Frobenius norms (or F alone)."""
    scores = frobenius_scores(J, alphabet)
    return average_product_correction(scores) if apc else scores


def ranked_pairs(scores: np.ndarray, min_separation: int = 1,
                 keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j), 0-based, i < j, j − i ≥ min_separation, by decreasing score.

    ``keep`` (L, L) bool, if given, leaves out the pairs where it is False (e.g. residues
    without coordinates). Ties keep (i, j) order, so the ranking is deterministic.
    """
    first, second = np.triu_indices(scores.shape[0], k=max(1, int(min_separation)))
    if keep is not None:
        kept = keep[first, second]
        first, second = first[kept], second[kept]
    order = np.argsort(-scores[first, second], kind="stable")  # triu order is (i, j) order
    return first[order], second[order]
