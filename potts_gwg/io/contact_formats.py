"""Writers for contact predictions: tsv (default), CCMpred matrix, CASP RR, EVcouplings csv.

Positions are 1-based query columns. Pairs are ranked by decreasing score (ties in (i, j)
order). The caller opens the stream (``contacts_stage``: an atomic file or standard output).
"""

from __future__ import annotations

import textwrap
from typing import IO

import numpy as np

from ..contacts import ranked_pairs

CONTACT_FORMATS = ("tsv", "mat", "casp", "csv")
CASP_CUTOFF_ANGSTROM = 8
CASP_SEQUENCE_LINE = 50
CASP_LINE = 80               # characters a line at most


def dump_contacts(stream: IO[str], format: str, scores: np.ndarray, min_separation: int = 1,
                  sequence: str | None = None, raw_scores: np.ndarray | None = None,
                  target: str = "target", apc: bool = True, top: int | None = None,
                  remarks: tuple[str, ...] = ()) -> None:
    """Write ``scores`` (L, L) in ``format`` into the text ``stream``; ``raw_scores`` (F before
    APC) for ``csv``; ``apc`` says whether ``scores`` are APC-corrected (CASP's METHOD line);
    ``remarks`` become CASP REMARK lines (where the scores come from: model file, seed);
    ``top`` (at least 1; more than there are pairs writes them all) keeps the best pairs after
    the ``min_separation`` filter."""
    if format not in CONTACT_FORMATS:
        raise ValueError(f"unknown contact format {format!r}")
    if top is not None and format == "mat":
        raise ValueError("top keeps the best ranked pairs; the mat format writes every pair")
    if top is not None and top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    if format == "mat":
        # As CCMpred writes it: shifted so that the lowest pair is 0 (APC scores can be
        # negative), so the diagonal and the pairs closer than min_separation, written as 0,
        # rank last for any reader that ranks the whole matrix.
        low = min(0.0, _pair_range(scores)[0])
        rows, columns = np.indices(scores.shape)
        matrix = np.where(np.abs(rows - columns) < max(1, min_separation), 0.0, scores - low)
        np.savetxt(stream, matrix, fmt="%.6e", delimiter="\t")
        return
    first, second = ranked_pairs(scores, min_separation)
    ranked_values = scores[first, second]
    first, second, values = first[:top], second[:top], ranked_values[:top]
    if format == "tsv":
        stream.write("i\tj\tscore\n")
        stream.writelines(f"{i + 1}\t{j + 1}\t{value:.6g}\n"
                          for i, j, value in zip(first, second, values))
    elif format == "csv":
        letters = sequence or "X" * scores.shape[0]
        raw = raw_scores if raw_scores is not None else scores
        stream.write("i,A_i,j,A_j,fn,cn\n")
        stream.writelines(f"{i + 1},{letters[i]},{j + 1},{letters[j]},{raw[i, j]:.6g},{value:.6g}\n"
                          for i, j, value in zip(first, second, values))
    elif format == "casp":
        score = "Frobenius norm with APC" if apc else "Frobenius norm, no APC"
        stream.write(f"PFRMAT RR\nTARGET {_ascii(target)}\nAUTHOR potts-gwg\n")
        for remark in remarks:
            stream.writelines(f"REMARK {part}\n" for part in _remark_lines(remark))
        stream.write(f"METHOD Potts model couplings, {score}\n"
                     # (at most CASP_LINE characters a line)
                     "METHOD p = score rescaled to [0, 1] over all pairs, not a calibrated "
                     "probability\nMODEL 1\n")
        if sequence:
            for start in range(0, len(sequence), CASP_SEQUENCE_LINE):
                stream.write(sequence[start:start + CASP_SEQUENCE_LINE] + "\n")
        # Rescaled over all pairs, so a pair's p depends neither on top nor on min_separation
        probabilities = _scores_to_unit_interval(ranked_values, *_pair_range(scores))[:top]
        stream.writelines(f"{i + 1} {j + 1} 0 {CASP_CUTOFF_ANGSTROM} {p:.4f}\n"
                          for i, j, p in zip(first, second, probabilities))
        stream.write("END\n")


def _ascii(text: str) -> str:
    """``text`` with its whitespace runs as one space and its other characters than ASCII as
    backslash escapes (also a file name's bytes that are no UTF-8, held as surrogates)."""
    return " ".join(text.split()).encode("ascii", "backslashreplace").decode("ascii")


def _remark_lines(remark: str) -> list[str]:
    """``remark`` (:func:`_ascii`) on lines of at most CASP_LINE characters with their
    ``REMARK `` prefix; a break keeps its space at the line's end, so the lines joined give
    the remark back."""
    return textwrap.wrap(_ascii(remark), CASP_LINE - len("REMARK "), drop_whitespace=False,
                         break_on_hyphens=False)


def _pair_range(scores: np.ndarray) -> tuple[float, float]:
    """The lowest and highest score over the pairs i < j ((0, 0) for L = 1)."""
    upper = scores[np.triu_indices(scores.shape[0], k=1)]
    return (float(upper.min()), float(upper.max())) if upper.size else (0.0, 0.0)


def _scores_to_unit_interval(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """CASP RR wants a confidence in [0, 1]: scores rescaled linearly from [low, high] (rank
    order kept)."""
    if high <= low:
        return np.ones_like(values)
    return (values - low) / (high - low)
