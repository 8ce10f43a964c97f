"""Persistent contrastive divergence (PCD) for any energy model of the engine.

Each update draws a data batch and as many chains from a replay buffer (a fraction
``reinit_rate`` of them replaced by fresh draws from the base distribution), advances the
chains by ``steps`` sampler steps, writes them back, and takes one Adam step on

    loss = mean f(samples) − mean f(data),

whose gradient is the PCD estimate of −∇ log-likelihood. After every parameter update the
chains' cached quantities (f, ∇f, local fields) are stale, so the chain state is rebuilt with
``sampler.init`` (see :mod:`potts_gwg.engine.samplers.base`). An exponential moving average
(EMA) of the parameters is kept for evaluation. Every random draw comes from the trainer's
one ``torch.Generator``, so a run resumed from a checkpoint continues exactly as if it had
not stopped (on CPU, with the same seed).
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ..engine import EnergyModel, GibbsSampler, GWGSampler, Sampler
from ..errors import InputError, NumericalError
from ..settings import SAMPLERS, integer, random_seed, real
from .networks import IndependentSites, make_trainable


def make_sampler(name: str) -> Sampler:
    """``gwg``: Gibbs-With-Gradients, one proposed change per step; ``gibbs``: random-scan
    Gibbs, one site redrawn per step (a systematic scan would restart at site 0 whenever the
    chain state is rebuilt, i.e. after every update)."""
    if name == "gwg":
        return GWGSampler()
    if name == "gibbs":
        return GibbsSampler("random")
    raise InputError(f"unknown sampler {name!r} (choose {', '.join(SAMPLERS)})")


@dataclass(frozen=True)
class TrainConfig:
    """PCD settings; all of them are recorded in checkpoints. Checked when made (a one-line
    InputError naming the setting); numpy scalars become plain numbers, as in
    :mod:`potts_gwg.settings`, so that the settings always serialise to JSON."""

    sampler: str = "gwg"          # see make_sampler
    steps: int = 40               # sampler steps per parameter update
    batch_size: int = 100         # data examples and chains per update
    buffer_size: int = 1000       # persistent chains in the replay buffer
    reinit_rate: float = 0.0      # fraction of an update's chains redrawn from the base
    learning_rate: float = 1e-3   # Adam
    ema_decay: float = 0.99       # EMA of the parameters, per update
    seed: int = 0

    def __post_init__(self):
        make_sampler(self.sampler)
        try:
            checked = {"steps": integer("steps", self.steps, least=1),
                       "batch_size": integer("batch_size", self.batch_size, least=1),
                       "buffer_size": integer("buffer_size", self.buffer_size, least=1),
                       "reinit_rate": real("reinit_rate", self.reinit_rate, least=0, most=1),
                       "learning_rate": real("learning_rate", self.learning_rate, above=0),
                       "ema_decay": real("ema_decay", self.ema_decay, least=0, below=1),
                       "seed": random_seed(self.seed)}
        except (TypeError, ValueError) as error:
            raise InputError(str(error)) from None
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen
        if self.batch_size > self.buffer_size:
            raise InputError(f"--batch-size ({self.batch_size}) cannot exceed --buffer-size "
                             f"({self.buffer_size})")

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class UpdateStats:
    """One update: mean f on the data batch and on the chains, and the chains' acceptance."""

    data_energy: float
    sample_energy: float
    acceptance: float


