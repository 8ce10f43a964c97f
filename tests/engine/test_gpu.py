"""The same kernels on a CUDA device: everything follows the tensors' device."""

from __future__ import annotations

import pytest
import torch

from potts_gwg.engine import (GibbsSampler, GWGSampler, LatticeIsingEnergy, PottsEnergy,
                              run_chains)

from .exact import random_mlp, random_potts, total_variation, tv_tolerance

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
CUDA = torch.device("cuda")


def cuda_potts(dtype=torch.float32) -> PottsEnergy:
    cpu = random_potts(length=30, n_states=21, coupling_scale=0.3, seed=5, dtype=dtype)
    return PottsEnergy(cpu.h.to(CUDA), cpu.J.to(CUDA))


@pytest.mark.parametrize("sampler", [GWGSampler(), GibbsSampler("random")], ids=str)
def test_fields_stay_exact_on_the_gpu(sampler):
    model = cuda_potts(torch.float64)
    generator = torch.Generator(device=CUDA).manual_seed(0)
    state = sampler.init(model, torch.randint(21, (256, 30), generator=generator, device=CUDA))
    for _ in range(2000):
        state, _ = sampler.step(model, state, generator)
    assert state.x.device.type == "cuda" and state.fields.device.type == "cuda"
    torch.testing.assert_close(state.fields, model.local_fields(state.x), rtol=0, atol=1e-9)
    torch.testing.assert_close(state.log_prob, model(state.x), rtol=0, atol=1e-9)


@pytest.mark.parametrize("sampler", [GWGSampler(), GibbsSampler("random")], ids=str)
def test_samplers_reach_the_exact_distribution_on_the_gpu(sampler):
    """As tests/engine/test_exactness.py, with the chains on CUDA: 2¹⁵ independent chains of
    the enumerable L = 4, q = 3 Potts model, TV against enumeration below the bound that a
    correct sampler exceeds with probability ≤ 1e-6."""
    cpu = random_potts()
    model = PottsEnergy(cpu.h.to(CUDA), cpu.J.to(CUDA))
    generator = torch.Generator(device=CUDA).manual_seed(11)
    chains = 2 ** 15
    state = sampler.init(model, torch.randint(cpu.n_states, (chains, cpu.n_sites),
                                              generator=generator, device=CUDA))
    for _ in range(100):
        state, _ = sampler.step(model, state, generator)
    assert total_variation(state.x, cpu) < tv_tolerance(cpu, chains)


def test_same_seed_same_samples_on_the_gpu():
    model = cuda_potts()
    x0 = torch.zeros(64, 30, dtype=torch.long, device=CUDA)

    def draw(seed):
        generator = torch.Generator(device=CUDA).manual_seed(seed)
        return run_chains(GWGSampler(), model, x0, 10, burn_in=20, thin=5,
                          generator=generator, progress=False)

    (first, diagnostics), (second, _) = draw(1), draw(1)
    assert first.device.type == "cuda" and torch.equal(first, second)
    assert 0 < diagnostics.acceptance_rate <= 1


def test_generic_models_run_on_the_gpu():
    mlp = random_mlp().to(CUDA)
    lattice = LatticeIsingEnergy((8, 8), coupling=0.3, device=CUDA)
    for model, sampler in ((mlp, GWGSampler(n_flips=2)), (lattice, GWGSampler()),
                           (lattice, GibbsSampler())):
        generator = torch.Generator(device=CUDA).manual_seed(2)
        x0 = torch.randint(2, (32, model.n_sites), generator=generator, device=CUDA)
        samples, _ = run_chains(sampler, model, x0, 5, thin=3, generator=generator,
                                progress=False)
        assert samples.device.type == "cuda"
