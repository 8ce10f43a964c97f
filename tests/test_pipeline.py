"""The fit stage under `potts-gwg fit --method gwg|gibbs`: checkpoints, resume (also with
another seed), divergence, and the same on a GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from potts_gwg.fit.checkpoint import checkpoint_path
from potts_gwg.fit.pcd import PcdSettings
from potts_gwg.io.model_file import load_model
from potts_gwg.pipeline import fit_stage

EXAMPLE_MSA = Path(__file__).resolve().parents[1] / "data" / "PF00018_2O9S" / "PF00018_2O9S.fasta"


def test_interrupted_fit_resumes_to_the_same_model(tmp_path, single_thread, pcd_options,
                                                   interrupted_pcd_fit):
    whole = fit_stage(EXAMPLE_MSA, tmp_path / "whole.npz", pcd_options())
    output = tmp_path / "cut.npz"
    interrupted_pcd_fit(output, at_iteration=7)
    assert checkpoint_path(output).exists() and not output.exists()
    resumed = fit_stage(EXAMPLE_MSA, output, pcd_options(resume=True))
    assert resumed.resumed_from == 6 and resumed.iterations == 12
    first, second = load_model(whole.output), load_model(output)
    assert np.array_equal(first.h, second.h) and np.array_equal(first.J, second.J)
    assert not checkpoint_path(output).exists()


def test_divergence_keeps_the_last_good_checkpoint_and_writes_no_model(tmp_path, single_thread,
                                                                      pcd_options):
    from potts_gwg.errors import NumericalError

    output = tmp_path / "diverged.npz"
    diverging = PcdSettings(n_chains=16, steps=1, learning_rate=1e38, max_iterations=50,
                            target_pearson=None)
    with pytest.raises(NumericalError, match="non-finite"):
        fit_stage(EXAMPLE_MSA, output, pcd_options(pcd=diverging))
    assert not output.exists()
    with np.load(checkpoint_path(output), allow_pickle=False) as checkpoint:
        assert np.isfinite(checkpoint["couplings"]).all()
        assert np.isfinite(checkpoint["h"]).all()


def test_resume_with_another_seed_is_refused(tmp_path, single_thread, pcd_options,
                                             interrupted_pcd_fit):
    """The checkpoint's chains and random state belong to its seed: a model resumed under
    another would record a seed that does not reproduce it."""
    from potts_gwg.errors import InputError

    output = tmp_path / "cut.npz"
    interrupted_pcd_fit(output, at_iteration=3)
    with pytest.raises(InputError, match=r"checkpoint was made with --seed 2; resume with the "
                                         r"same seed"):
        fit_stage(EXAMPLE_MSA, output, pcd_options(resume=True, seed=3))
    assert checkpoint_path(output).exists() and not output.exists()
    resumed = fit_stage(EXAMPLE_MSA, output, pcd_options(resume=True))
    assert resumed.resumed_from == 2 and load_model(output).meta["seed"] == 2


def test_checkpoint_of_another_device_type_resumes_with_a_reseeded_generator(
        tmp_path, single_thread, pcd_options, interrupted_pcd_fit):
    """A checkpoint written on a GPU holds a 16-byte CUDA generator state that a CPU
    generator refuses (it crashed as an internal error): the fit goes on, and says why its
    result differs from an uninterrupted run's."""
    output = tmp_path / "cut.npz"
    interrupted_pcd_fit(output, at_iteration=4)
    checkpoint = checkpoint_path(output)
    with np.load(checkpoint, allow_pickle=False) as saved:
        arrays = dict(saved)
    arrays["generator_state"] = np.arange(16, dtype=np.uint8)  # CUDA's (seed, offset) form
    with open(checkpoint, "wb") as stream:
        np.savez(stream, **arrays)
    messages = []
    resumed = fit_stage(EXAMPLE_MSA, output, pcd_options(resume=True), report=messages.append)
    assert resumed.resumed_from == 3 and resumed.iterations == 12
    assert any("the checkpoint's random state is a GPU generator's; continuing on cpu" in
               message for message in messages), messages
    assert np.isfinite(load_model(output).J).all()


@pytest.mark.gpu
def test_gpu_fit_writes_checkpoints_and_resumes_on_the_gpu(tmp_path, pcd_options,
                                                           interrupted_pcd_fit):
    """The gwg pipeline on CUDA: checkpoints of a CUDA run (chains, CUDA generator state)
    load back onto the GPU and the fit ends where an uninterrupted one would (12 updates);
    CUDA's random streams and reductions are not the CPU's, so no bitwise comparison."""
    output = tmp_path / "cut.npz"
    interrupted_pcd_fit(output, at_iteration=7, device="cuda")
    assert checkpoint_path(output).exists() and not output.exists()
    resumed = fit_stage(EXAMPLE_MSA, output, pcd_options(device="cuda", resume=True))
    assert resumed.resumed_from == 6 and resumed.iterations == 12
    assert resumed.device.startswith("cuda")
    model = load_model(output)
    assert np.isfinite(model.J).all() and model.meta["iterations"] == 12
    assert not checkpoint_path(output).exists()


def test_fit_leaves_the_callers_random_generator_alone(tmp_path, single_thread):
    """The fit is seeded by its --seed; a script's own torch draws must not be reseeded."""
    import torch

    from potts_gwg.pipeline import FitOptions

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit_stage(EXAMPLE_MSA, tmp_path / "m.npz", FitOptions(device="cpu", seed=0))
    assert torch.equal(torch.rand(3), expected)


def test_numpy_number_options_give_the_model_of_plain_ones(tmp_path, single_thread,
                                                           pcd_options):
    """Options taken from numpy arrays (np.int64 seed, np.float32 theta) once ran the whole
    fit and then failed writing the meta, leaving a checkpoint that blocked the rerun."""
    plain = fit_stage(EXAMPLE_MSA, tmp_path / "plain.npz", pcd_options())
    numpy_made = fit_stage(EXAMPLE_MSA, tmp_path / "numpy.npz", pcd_options(
        seed=np.int64(2), theta=np.float32(0.8),
        pcd=PcdSettings(n_chains=np.int64(64), steps=np.int32(3), max_iterations=np.int64(12),
                        target_pearson=None)))
    first, second = load_model(plain.output), load_model(numpy_made.output)
    assert np.array_equal(first.h, second.h) and np.array_equal(first.J, second.J)
    assert second.meta["seed"] == 2
    assert second.meta["hyperparameters"]["theta"] == float(np.float32(0.8))  # a number
    assert not checkpoint_path(numpy_made.output).exists()
