"""Samplers: one interface (``init``/``step``), batched over chains, any energy model."""

from .base import ChainState, Sampler, StepInfo
from .gibbs import GibbsSampler
from .gwg import GWGSampler
from .metropolis import MetropolisSampler

__all__ = ["ChainState", "GibbsSampler", "GWGSampler", "MetropolisSampler", "Sampler",
           "StepInfo"]
