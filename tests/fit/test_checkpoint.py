"""PCD checkpoints: exact round trip, identical continuation, refusals that protect the user."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from potts_gwg.errors import InputError
from potts_gwg.fit.checkpoint import (
    checkpoint_path,
    data_fingerprint,
    load_checkpoint,
    save_checkpoint,
)
from potts_gwg.fit.pcd import PcdSettings, fit_pcd, initial_state

SETTINGS = PcdSettings(sampler="gwg", n_chains=32, steps=3, max_iterations=10,
                       optimizer="adam", learning_rate=0.01, target_pearson=None)


@pytest.fixture
def problem():
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(4, (200, 6), generator=generator)
    weights = torch.rand(200, generator=generator) + 0.5
    h = torch.randn(6, 4, generator=generator) * 0.1
    J = torch.zeros(6, 6, 4, 4)
    return x, weights, initial_state(h, J, x, weights, SETTINGS, seed=3)


def test_checkpoint_path_sits_beside_the_model(tmp_path):
    assert checkpoint_path(tmp_path / "family.npz") == tmp_path / "family.checkpoint.npz"
    assert checkpoint_path("model") == checkpoint_path("model").with_name(
        "model.checkpoint.npz")


def test_resuming_from_a_saved_checkpoint_ends_identical(problem, tmp_path, single_thread):
    x, weights, state = problem
    fingerprint = data_fingerprint(x, weights)
    whole = fit_pcd(x, weights, 4, state, SETTINGS)
    first = fit_pcd(x, weights, 4, state, dataclasses.replace(SETTINGS, max_iterations=4))
    path = save_checkpoint(tmp_path / "run.checkpoint.npz", first.state, SETTINGS,
                           fingerprint, {"init": "plm"})
    restored, extra = load_checkpoint(path, SETTINGS, fingerprint, torch.device("cpu"))
    assert extra == {"init": "plm"} and restored.iteration == 4
    for name in ("h", "couplings", "chains", "generator_state"):
        assert torch.equal(getattr(restored, name), getattr(first.state, name))
    rest = fit_pcd(x, weights, 4, restored, SETTINGS)
    assert np.array_equal(rest.J, whole.J) and np.array_equal(rest.h, whole.h)
    assert rest.iterations == whole.iterations == 10


def test_resuming_inside_a_check_window_stops_where_the_whole_run_stops(problem, tmp_path,
                                                                        single_thread):
    """With a Pearson target the stop depends on the chains' statistics summed over the check
    window: cut at update 15 (half-way through the window 11-20), the resumed run must reach
    the same check at update 20 with the same Pearson values and parameters. (L = 6, 3 steps:
    10 sweeps after 20 updates; a target of -1 is met by the first check that counts.)"""
    x, weights, state = problem
    settings = dataclasses.replace(SETTINGS, max_iterations=100, target_pearson=-1.0)
    fingerprint = data_fingerprint(x, weights)
    whole = fit_pcd(x, weights, 4, state, settings)
    first = fit_pcd(x, weights, 4, state, dataclasses.replace(settings, max_iterations=15))
    path = save_checkpoint(tmp_path / "run.checkpoint.npz", first.state, settings,
                           fingerprint, {})
    restored, _ = load_checkpoint(path, settings, fingerprint, torch.device("cpu"))
    rest = fit_pcd(x, weights, 4, restored, settings)
    assert (whole.stop_reason, whole.iterations) == ("target_pearson", 20)
    assert (rest.stop_reason, rest.iterations) == ("target_pearson", 20)
    assert (rest.pearson_pairs, rest.pearson_sites) == (whole.pearson_pairs,
                                                        whole.pearson_sites)
    assert np.array_equal(rest.J, whole.J) and np.array_equal(rest.h, whole.h)


def test_stop_criteria_may_change_on_resume(problem, tmp_path):
    x, weights, state = problem
    fingerprint = data_fingerprint(x, weights)
    path = save_checkpoint(tmp_path / "c.npz", state, SETTINGS, fingerprint, {})
    longer = dataclasses.replace(SETTINGS, max_iterations=99, max_time=5.0, target_pearson=0.9)
    restored, _ = load_checkpoint(path, longer, fingerprint, torch.device("cpu"))
    assert restored.iteration == 0


def test_other_settings_or_data_are_refused(problem, tmp_path):
    x, weights, state = problem
    fingerprint = data_fingerprint(x, weights)
    path = save_checkpoint(tmp_path / "c.npz", state, SETTINGS, fingerprint, {})
    with pytest.raises(InputError, match=r"c\.npz.*n_chains 32 -> 64"):
        load_checkpoint(path, dataclasses.replace(SETTINGS, n_chains=64), fingerprint,
                        torch.device("cpu"))
    with pytest.raises(InputError, match=r"check_every 10 -> 5"):  # the window's divisor
        load_checkpoint(path, dataclasses.replace(SETTINGS, check_every=5), fingerprint,
                        torch.device("cpu"))
    other = data_fingerprint(x, weights * 2)
    with pytest.raises(InputError, match="different alignment"):
        load_checkpoint(path, SETTINGS, other, torch.device("cpu"))


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04 truncated"])
def test_unreadable_checkpoint_is_a_clear_error(tmp_path, content):
    path = tmp_path / "c.npz"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"(corrupt|not a) checkpoint"):
        load_checkpoint(path, SETTINGS, "0" * 64, torch.device("cpu"))


def test_a_model_file_is_not_a_checkpoint(tmp_path, example_model):
    with pytest.raises(InputError, match="not a potts-gwg PCD checkpoint"):
        load_checkpoint(example_model, SETTINGS, "0" * 64, torch.device("cpu"))


def test_a_checkpoint_without_resolved_steps_resumes_with_the_default(problem, tmp_path):
    """Checkpoints written before the fit recorded its steps per update have steps None,
    which meant default_steps(L); resuming with the resolved number is the same run."""
    from potts_gwg.fit.pcd import default_steps

    x, weights, state = problem
    fingerprint = data_fingerprint(x, weights)
    unresolved = dataclasses.replace(SETTINGS, steps=None)
    path = save_checkpoint(tmp_path / "old.npz", state, unresolved, fingerprint, {})
    resolved = dataclasses.replace(SETTINGS, steps=default_steps(6))
    restored, _ = load_checkpoint(path, resolved, fingerprint, torch.device("cpu"))
    assert restored.iteration == 0
    with pytest.raises(InputError, match="steps 10 -> 3"):
        load_checkpoint(path, SETTINGS, fingerprint, torch.device("cpu"))
