"""The fitting API's boundary: numpy or torch arrays in, precise errors for broken contracts."""

import warnings

import numpy as np
import pytest
import torch

from potts_gwg.errors import InputError
from potts_gwg.fit.inputs import (FitInputError, encoded_sequences, potts_parameters,
                                  sequence_weight_vector)
from potts_gwg.fit.pcd import PcdSettings, fit_pcd, initial_state
from potts_gwg.fit.plm import PlmSettings, fit_plm
from potts_gwg.weights import sequence_weights

Q = 5


@pytest.fixture
def sequences():
    return np.random.default_rng(0).integers(0, Q, size=(40, 6))


def test_encoded_sequences_accepts_numpy_and_torch_integers(sequences):
    from_numpy = encoded_sequences(sequences.astype(np.uint8), Q)
    from_torch = encoded_sequences(torch.as_tensor(sequences, dtype=torch.int32), Q)
    assert from_numpy.dtype == from_torch.dtype == torch.long
    assert torch.equal(from_numpy, from_torch)
    assert encoded_sequences(sequences, Q, dtype=torch.uint8).dtype == torch.uint8


def test_read_only_arrays_are_copied_without_a_warning(sequences):
    frozen = sequences.copy()
    frozen.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # torch's "not writable" warning (once per process)
        states = encoded_sequences(frozen, Q)
    assert torch.equal(states, torch.as_tensor(sequences))
    assert not np.shares_memory(states.numpy(), frozen)   # a copy, not a view torch warns of
    writable = encoded_sequences(sequences, Q)
    assert np.shares_memory(writable.numpy(), sequences)  # no copy where none is needed


@pytest.mark.parametrize("bad, problem", [
    (np.zeros(6, dtype=np.int64), "got shape (6,)"),
    (np.zeros((3, 0), dtype=np.int64), "got shape (3, 0)"),
    (np.zeros((3, 6)), "got dtype torch.float64"),
    (np.zeros((3, 6), dtype=bool), "got dtype torch.bool"),
    (np.full((3, 6), Q), f"got values from {Q} to {Q}"),
    (np.full((3, 6), -1), "got values from -1 to -1"),
])
def test_encoded_sequences_refusals_name_the_contract(bad, problem):
    with pytest.raises(FitInputError) as caught:
        encoded_sequences(bad, Q)
    message = str(caught.value)
    assert message.startswith(f"indices must be (N, L) integer states in 0..{Q - 1}; ")
    assert message.endswith(problem)


def test_errors_are_value_errors_and_input_errors():
    with pytest.raises(ValueError):
        encoded_sequences([[0, 1]], Q)
    assert issubclass(FitInputError, InputError)


@pytest.mark.parametrize("bad, problem", [
    (np.ones(3), "must have shape (N,) = (4,), one per sequence; got (3,)"),
    (np.array([1.0, -1.0, 1.0, 1.0]), "must be finite and non-negative"),
    (np.array([1.0, np.nan, 1.0, 1.0]), "must be finite and non-negative"),
    (np.zeros(4), "are all zero: no sequence counts"),
])
def test_weight_refusals(bad, problem):
    with pytest.raises(FitInputError, match="^weights " + problem.replace("(", r"\(")
                       .replace(")", r"\)")):
        sequence_weight_vector(bad, 4, "cpu")


def test_integer_weights_become_float32():
    weights = sequence_weight_vector(np.array([1, 2, 0, 1]), 4, None)
    assert weights.dtype == torch.float32 and weights.tolist() == [1.0, 2.0, 0.0, 1.0]


def test_potts_parameters_check_shapes():
    h, J = np.zeros((3, Q)), np.zeros((3, 3, Q, Q))
    fields, couplings = potts_parameters(h, J, "cpu")
    assert fields.dtype == couplings.dtype == torch.float32
    with pytest.raises(FitInputError, match=r"J must be \(L, L, q, q\) = \(3, 3, 5, 5\)"):
        potts_parameters(h, J[:2], "cpu")
    with pytest.raises(FitInputError, match=r"h must be \(L, q\) floats"):
        potts_parameters(h.astype(np.int64), J, "cpu")
    for name, bad in (("h", (h + np.eye(3, Q) * np.nan, J)),
                      ("J", (h, np.where(np.arange(Q) == 1, np.inf, J))),
                      ("J", (h, J + 1e300))):  # finite float64, inf as float32
        with pytest.raises(FitInputError, match=f"{name} contains NaN or infinite values"):
            potts_parameters(*bad, "cpu")


