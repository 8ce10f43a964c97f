"""Sequence weights: the definition on hand-made cases, and the fast count equals the plain one.

The plain count (every pair, one-hot matrix product) is kept here as the reference: the fast
path (duplicates collapsed, pairs pruned by the triangle inequality) must give identical
float32 weights on random, clustered and real alignments, with either kernel.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from potts_gwg.io.msa import read_alignment
from potts_gwg.weights import CENTRES_PER_ROUND, effective_number, sequence_weights

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def reference_weights(indices: np.ndarray, n_states: int, theta: float) -> torch.Tensor:
    """The plain O(N²·L·q) count, as the project computed it before the pruned count."""
    states = torch.as_tensor(np.asarray(indices)).long()
    n_sequences, length = states.shape
    one_hot = torch.nn.functional.one_hot(states, n_states).reshape(n_sequences, -1).float()
    threshold = theta * length - 1e-4
    neighbours = torch.empty(n_sequences)
    for start in range(0, n_sequences, 512):
        matches = one_hot[start:start + 512] @ one_hot.T
        neighbours[start:start + 512] = (matches >= threshold).sum(dim=1).float()
    return 1.0 / neighbours


def clustered(rng: np.random.Generator, n_sequences: int, length: int, n_ancestors: int,
              max_rate: float = 0.4) -> np.ndarray:
    """Sequences copied from a few ancestors with per-sequence substitution rates, gap runs
    and exact duplicates: many pairs near the threshold, on both sides."""
    ancestors = rng.integers(0, 21, size=(n_ancestors, length))
    indices = ancestors[rng.integers(0, n_ancestors, size=n_sequences)]
    rates = rng.uniform(0, max_rate, size=(n_sequences, 1))
    indices = np.where(rng.random(indices.shape) < rates,
                       rng.integers(0, 21, size=indices.shape), indices)
    head = rng.integers(0, length // 4, size=n_sequences)
    indices[np.arange(length)[None, :] < head[:, None]] = 20
    indices[rng.random(n_sequences) < 0.1] = indices[0]
    return indices.astype(np.uint8)


def test_identical_and_near_identical_sequences_share_weight():
    base = np.zeros(10, dtype=np.uint8)
    close = base.copy()
    close[:2] = 3                       # identity 0.8: counts as a neighbour (>= theta)
    far = base.copy()
    far[:3] = 5                         # identity 0.7: does not
    indices = np.stack([base, base, close, far])
    weights = sequence_weights(indices, n_states=21, theta=0.8)
    np.testing.assert_allclose(weights.numpy(), [1 / 3, 1 / 3, 1 / 3, 1.0])
    assert abs(effective_number(weights) - 2.0) < 1e-6


def test_weights_match_the_definition_and_do_not_depend_on_chunking():
    rng = np.random.default_rng(0)
    parents = rng.integers(0, 21, size=(20, 30))
    indices = parents[rng.integers(0, 20, size=300)]
    mutate = rng.random(indices.shape) < 0.1
    indices = np.where(mutate, rng.integers(0, 21, size=indices.shape), indices)
    identity = (indices[:, None, :] == indices[None, :, :]).mean(axis=2)
    expected = 1.0 / (identity >= 0.8).sum(axis=1)
    whole = sequence_weights(indices, 21, 0.8)
    chunked = sequence_weights(indices, 21, 0.8, chunk_bytes=4 * 300 * 7)
    np.testing.assert_allclose(whole.numpy(), expected, rtol=1e-6)
    assert torch.equal(whole, chunked)


@pytest.mark.parametrize("theta, kernel", [(0.8, "compare"), (0.62, "compare"),
                                           (1.0, "compare"), (0.3, "compare"), (0.8, "matmul")])
def test_pruned_count_equals_the_plain_count(theta, kernel, single_thread):
    # 3000 sequences, > 4 rounds of centres' worth of unique rows: the pruned path is taken.
    rng = np.random.default_rng(1)
    indices = clustered(rng, 3000, 40, n_ancestors=12)
    assert len(np.unique(indices, axis=0)) > 4 * CENTRES_PER_ROUND
    expected = reference_weights(indices, 21, theta)
    fast = sequence_weights(indices, 21, theta, kernel=kernel, chunk_bytes=2**20)
    assert torch.equal(fast, expected)


def test_small_and_degenerate_alignments():
    rng = np.random.default_rng(2)
    for shape in [(1, 1), (1, 7), (5, 1), (40, 3), (200, 9)]:
        indices = rng.integers(0, 3, size=shape).astype(np.uint8)
        assert torch.equal(sequence_weights(indices, 21), reference_weights(indices, 21, 0.8))
    assert sequence_weights(np.zeros((0, 5), dtype=np.uint8), 21).shape == (0,)


@pytest.mark.parametrize("theta", [0.0, -0.5, 1.2, float("nan")])
def test_theta_outside_the_unit_interval_is_refused(theta):
    """theta > 1 would make every neighbour count 0 (infinite weights); theta <= 0 every pair
    a neighbour."""
    with pytest.raises(ValueError, match="theta must be in"):
        sequence_weights(np.zeros((3, 4), dtype=np.uint8), 21, theta=theta)


@pytest.mark.parametrize("change, error, message", [
    ({"n_states": 5.0}, TypeError, "n_states must be an integer, got 5.0"),
    ({"n_states": 0}, ValueError, "n_states must be >= 1, got 0"),
    ({"kernel": "fast"}, ValueError, "kernel must be one of"),
])
def test_bad_settings_name_themselves(change, error, message):
    arguments = {"n_states": 21, **change}
    with pytest.raises(error, match=message):
        sequence_weights(np.zeros((3, 4), dtype=np.uint8), arguments.pop("n_states"),
                         **arguments)


def test_tensor_input_and_progress_bar(capsys):
    indices = clustered(np.random.default_rng(3), 1500, 30, n_ancestors=5)
    expected = reference_weights(indices, 21, 0.8)
    assert torch.equal(sequence_weights(torch.as_tensor(indices), 21, progress=True), expected)
    assert "weights" in capsys.readouterr().err
    sequence_weights(indices, 21, progress=None)  # stderr is not a terminal here: no bar
    assert capsys.readouterr().err == ""


def family_indices(family_id: str) -> np.ndarray:
    if not (SHARED_DATA / "manifest.tsv").exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    with open(SHARED_DATA / "manifest.tsv", newline="") as handle:
        row = next(r for r in csv.DictReader(handle, delimiter="\t") if r["id"] == family_id)
    family = SHARED_DATA / "families" / family_id
    kind, _, value = row["query"].partition(":")
    arguments = ({"query_index": int(value)} if kind == "index" else {"query": value}
                 if kind == "id" else {"query_file": family / value} if kind == "file" else {})
    return read_alignment(family / row["msa_file"], **arguments).indices


@pytest.mark.parametrize("family_id", ["1atzA", "DHFR_1RX2"])
def test_real_alignments_give_the_plain_weights(family_id, single_thread):
    indices = family_indices(family_id)
    assert torch.equal(sequence_weights(indices, 21), reference_weights(indices, 21, 0.8))


@pytest.mark.gpu
def test_gpu_gives_the_cpu_weights():
    indices = clustered(np.random.default_rng(4), 3000, 40, n_ancestors=12)
    on_gpu = sequence_weights(indices, 21, device="cuda")
    assert on_gpu.device.type == "cuda"
    assert torch.equal(on_gpu.cpu(), sequence_weights(indices, 21, device="cpu"))
