"""Precision at top L, L/2, L/5: hand-made cases with known answers and one real family."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from potts_gwg.contacts import ranked_pairs
from potts_gwg.errors import InputError
from potts_gwg.evaluation import (FRACTIONS, SEPARATIONS, native_contacts, precision_at,
                                  precision_table)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FAR = 20.0  # Å, a non-contact
NEAR = 4.0  # Å, a contact


def _pairs(length: int, values: dict[tuple[int, int], float], fill: float) -> np.ndarray:
    """Symmetric (L, L) matrix with ``values`` at the given 0-based pairs, ``fill`` elsewhere."""
    matrix = np.full((length, length), fill)
    for (i, j), value in values.items():
        matrix[i, j] = matrix[j, i] = value
    return matrix


def test_native_contacts():
    distances = np.array([[0.0, 7.99, 8.0], [7.99, 0.0, np.nan], [8.0, np.nan, 0.0]])
    np.testing.assert_array_equal(native_contacts(distances),
                                  [[True, True, False], [True, True, False],
                                   [False, False, True]])
    assert native_contacts(distances, cutoff=8.5)[0, 2]


def test_precision_counts_contacts_among_the_top_pairs():
    distances = _pairs(10, {(0, 9): 5.0, (1, 8): 6.0, (2, 9): 12.0}, FAR)
    scores = _pairs(10, {(0, 9): 3.0, (2, 9): 2.0, (1, 8): 1.0}, 0.0)
    assert precision_at(scores, distances, min_separation=6, top=1) == 1.0
    assert precision_at(scores, distances, min_separation=6, top=2) == 0.5
    assert precision_at(scores, distances, min_separation=6, top=3) == pytest.approx(2 / 3)
    # (1, 8) and (0, 9) are the only contacts; top 4 takes one 0-score non-contact as well.
    assert precision_at(scores, distances, min_separation=6, top=4) == 0.5


def test_pairs_without_coordinates_are_left_out_not_counted_as_non_contacts():
    distances = _pairs(10, {(0, 9): 5.0, (1, 8): 6.0}, FAR)
    distances[3, :] = distances[:, 3] = np.nan  # residue 4 has no coordinates
    scores = _pairs(10, {(3, 9): 9.0, (0, 9): 3.0, (1, 8): 2.0}, 0.0)
    assert precision_at(scores, distances, min_separation=6, top=2) == 1.0
    i, j = ranked_pairs(scores, 6, np.isfinite(distances))
    assert 3 not in i and 3 not in j
    assert (i[0], j[0]) == (0, 9)


def test_ties_are_broken_in_pair_order():
    distances = _pairs(10, {(1, 8): 5.0}, FAR)
    scores = _pairs(10, {(0, 8): 1.0, (1, 8): 1.0, (0, 9): 1.0}, 0.0)
    i, j = ranked_pairs(scores, 6, np.isfinite(distances))
    assert list(zip(i[:3], j[:3])) == [(0, 8), (0, 9), (1, 8)]
    assert precision_at(scores, distances, min_separation=6, top=2) == 0.0
    assert precision_at(scores, distances, min_separation=6, top=3) == pytest.approx(1 / 3)


def test_top_larger_than_the_pairs_available():
    # L = 8 and |i - j| >= 6: only (0, 6), (0, 7), (1, 7); one is a contact.
    distances = _pairs(8, {(0, 7): 4.0}, FAR)
    scores = np.zeros((8, 8))
    assert precision_at(scores, distances, min_separation=6, top=8) == pytest.approx(1 / 3)
    rows = precision_table(scores, distances, separations=(6,))
    assert [(row["top"], row["k"], row["n_evaluated"]) for row in rows] == [
        ("L", 8, 3), ("L/2", 4, 3), ("L/5", 1, 1)]
    assert np.isnan(precision_at(scores, distances, min_separation=8, top=8))


def test_table_layout_and_at_least_one_pair():
    distances = _pairs(4, {(0, 3): 5.0}, FAR)
    rows = precision_table(np.zeros((4, 4)), distances, separations=(1, 3))
    assert [(row["min_separation"], row["top"]) for row in rows] == [
        (s, label) for s in (1, 3) for label in FRACTIONS]
    assert [row["k"] for row in rows] == [4, 2, 1] * 2  # L/5 of 4 is 0, raised to 1
    assert rows[-1] == {"min_separation": 3, "top": "L/5", "k": 1, "precision": 1.0,
                        "n_evaluated": 1}
    assert len(precision_table(np.zeros((4, 4)), distances)) == len(SEPARATIONS) * 3


def test_shape_mismatch_is_an_input_error():
    with pytest.raises(InputError, match="differ in shape"):
        precision_at(np.zeros((5, 5)), np.zeros((6, 6)), 1, 1)
    with pytest.raises(InputError, match="square"):
        precision_table(np.zeros((5, 4)), np.zeros((5, 4)))


def _benchmark_distances(family_id: str) -> np.ndarray:
    """(L, L) stand-in distances from the benchmark files: NEAR for the listed contacts (their
    distances are rounded to 0.001 Å, two read 8.000), FAR for the other known pairs, NaN for
    positions without coordinates (has_coord = 0)."""
    folder = DATA / "families" / family_id
    with open(folder / "mapping.tsv", newline="") as stream:
        has_coordinates = np.array([row["has_coord"] == "1"
                                    for row in csv.DictReader(stream, delimiter="\t")])
    distances = np.full((len(has_coordinates),) * 2, FAR)
    with open(folder / "native_contacts.tsv", newline="") as stream:
        for row in csv.DictReader(stream, delimiter="\t"):
            i, j = int(row["i"]) - 1, int(row["j"]) - 1
            distances[i, j] = distances[j, i] = NEAR
    distances[~has_coordinates, :] = np.nan
    distances[:, ~has_coordinates] = np.nan
    return distances


@pytest.mark.skipif(not (DATA / "families" / "CRY2_4I6E").is_dir(),
                    reason=f"benchmark data not found at {DATA}")
def test_real_family_random_and_perfect_scores():
    distances = _benchmark_distances("CRY2_4I6E")  # L = 458, 14 positions without coordinates
    length = len(distances)
    i, j = np.triu_indices(length, k=6)
    known = np.isfinite(distances[i, j])
    density = float((distances[i, j][known] < 8.0).mean())  # 823 contacts / known pairs
    assert density == pytest.approx(823 / known.sum())

    rng = np.random.default_rng(20240611)
    random_precisions = []
    for _ in range(50):
        noise = rng.random((length, length))
        random_precisions.append(precision_at(noise + noise.T, distances, 6, length))
    # 50 draws of top 458 at density ~0.009: standard error of the mean ~0.0007.
    assert np.mean(random_precisions) == pytest.approx(density, abs=0.004)

    perfect = {(row["min_separation"], row["top"]): row["precision"]
               for row in precision_table(-distances, distances)}
    assert all(perfect[separation, "L/5"] == 1.0 for separation in SEPARATIONS)
    assert perfect[6, "L"] == 1.0  # 823 contacts with |i - j| >= 6 > L
