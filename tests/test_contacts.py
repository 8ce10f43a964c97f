"""Contact scores: gauge invariance, APC, ranking, and parity with CCMpred's convention."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from potts_gwg import contacts
from potts_gwg.alphabet import PROTEIN_ALPHABET
from potts_gwg.contacts import (average_product_correction, contact_scores, frobenius_scores,
                                ranked_pairs, zero_sum_gauge)
from potts_gwg.io.model_file import load_model


def random_couplings(length: int, n_states: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    J = rng.normal(size=(length, length, n_states, n_states))
    J = 0.5 * (J + J.transpose(1, 0, 3, 2))
    J[np.arange(length), np.arange(length)] = 0.0
    return J


def test_zero_sum_gauge_rows_and_columns_sum_to_zero():
    gauged = zero_sum_gauge(random_couplings(5, 4, seed=1))
    assert np.abs(gauged.sum(axis=2)).max() < 1e-12
    assert np.abs(gauged.sum(axis=3)).max() < 1e-12


def test_frobenius_scores_do_not_depend_on_the_gauge():
    """Adding u_ij(a) + v_ij(b) to a block (a gauge change, over amino acids) leaves F unchanged."""
    J = random_couplings(6, 21, seed=2)
    rng = np.random.default_rng(3)
    shifted = J + rng.normal(size=(6, 6, 21, 1)) + rng.normal(size=(6, 6, 1, 21))
    np.testing.assert_allclose(frobenius_scores(shifted, PROTEIN_ALPHABET),
                               frobenius_scores(J, PROTEIN_ALPHABET), atol=1e-10)


def test_frobenius_scores_are_the_same_however_many_rows_are_gauged_at_once(monkeypatch):
    """``frobenius_scores`` gauges a few rows i at a time (memory); one row at a time gives
    bitwise the scores of the whole array at once."""
    J = random_couplings(9, 21, seed=5).astype(np.float32)
    whole = frobenius_scores(J, PROTEIN_ALPHABET)
    monkeypatch.setattr(contacts, "GAUGE_BLOCK_BYTES", 1)
    assert np.array_equal(frobenius_scores(J, PROTEIN_ALPHABET), whole)
    residue = list(range(20))
    blocks = zero_sum_gauge(J[:, :, residue][:, :, :, residue])
    expected = np.sqrt((blocks ** 2).sum(axis=(2, 3)))
    np.fill_diagonal(expected, 0.0)
    assert np.array_equal(whole, expected)


def test_frobenius_scores_ignore_the_gap_state():
    J = random_couplings(4, 21, seed=4)
    changed = J.copy()
    changed[:, :, 20, :] += 5.0
    changed[:, :, :, 20] -= 3.0
    np.testing.assert_allclose(frobenius_scores(changed, PROTEIN_ALPHABET),
                               frobenius_scores(J, PROTEIN_ALPHABET))


def test_apc_matches_its_definition():
    F = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [2.0, 3.0, 0.0]])
    sums = F.sum(axis=1)
    expected = F - np.outer(sums, sums) / F.sum()
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(average_product_correction(F), expected)


def test_ranked_pairs_orders_by_score_then_position_and_respects_separation():
    scores = np.zeros((5, 5))
    scores[0, 4] = scores[4, 0] = 2.0
    scores[1, 2] = scores[2, 1] = 1.0
    scores[0, 3] = scores[3, 0] = 1.0
    first, second = ranked_pairs(scores, min_separation=1)
    assert list(zip(first[:3], second[:3])) == [(0, 4), (0, 3), (1, 2)]
    first, second = ranked_pairs(scores, min_separation=3)
    assert set(zip(first, second)) == {(0, 3), (0, 4), (1, 4)}


def ccmpred_convention_scores(J: np.ndarray, alphabet: str) -> np.ndarray:
    """Written out from the definition, loop by loop, independently of potts_gwg.contacts."""
    length = J.shape[0]
    residues = [a for a, letter in enumerate(alphabet) if letter != "-"]
    F = np.zeros((length, length))
    for i in range(length):
        for j in range(length):
            if i == j:
                continue
            block = np.array([[J[i, j, a, b] for b in residues] for a in residues], dtype=float)
            row_means = block.mean(axis=1)
            column_means = block.mean(axis=0)
            total_mean = block.mean()
            gauged = [[block[a, b] - row_means[a] - column_means[b] + total_mean
                       for b in range(len(residues))] for a in range(len(residues))]
            F[i, j] = np.sqrt(sum(value * value for row in gauged for value in row))
    S = np.zeros_like(F)
    total = F.sum()
    for i in range(length):
        for j in range(length):
            if i != j:
                S[i, j] = F[i, j] - F[i, :].sum() * F[:, j].sum() / total
    return S


def test_scores_rank_pairs_like_ccmpred_convention_on_a_real_family(example_model):
    model = load_model(example_model)
    ours = contact_scores(model.J, model.alphabet)
    reference = ccmpred_convention_scores(model.J, model.alphabet)
    upper = np.triu_indices(model.length, k=1)
    rho = spearmanr(ours[upper], reference[upper]).statistic
    assert rho >= 0.95
    np.testing.assert_allclose(ours, reference, atol=1e-5)


@pytest.mark.parametrize("apc", [True, False])
def test_contact_scores_symmetric_with_zero_diagonal(apc):
    scores = contact_scores(random_couplings(7, 21, seed=5), PROTEIN_ALPHABET, apc=apc)
    np.testing.assert_allclose(scores, scores.T)
    assert np.all(np.diag(scores) == 0.0)


def test_an_alphabet_or_shape_that_does_not_fit_J_is_refused():
    """With the wrong alphabet the gap state would be taken for a residue, silently."""
    J = random_couplings(4, 3, seed=0)
    with pytest.raises(ValueError, match="alphabet 'ACGT-' has 5 letters, J has q = 3"):
        contact_scores(J, "ACGT-")
    with pytest.raises(ValueError, match=r"J must be \(L, L, q, q\) floats, got shape \(4, 3, 3\)"):
        contact_scores(J[0], "AC-")
    with pytest.raises(ValueError, match="got shape .* int64"):
        contact_scores(J.astype(np.int64), "AC-")
    for bad in (np.nan, np.inf, -np.inf):  # one NaN coupling made 56 of 64 scores NaN
        broken = J.copy()
        broken[0, 1, 0, 0] = broken[1, 0, 0, 0] = bad
        with pytest.raises(ValueError, match="J must be finite"):
            contact_scores(broken, "AC-")