def test_fits_take_numpy_or_torch_alike(sequences):
    """The README's path: numpy from the reader straight into PLM, PCD and the weights."""
    weights = sequence_weights(sequences, Q)
    settings = PlmSettings(max_iterations=3)
    from_numpy = fit_plm(sequences, weights.numpy(), Q, settings)
    from_torch = fit_plm(torch.as_tensor(sequences), weights, Q, settings)
    assert np.array_equal(from_numpy.J, from_torch.J)

    pcd = PcdSettings(n_chains=8, max_iterations=4, check_every=2)
    state = initial_state(from_numpy.h, from_numpy.J, sequences, weights.numpy(), pcd, seed=1)
    same = initial_state(torch.from_numpy(from_numpy.h), torch.from_numpy(from_numpy.J),
                         torch.as_tensor(sequences), weights, pcd, seed=1)
    assert torch.equal(state.chains, same.chains)
    numpy_run = fit_pcd(sequences, weights.numpy(), Q, state, pcd)
    torch_run = fit_pcd(torch.as_tensor(sequences, dtype=torch.int32), weights, Q, same, pcd)
    assert np.array_equal(numpy_run.J, torch_run.J)


def test_fit_refusals_name_the_argument(sequences):
    weights = sequence_weights(sequences, Q)
    out_of_range = sequences.copy()
    out_of_range[0, 0] = Q
    with pytest.raises(FitInputError, match="^indices .* got values from 0 to 5"):
        fit_plm(out_of_range, weights, Q)
    with pytest.raises(FitInputError, match="^indices .* got values from 0 to 5"):
        sequence_weights(out_of_range, Q)
    with pytest.raises(FitInputError, match=r"^weights must have shape \(N,\) = \(40,\)"):
        fit_plm(sequences, weights[:5], Q)

    plm = fit_plm(sequences, weights, Q, PlmSettings(max_iterations=2))
    pcd = PcdSettings(n_chains=8, max_iterations=2)
    with pytest.raises(FitInputError, match="h and J are for L = 6 sites, data has L = 4"):
        initial_state(plm.h, plm.J, sequences[:, :4], weights, pcd, seed=0)
    state = initial_state(plm.h, plm.J, sequences, weights, pcd, seed=0)
    with pytest.raises(FitInputError, match=r"the state is for \(L, q\) = \(6, 5\)"):
        fit_pcd(sequences[:, :4], weights, Q, state, pcd)
    with pytest.raises(FitInputError, match="^data .* in 0..3; got values from 0 to 4"):
        fit_pcd(sequences, weights, Q - 1, state, pcd)
    with pytest.raises(TypeError, match="settings must be a PlmSettings, got dict"):
        fit_plm(sequences, weights, Q, {"max_iterations": 2})


def test_sequence_weights_refuse_more_states_than_bytes(sequences):
    with pytest.raises(ValueError, match="n_states must be at most 256"):
        sequence_weights(sequences, 257)


def test_reversed_and_big_endian_arrays_fit_like_plain_ones(sequences):
    """torch.from_numpy refuses negative strides and foreign byte order; they are copied."""
    weights = np.linspace(0.5, 1.5, len(sequences))
    settings = PlmSettings(max_iterations=5)
    plain = fit_plm(sequences, weights, Q, settings=settings, device="cpu")
    big_endian = fit_plm(sequences.astype(">i8"), weights.astype(">f8"), Q, settings=settings,
                         device="cpu")
    reversed_twice = fit_plm(np.ascontiguousarray(sequences[::-1])[::-1],
                             np.ascontiguousarray(weights[::-1])[::-1], Q, settings=settings,
                             device="cpu")
    for other in (big_endian, reversed_twice):
        assert np.array_equal(plain.h, other.h) and np.array_equal(plain.J, other.J)


def test_an_empty_alignment_or_object_array_is_a_fit_input_error(sequences):
    with pytest.raises(FitInputError, match=r"no sequences \(N = 0\)"):
        fit_plm(sequences[:0], np.ones(0), Q, device="cpu")
    with pytest.raises(FitInputError, match="indices must hold numbers, got .* dtype object"):
        encoded_sequences(sequences.astype(object), Q)


def test_a_float_number_of_states_is_refused(sequences):
    with pytest.raises(TypeError, match=r"n_states must be an integer, got 5.0 \(float\)"):
        fit_plm(sequences, np.ones(len(sequences)), float(Q), device="cpu")
