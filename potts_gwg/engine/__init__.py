"""The sampling engine: energy models over discrete states, samplers (Gibbs, GWG, Metropolis)
sharing one ``init``/``step`` interface, and a chain driver with diagnostics."""

from .diagnostics import effective_sample_size
from .driver import Diagnostics, run_chains
from .energies import (BernoulliEnergy, CategoricalEnergy, EnergyModel, IsingEnergy,
                       LatticeIsingEnergy, LocalFieldEnergy, NeuralEnergy, RBMEnergy,
                       StateShapeError)
from .mh import metropolis_hastings, select
from .potts import PottsEnergy
from .samplers import (ChainState, GibbsSampler, GWGSampler, MetropolisSampler, Sampler,
                       StepInfo)

__all__ = ["BernoulliEnergy", "CategoricalEnergy", "ChainState", "Diagnostics",
           "EnergyModel", "GibbsSampler", "GWGSampler", "IsingEnergy", "LatticeIsingEnergy",
           "LocalFieldEnergy", "MetropolisSampler", "NeuralEnergy", "PottsEnergy",
           "RBMEnergy", "Sampler", "StateShapeError", "StepInfo", "effective_sample_size",
           "metropolis_hastings", "run_chains", "select"]