class PCDTrainer:
    """PCD training of ``model`` on ``data (N, n_sites)`` long rows, on the model's device.

    ``base`` (same sites and states as the model) draws the initial buffer and the
    re-initialised chains. A model without parameters (an engine RBM, Ising or Potts model,
    whose tensors are buffers) gets its float buffers turned into parameters.
    """

    def __init__(self, model: EnergyModel, data: Tensor, base: IndependentSites,
                 config: TrainConfig):
        if not any(True for _ in model.parameters()):
            make_trainable(model)
        if (base.n_sites, base.n_states) != (model.n_sites, model.n_states):
            raise InputError(f"the base distribution has {base.n_sites} sites × "
                             f"{base.n_states} states, the model {model.n_sites} × "
                             f"{model.n_states}")
        self.model = model
        self.data = model.validate_state(data)
        if base.table.device != self.data.device:  # its draws start chains on data's device
            raise InputError(f"the base distribution is on {base.table.device}, the data on "
                             f"{self.data.device}: move both to one device (base.to(device))")
        self.base = base
        self.config = config
        self.sampler = make_sampler(config.sampler)
        device = self.data.device
        self.generator = torch.Generator(device=device).manual_seed(config.seed)
        self.parameters = dict(model.named_parameters())
        self.optimizer = torch.optim.Adam(self.parameters.values(), lr=config.learning_rate)
        self.ema = {name: value.detach().clone() for name, value in self.parameters.items()}
        self.buffer = base.sample(config.buffer_size, self.generator)
        self.iteration = 0
        self.history: list[UpdateStats] = []
        self.seconds = 0.0

    def update(self) -> UpdateStats:
        """One PCD update (see the module docstring)."""
        config, generator, device = self.config, self.generator, self.buffer.device
        batch = self.data[torch.randint(len(self.data), (config.batch_size,),
                                        generator=generator, device=device)]
        slots = torch.randperm(config.buffer_size, generator=generator,
                               device=device)[:config.batch_size]
        chains = self.buffer[slots]
        if config.reinit_rate > 0:
            fresh = torch.rand(config.batch_size, generator=generator,
                               device=device) < config.reinit_rate
            chains = torch.where(fresh.unsqueeze(1),
                                 self.base.sample(config.batch_size, generator), chains)
        state = self.sampler.init(self.model, chains)
        accepted = torch.zeros((), device=device)
        for _ in range(config.steps):
            state, info = self.sampler.step(self.model, state, generator)
            accepted += info.acceptance_rate
        samples = state.x
        self.buffer[slots] = samples
        data_energy = self.model.log_prob_indices(batch).mean()
        sample_energy = self.model.log_prob_indices(samples).mean()
        loss = sample_energy - data_energy
        if not torch.isfinite(loss):
            raise NumericalError(f"PCD update {self.iteration + 1}: the energy became "
                                 f"{float(loss)} (lower --lr?)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            self.model.project_()  # e.g. a Potts model's J[i, i] = 0
            for name, value in self.parameters.items():
                self.ema[name].lerp_(value, 1 - config.ema_decay)
        self.iteration += 1
        stats = UpdateStats(float(data_energy.detach()), float(sample_energy.detach()),
                            float(accepted) / config.steps)
        self.history.append(stats)
        return stats

    def run(self, iterations: int, max_seconds: float | None = None, progress: bool = True,
            checkpoint=None, checkpoint_every: int = 0) -> None:
        """Update until ``iterations`` updates in all (counting earlier ones of a resumed
        run) or ``max_seconds`` of this call. ``checkpoint()`` is called every
        ``checkpoint_every`` updates (0: never). Progress bar on a terminal's stderr."""
        iterations = integer("iterations", iterations, least=0)  # (2.5 ran 3 updates)
        checkpoint_every = integer("checkpoint_every", checkpoint_every, least=0)
        if max_seconds is not None and not float(max_seconds) >= 0:  # inf: no limit
            raise ValueError(f"max_seconds must be >= 0 or None, got {max_seconds}")
        bar = tqdm(total=iterations, initial=self.iteration, desc=f"PCD ({self.config.sampler})",
                   unit="update", leave=False, disable=not (progress and sys.stderr.isatty()))
        start = time.perf_counter()
        try:
            while self.iteration < iterations:
                began = time.perf_counter()
                stats = self.update()
                self.seconds += time.perf_counter() - began
                bar.update()
                bar.set_postfix(f_data=f"{stats.data_energy:.2f}",
                                f_samples=f"{stats.sample_energy:.2f}",
                                accept=f"{stats.acceptance:.2f}", refresh=False)
                if checkpoint is not None and checkpoint_every and \
                        self.iteration % checkpoint_every == 0:
                    checkpoint()
                if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                    break
        finally:
            bar.close()

    def ema_model(self) -> EnergyModel:
        """A copy of the model holding the EMA parameters, without gradients: what sampling
        and evaluation use (the trainer's own model keeps training)."""
        model = copy.deepcopy(self.model).requires_grad_(False)
        with torch.no_grad():
            for name, value in model.named_parameters():
                value.copy_(self.ema[name])
        return model

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything a resumed run needs besides the settings, as CPU arrays: model tensors
        (``model/<name>``), EMA (``ema/<name>``), Adam state (``optimizer/<index>/<key>``),
        buffer, generator state and history (``(updates, 3)``: f data, f samples, acceptance).
        """
        arrays = {f"model/{name}": value for name, value in self.model.state_dict().items()}
        arrays.update({f"ema/{name}": value for name, value in self.ema.items()})
        for index, entry in self.optimizer.state_dict()["state"].items():
            arrays.update({f"optimizer/{index}/{key}": value for key, value in entry.items()})
        arrays["buffer"] = self.buffer
        arrays["generator"] = self.generator.get_state()
        arrays = {name: value.detach().cpu().numpy() for name, value in arrays.items()}
        arrays["history"] = np.array([[s.data_energy, s.sample_energy, s.acceptance]
                                      for s in self.history], dtype=np.float64).reshape(-1, 3)
        return arrays

    def restore(self, arrays: dict[str, np.ndarray], iteration: int, seconds: float) -> None:
        """Continue from :meth:`to_arrays` of an earlier trainer with the same settings."""
        device = self.buffer.device

        def tensor(name: str) -> Tensor:
            return torch.from_numpy(np.array(arrays[name]))

        self.model.load_state_dict({name[len("model/"):]: tensor(name) for name in arrays
                                    if name.startswith("model/")})
        for name in self.ema:
            self.ema[name] = tensor(f"ema/{name}").to(device)
        entries: dict[int, dict[str, Tensor]] = {}
        for name in arrays:
            if name.startswith("optimizer/"):
                _, index, key = name.split("/")
                entries.setdefault(int(index), {})[key] = tensor(name)
        state = self.optimizer.state_dict()
        self.optimizer.load_state_dict({"state": entries, "param_groups": state["param_groups"]})
        self.buffer = tensor("buffer").to(device)
        self.generator.set_state(tensor("generator"))
        self.history = [UpdateStats(*map(float, row)) for row in arrays["history"]]
        self.iteration = iteration
        self.seconds = seconds
