"""Shared test fixtures: where the benchmark data and the shipped example live."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property-based (fuzz) tests: "ci" (the default) keeps them to a few hundred examples in all,
# the same ones on every run (derandomized: a failure reproduces); "thorough"
# (pytest --hypothesis-profile=thorough) runs thousands of new ones, see
# benchmarks/reliability_inputs.py.
settings.register_profile("ci", max_examples=50, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")

EXAMPLE_MSA = Path(__file__).resolve().parents[1] / "data" / "PF00018_2O9S" / "PF00018_2O9S.fasta"


def pytest_collection_modifyitems(config, items):
    """GPU tests run only where CUDA is present (never in CI)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def restore_threads():
    """For tests that change torch's CPU thread count: puts it back afterwards."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def example_model(tmp_path_factory) -> Path:
    """A PLM model of the shipped SH3 example, fitted once per test session."""
    from potts_gwg.pipeline import FitOptions, fit_stage

    path = tmp_path_factory.mktemp("model") / "sh3.npz"
    fit_stage(EXAMPLE_MSA, path, FitOptions(device="cpu"))
    return path


@pytest.fixture
def single_thread():
    """Run a test with one torch thread: for many small tensors on a busy 2-core machine,
    intra-op threads cost more than they give (and make timings erratic)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def pcd_options():
    """``pcd_options(pcd=None, **changes)``: the FitOptions of a small, fast gwg fit of the
    example (64 chains, 3 steps, 12 updates, independent-site start, seed 2, a checkpoint
    after every update), with fields changed by keyword."""
    from potts_gwg.fit.pcd import PcdSettings
    from potts_gwg.pipeline import FitOptions

    def options(pcd=None, **changes):
        pcd = pcd or PcdSettings(n_chains=64, steps=3, max_iterations=12, target_pearson=None)
        return FitOptions(**{"method": "gwg", "device": "cpu", "seed": 2,
                             "init": "independent", "pcd": pcd, "checkpoint_interval": 1e-9,
                             **changes})

    return options


@pytest.fixture
def interrupted_pcd_fit(pcd_options):
    """``interrupted_pcd_fit(output, at_iteration, **changes)``: that fit stopped as by
    Ctrl-C at an update, leaving OUTPUT's checkpoint of the update before."""
    from potts_gwg.pipeline import fit_stage

    def interrupted(output, at_iteration, **changes):
        def interrupt(progress):
            if progress.iteration == at_iteration:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            fit_stage(EXAMPLE_MSA, output, pcd_options(**changes), on_pcd_iteration=interrupt)

    return interrupted
