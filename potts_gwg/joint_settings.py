"""The settings of joint-EBM training (:class:`JointTrainingConfig`, used by
:mod:`potts_gwg.ebm.joint_train`, which re-exports it). No torch here: ``potts-gwg ebm joint``
builds its option defaults and ``--help`` from these without loading it. (Not under
``potts_gwg.ebm``: that package's ``__init__`` imports torch.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import InputError
from .settings import SAMPLERS, integer, real

if TYPE_CHECKING:
    from .ebm.joint import JointSampler
    from .engine import Sampler

MISSING_MODES = ("marginal", "sample")


@dataclass
class JointTrainingConfig:
    """PCD settings; defaults follow the paper's toy run (Table 1) where they fit a CPU."""

    iterations: int = 2000
    batch_size: int = 200
    learning_rate: float = 1e-3
    warmup: int = 100               # iterations of linear learning-rate warm-up
    sampler_steps: int = 20         # Metropolis-within-Gibbs steps per update
    buffer_size: int = 10_000
    reinit_rate: float = 0.05       # fraction of buffer draws restarted from noise
    step_size: float = 0.1          # Langevin ε
    temperature: float = 0.5        # Langevin λ
    adjusted: bool = False          # MALA instead of unadjusted Langevin
    label_sampler: str = "gwg"      # "gwg" or "gibbs" (random scan) for y | x
    missing: str = "marginal"       # unlabelled examples: "marginal" (exact) or "sample"
    missing_steps: int = 5          # label-chain steps per visit of an unlabelled example
    balance: bool = True            # with both kinds of rows: batch_size of each per update,
                                    # objective mean_l log p(x, y) + mean_u log p(x)
    ema: float = 0.99               # parameter EMA decay (0: none)
    energy_l2: float = 0.0          # penalty α (f_pos² + f_neg²), as in Du & Mordatch

    def validate(self) -> None:
        """One-line InputError naming the first bad setting; numpy scalars become plain
        numbers (the settings go to the model file's JSON meta)."""
        try:
            for name, least in (("iterations", 1), ("batch_size", 1), ("warmup", 0),
                                ("sampler_steps", 1), ("buffer_size", 1), ("missing_steps", 1)):
                setattr(self, name, integer(name, getattr(self, name), least=least))
            for name, bounds in (("learning_rate", {"above": 0}),
                                 ("reinit_rate", {"least": 0, "most": 1}),
                                 ("step_size", {"above": 0}), ("temperature", {"above": 0}),
                                 ("ema", {"least": 0, "below": 1}), ("energy_l2", {"least": 0})):
                setattr(self, name, real(name, getattr(self, name), **bounds))
        except (TypeError, ValueError) as error:
            raise InputError(str(error)) from None
        for name, choices in (("label_sampler", SAMPLERS), ("missing", MISSING_MODES)):
            if getattr(self, name) not in choices:
                raise InputError(f"{name} must be one of {', '.join(choices)}, got "
                                 f"{getattr(self, name)!r}")

    # The samplers need torch: imported when they are made, not with the settings.
    def make_label_sampler(self) -> Sampler:
        from .engine import GibbsSampler, GWGSampler

        return GWGSampler() if self.label_sampler == "gwg" else GibbsSampler(scan="random")

    def make_sampler(self) -> JointSampler:
        from .ebm.joint import JointSampler, Langevin

        return JointSampler(self.make_label_sampler(),
                            Langevin(self.step_size, self.temperature, self.adjusted))
