"""Joint energy-based models of continuous data x and discrete labels y ("No Conditional
Models for Me", Kelly & Grathwohl): log p(x, y) = f(x, y) − log Z.

* :class:`JointEnergy` — f(x, y) for x ``(B, d)`` floats and y ``(B, k)`` label indices
  (binary bits, or categorical values in 0..q−1 seen one-hot as ``(B, k, q)``);
  :class:`MLPJointEnergy` is the paper's MLP on the concatenation [x, y].
* :class:`ConditionalLabelEnergy` — y ↦ f(x, y) with x held fixed per chain, an engine
  :class:`~potts_gwg.engine.EnergyModel`, so the engine's GWG (or Gibbs) kernel samples
  p(y | x) unchanged.
* :class:`Langevin` — one Langevin step on x given y (the paper's equation 3), unadjusted
  or Metropolis-adjusted (MALA, through the engine's MH helper).
* :class:`JointSampler` — block Metropolis-within-Gibbs (the paper's Algorithm 1): one label
  step on y given x, then one Langevin step on x given y; either block can be held fixed
  (conditional sampling), and so can any subset of the label sites.
* Prediction of y given x: exact enumeration of p(y | x) when the label space is small,
  or the per-site majority over samples of p(y | x).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional

from ..engine import ChainState, EnergyModel, GWGSampler, Sampler
from ..engine.draws import draw_categorical
from ..engine.driver import prepare_run
from ..engine.mh import metropolis_hastings, select
from ..errors import InputError, ResourceError
from ..settings import integer, real
from .ais import temperatures

MAX_ENUMERATED_LABELS = 4096  # label configurations (q^k) that exact prediction may list


class JointEnergy(nn.Module, ABC):
    """f(x, y) = log p(x, y) + log Z for x ∈ R^d and y ∈ {0..q−1}^k.

    ``label_kind`` follows the engine: ``"binary"`` labels are seen as ``(B, k)`` floats,
    ``"categorical"`` ones as ``(B, k, q)`` one-hot floats (the "relaxed" view, on which f
    and its gradient in y are defined, as GWG needs).
    """

    def __init__(self, data_dim: int, n_labels: int, n_states: int = 2,
                 label_kind: str = "binary"):
        super().__init__()
        if label_kind not in ("binary", "categorical"):
            raise ValueError(f"label_kind must be 'binary' or 'categorical', got {label_kind!r}")
        self.data_dim = integer("data_dim", data_dim, least=1)
        self.n_labels = integer("n_labels", n_labels, least=1)
        self.n_states = integer("n_states", n_states, least=2)
        if label_kind == "binary" and self.n_states != 2:
            raise ValueError(f"binary labels have n_states = 2, got {n_states}")
        self.label_kind = label_kind

    @abstractmethod
    def relaxed_log_prob(self, x: Tensor, v: Tensor) -> Tensor:
        """f at data ``x (B, d)`` and relaxed labels ``v`` (``(B, k)`` or ``(B, k, q)``)
        -> ``(B,)``."""

    @property
    def dtype(self) -> torch.dtype:
        return next((p.dtype for p in self.parameters() if p.is_floating_point()),
                    torch.get_default_dtype())

    @property
    def device(self) -> torch.device | None:
        return next((p.device for p in self.parameters()), None)

    @property
    def label_width(self) -> int:
        """Number of floats in the flattened relaxed view of one label vector."""
        return self.n_labels * (1 if self.label_kind == "binary" else self.n_states)

    def relax_labels(self, y: Tensor) -> Tensor:
        """Float view of label indices ``(B, k)``: bits, or one-hot ``(B, k, q)``."""
        if self.label_kind == "binary":
            return y.to(self.dtype)
        return functional.one_hot(y, self.n_states).to(self.dtype)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """f(x, y) ``(B,)`` for label indices ``y (B, k)`` (validated here)."""
        x, y = self.validate(x, y)
        return self.relaxed_log_prob(x, self.relax_labels(y))

    def log_prob_and_grads(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """f(x, y) ``(B,)``, ∇_x f ``(B, d)`` and ∇_y f at the relaxed y, from one backward pass."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            v = self.relax_labels(y).requires_grad_(True)
            value = self.relaxed_log_prob(x, v)
            grad_x, grad_v = torch.autograd.grad(value.sum(), (x, v))
        return value.detach(), grad_x, grad_v

    def validate(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Check shapes and values; return x as floats of the model's dtype, y as long."""
        what = (f"{type(self).__name__} takes x (batch, {self.data_dim}) floats and y "
                f"(batch, {self.n_labels}) integers in 0..{self.n_states - 1}")
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.data_dim \
                or x.shape[0] == 0 or not x.is_floating_point():
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise InputError(f"{what}; got x {shape}")
        if not bool(torch.isfinite(x).all()):
            raise InputError(f"{what}; x has NaN or infinite values")
        if y is None:
            return x.to(self.dtype), None
        if not isinstance(y, Tensor) or y.shape != (x.shape[0], self.n_labels) \
                or y.is_floating_point() or y.dtype == torch.bool:
            shape = (tuple(y.shape), y.dtype) if isinstance(y, Tensor) else type(y).__name__
            raise InputError(f"{what}; got y {shape} for x {tuple(x.shape)}")
        if not bool(((y >= 0) & (y < self.n_states)).all()):
            raise InputError(f"{what}; y has values outside 0..{self.n_states - 1}")
        return x.to(self.dtype), y.long()


class MLPJointEnergy(JointEnergy):
    """f(x, y) = MLP([x, flattened relaxed y]): the paper's toy architecture
    (Linear–ELU blocks, then a Linear to one output)."""

    def __init__(self, data_dim: int, n_labels: int, n_states: int = 2,
                 label_kind: str = "binary", hidden: Sequence[int] = (256, 256, 256)):
        super().__init__(data_dim, n_labels, n_states, label_kind)
        self.hidden = tuple(int(width) for width in hidden)
        layers: list[nn.Module] = []
        width = self.data_dim + self.label_width
        for out in self.hidden:
            layers += [nn.Linear(width, out), nn.ELU()]
            width = out
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def relaxed_log_prob(self, x: Tensor, v: Tensor) -> Tensor:
        return self.net(torch.cat([x, v.flatten(1)], dim=1)).squeeze(1)

    def architecture(self) -> dict:
        """What :func:`~potts_gwg.ebm.joint_train.load_joint_model` needs to rebuild it."""
        return {"type": "mlp", "data_dim": self.data_dim, "n_labels": self.n_labels,
                "n_states": self.n_states, "label_kind": self.label_kind,
                "hidden": list(self.hidden)}


class ConditionalLabelEnergy(EnergyModel):
    """y ↦ f(x, y) with ``x (B, d)`` fixed per chain: p(y | x) as an engine energy model.

    ``fixed_sites`` ``(k,)`` bool marks label sites held at their values in ``labels (B, k)``;
    the model's states are then the free sites only (``n_sites`` = number of free sites).
    A batch that is a multiple m of B (Gibbs evaluates q candidates per chain, chain-major)
    uses each chain's x m times.
    """

    def __init__(self, joint: JointEnergy, x: Tensor, fixed_sites: Tensor | None = None,
                 labels: Tensor | None = None):
        free = None if fixed_sites is None else (~fixed_sites).nonzero().squeeze(1)
        n_free = joint.n_labels if free is None else int(free.numel())
        super().__init__(n_free, joint.n_states)
        self.kind = joint.label_kind
        self.joint = joint
        self.x = x
        self.free_sites = free
        self.fixed_view = None if free is None else joint.relax_labels(labels)

    def relaxed_log_prob(self, v: Tensor) -> Tensor:
        repeats = v.shape[0] // self.x.shape[0]
        if repeats * self.x.shape[0] != v.shape[0]:
            raise ValueError(f"a batch of {v.shape[0]} label states does not match "
                             f"{self.x.shape[0]} conditioning x")
        x, fixed = self.x, self.fixed_view
        if repeats > 1:
            x = x.repeat_interleave(repeats, 0)
            fixed = None if fixed is None else fixed.repeat_interleave(repeats, 0)
        if fixed is not None:
            v = fixed.index_copy(1, self.free_sites, v)
        return self.joint.relaxed_log_prob(x, v)


@dataclass
class JointState:
    """B chains of (x, y) and what the kernels cache at the current pair.

    ``log_prob``, ``grad_x`` and ``grad_y`` are f(x, y), ∇_x f and ∇_y f (relaxed view) for
    the model's current parameters, or None when not yet computed; after a parameter update
    (PCD), rebuild with ``sampler.init(joint, state.x, state.y)``.
    """

    x: Tensor                        # (B, d) float data
    y: Tensor                        # (B, k) long labels
    log_prob: Tensor | None = None   # (B,) f(x, y)
    grad_x: Tensor | None = None     # (B, d)
    grad_y: Tensor | None = None     # (B, k) or (B, k, q)
    label_position: int = 0          # systematic-scan Gibbs position over the free label sites


@dataclass
class JointStepInfo:
    """What one Metropolis-within-Gibbs step did, per chain."""

    labels_accepted: Tensor  # (B,) bool: label-block proposal accepted (True if not updated)
    labels_changed: Tensor   # (B,) long: label sites changed
    data_accepted: Tensor    # (B,) bool: Langevin move accepted (always True unadjusted)


def evaluated(joint: JointEnergy, state: JointState) -> JointState:
    """``state`` with f, ∇_x f and ∇_y f computed at its (x, y) where missing."""
    if state.log_prob is not None and state.grad_x is not None and state.grad_y is not None:
        return state
    log_prob, grad_x, grad_y = joint.log_prob_and_grads(state.x, state.y)
    return dataclasses.replace(state, log_prob=log_prob, grad_x=grad_x, grad_y=grad_y)


class Langevin:
    """One Langevin step on x for fixed y (the paper's equation 3):

        x' = x + ε²/(2λ) ∇_x f(x, y) + ε ξ,   ξ ~ N(0, I),

    i.e. the Euler step of size ε² for the tempered target p_λ(x | y) ∝ exp(f(x, y) / λ)
    (λ = 1: the model itself; the paper uses λ < 1 during training for faster sampling).
    ``adjusted=True`` adds the MH correction (MALA), which makes p_λ(x | y) exactly invariant.
    """

    def __init__(self, step_size: float = 0.1, temperature: float = 1.0,
                 adjusted: bool = False):
        self.step_size = real("step_size", step_size, above=0)
        self.temperature = real("temperature", temperature, above=0)
        self.adjusted = adjusted

    def _mean(self, x: Tensor, grad_x: Tensor) -> Tensor:
        return x + (self.step_size ** 2 / (2 * self.temperature)) * grad_x

    def _log_q(self, to: Tensor, mean: Tensor) -> Tensor:
        """log N(to; mean, ε² I) up to the constant (it cancels in the MH ratio)."""
        return -((to - mean) ** 2).sum(1) / (2 * self.step_size ** 2)

    def step(self, joint: JointEnergy, state: JointState,
             generator: torch.Generator) -> tuple[JointState, Tensor]:
        """Move every chain's x; returns the new state and ``(B,)`` bool accepted."""
        state = evaluated(joint, state)
        mean = self._mean(state.x, state.grad_x)
        noise = torch.randn(state.x.shape, generator=generator, dtype=state.x.dtype,
                            device=state.x.device)
        proposal = JointState(x=mean + self.step_size * noise, y=state.y,
                              label_position=state.label_position)
        if not self.adjusted:
            return proposal, torch.ones(state.x.shape[0], dtype=torch.bool,
                                        device=state.x.device)
        proposal = evaluated(joint, proposal)
        log_q_forward = self._log_q(proposal.x, mean)
        log_q_reverse = self._log_q(state.x, self._mean(proposal.x, proposal.grad_x))
        delta = (proposal.log_prob - state.log_prob) / self.temperature
        accept = metropolis_hastings(delta, log_q_reverse, log_q_forward, generator)
        return select(accept, proposal, state), accept

    def __repr__(self) -> str:
        return (f"Langevin(step_size={self.step_size!r}, temperature={self.temperature!r}, "
                f"adjusted={self.adjusted!r})")


class JointSampler:
    """Block Metropolis-within-Gibbs on p(x, y): a label step on y | x, then a Langevin step
    on x | y (the paper's Algorithm 1).

    ``label_sampler`` is any engine kernel (GWG by default) applied to
    :class:`ConditionalLabelEnergy`; ``update_data=False`` samples y | x and
    ``update_labels=False`` samples x | y; ``fixed_sites (k,)`` bool holds those label
    sites at their initial values (conditioning on part of y).
    """

    def __init__(self, label_sampler: Sampler | None = None, langevin: Langevin | None = None,
                 update_labels: bool = True, update_data: bool = True,
                 fixed_sites: Tensor | None = None):
        self.label_sampler = label_sampler or GWGSampler(local_fields=False)
        self.langevin = langevin or Langevin()
        self.update_labels = update_labels
        self.update_data = update_data
        self.fixed_sites = fixed_sites

    def init(self, joint: JointEnergy, x0: Tensor, y0: Tensor) -> JointState:
        """Validate (x0, y0) and build the state with its caches."""
        x, y = joint.validate(x0, y0)
        if self.fixed_sites is not None and self.fixed_sites.shape != (joint.n_labels,):
            raise InputError(f"fixed_sites must be ({joint.n_labels},) bool, got "
                             f"{tuple(self.fixed_sites.shape)}")
        return evaluated(joint, JointState(x=x, y=y))

    def _label_step(self, joint: JointEnergy, state: JointState,
                    generator: torch.Generator) -> tuple[JointState, Tensor, Tensor]:
        state = evaluated(joint, state)
        conditional = ConditionalLabelEnergy(joint, state.x, self.fixed_sites, state.y)
        free = conditional.free_sites
        y_free = state.y if free is None else state.y[:, free]
        grad = state.grad_y if free is None else state.grad_y[:, free]
        chain = ChainState(x=y_free, log_prob=state.log_prob, grad=grad,
                           position=state.label_position)
        chain, info = self.label_sampler.step(conditional, chain, generator)
        y = chain.x if free is None else state.y.index_copy(1, free, chain.x)
        # ∇_x f is stale once y moved; f itself is exact (the kernel keeps it current).
        new = JointState(x=state.x, y=y, log_prob=chain.log_prob,
                         label_position=chain.position)
        return new, info.accepted, info.sites_changed

    def step(self, joint: JointEnergy, state: JointState,
             generator: torch.Generator) -> tuple[JointState, JointStepInfo]:
        """One label step (if updated) then one Langevin step (if updated), every chain."""
        batch, device = state.x.shape[0], state.x.device
        labels_accepted = torch.ones(batch, dtype=torch.bool, device=device)
        labels_changed = torch.zeros(batch, dtype=torch.long, device=device)
        data_accepted = torch.ones(batch, dtype=torch.bool, device=device)
        n_free = joint.n_labels if self.fixed_sites is None else int((~self.fixed_sites).sum())
        if self.update_labels and n_free > 0:
            state, labels_accepted, labels_changed = self._label_step(joint, state, generator)
        if self.update_data:
            state, data_accepted = self.langevin.step(joint, state, generator)
        return state, JointStepInfo(labels_accepted, labels_changed, data_accepted)

    def __repr__(self) -> str:
        return (f"JointSampler(label_sampler={self.label_sampler!r}, langevin={self.langevin!r},"
                f" update_labels={self.update_labels!r}, update_data={self.update_data!r}, "
                f"fixed_sites={self.fixed_sites!r})")


@dataclass
class JointRun:
    """Samples and rates of :func:`run_joint_chains` (rates over the collection phase)."""

    x: Tensor                  # (n_samples, B, d)
    y: Tensor                  # (n_samples, B, k)
    state: JointState          # the final state
    label_acceptance: float
    data_acceptance: float
    seconds: float


def run_joint_chains(sampler: JointSampler, joint: JointEnergy, x0: Tensor, y0: Tensor,
                     n_samples: int = 1, burn_in: int = 0, thin: int = 1,
                     generator: torch.Generator | None = None) -> JointRun:
    """Run ``B = len(x0)`` chains for ``burn_in + n_samples · thin`` steps, keeping the state
    after steps burn_in + thin, burn_in + 2·thin, … (as the engine's ``run_chains``)."""
    n_samples, burn_in, thin, generator = prepare_run(n_samples, burn_in, thin, generator,
                                                      x0.device)
    state = sampler.init(joint, x0, y0)
    xs = torch.empty((n_samples, *state.x.shape), dtype=state.x.dtype, device=state.x.device)
    ys = torch.empty((n_samples, *state.y.shape), dtype=torch.long, device=state.y.device)
    # Acceptance summed on the device (float64), read once at the end: no sync per step.
    label_accepted = torch.zeros((), dtype=torch.float64, device=state.x.device)
    data_accepted = torch.zeros((), dtype=torch.float64, device=state.x.device)
    start = time.perf_counter()
    for step in range(1, burn_in + n_samples * thin + 1):
        state, info = sampler.step(joint, state, generator)
        if step > burn_in:
            label_accepted += info.labels_accepted.float().mean()
            data_accepted += info.data_accepted.float().mean()
            if (step - burn_in) % thin == 0:
                k = (step - burn_in) // thin - 1
                xs[k], ys[k] = state.x, state.y
    steps = n_samples * thin
    return JointRun(x=xs, y=ys, state=state, label_acceptance=float(label_accepted) / steps,
                    data_acceptance=float(data_accepted) / steps,
                    seconds=time.perf_counter() - start)


# -- conditional sampling of x given y by annealing ---------------------------------------------
class TemperedDataEnergy(JointEnergy):
    """β f(x, y) + (1 − β) λ log N(x; mean, diag(std²)): a path from a Gaussian base (β = 0)
    to p_λ(x | y) ∝ exp(f / λ) (β = 1) that a temperature-λ Langevin kernel follows."""

    def __init__(self, joint: JointEnergy, beta: float, temperature: float, mean: Tensor,
                 std: Tensor):
        super().__init__(joint.data_dim, joint.n_labels, joint.n_states, joint.label_kind)
        self.joint, self.beta, self.temperature = joint, beta, temperature
        self.mean, self.std = mean, std

    def base_log_prob(self, x: Tensor) -> Tensor:
        """log N(x; mean, std²) ``(B,)`` up to its constant."""
        return -0.5 * (((x - self.mean) / self.std) ** 2).sum(1)

    def relaxed_log_prob(self, x: Tensor, v: Tensor) -> Tensor:
        return (self.beta * self.joint.relaxed_log_prob(x, v)
                + (1 - self.beta) * self.temperature * self.base_log_prob(x))


@dataclass
class AnnealedSamples:
    """Equally weighted draws of x | y and how the particle population fared."""

    x: Tensor                   # (n, d)
    final_ess: float            # effective sample size of the weights before the last resampling
    resamplings: int            # times the population was resampled (ESS below n / 2)
    data_acceptance: float      # mean Langevin acceptance (1 unadjusted)


def anneal_data_given_labels(joint: JointEnergy, labels: Tensor, n: int, mean: Tensor,
                             std: Tensor, generator: torch.Generator, langevin: Langevin,
                             n_temperatures: int = 100,
                             steps_per_temperature: int = 5) -> AnnealedSamples:
    """n draws of x | y for one label vector ``labels (k,)`` by annealed sequential Monte
    Carlo: particles start from N(mean, diag(std²)) ``(d,)``, move by Langevin on the
    tempered path of :class:`TemperedDataEnergy`, and are reweighted (and resampled when the
    ESS drops below n / 2) at each of ``n_temperatures`` steps of β.

    Why: Langevin chains started from noise can stall in spurious local maxima of f(·, y)
    far from the data, where PCD never placed samples with that y; the weights carry the
    difference in f between basins, so resampling moves those particles to where p(x | y)
    has its mass.
    """
    x, _ = joint.validate(mean.view(1, -1).expand(n, -1).contiguous(),
                          labels.view(1, -1).expand(n, -1))
    y = labels.view(1, -1).expand(n, -1).long()
    x = x + std * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    log_weights = torch.zeros(n, dtype=torch.float64, device=x.device)
    resamplings, moves = 0, 0
    accepted = torch.zeros((), dtype=torch.float64, device=x.device)  # read once, at the end
    sampler = JointSampler(update_labels=False, langevin=langevin)
    betas = temperatures(n_temperatures).tolist()
    ess = float(n)
    for previous, beta in itertools.pairwise(betas):
        tempered = TemperedDataEnergy(joint, beta, langevin.temperature, mean, std)
        with torch.no_grad():
            gap = (joint.relaxed_log_prob(x, joint.relax_labels(y)) / langevin.temperature
                   - tempered.base_log_prob(x))
        log_weights += (beta - previous) * gap.double()
        ess = float(log_weights.logsumexp(0).mul(2).sub((2 * log_weights).logsumexp(0)).exp())
        if ess < n / 2 or beta == betas[-1]:
            probs = torch.softmax(log_weights, 0).to(x.dtype).view(1, -1)
            x = x[draw_categorical(probs, n, generator)[0]]
            log_weights.zero_()
            resamplings += beta != betas[-1]
        state = sampler.init(tempered, x, y)
        for _ in range(steps_per_temperature):
            state, info = sampler.step(tempered, state, generator)
            accepted += info.data_accepted.float().mean()
            moves += 1
        x = state.x
    return AnnealedSamples(x=x, final_ess=ess, resamplings=resamplings,
                           data_acceptance=float(accepted) / max(moves, 1))


# -- initial states ---------------------------------------------------------------------------
def uniform_data(n: int, low: Tensor, high: Tensor, generator: torch.Generator) -> Tensor:
    """``(n, d)`` uniform in the box [low, high] (the paper's Langevin start: the per-dimension
    range of the data)."""
    unit = torch.rand((n, low.shape[0]), generator=generator, dtype=low.dtype,
                      device=low.device)
    return low + unit * (high - low)


def labels_like(pool: Tensor | None, n: int, n_labels: int, n_states: int,
                generator: torch.Generator, device: torch.device | None = None) -> Tensor:
    """``(n, k)`` labels: rows drawn with replacement from ``pool (M, k)`` (configurations in
    proportion to their counts, as in the paper), or uniform when there is no pool."""
    if pool is None or pool.shape[0] == 0:
        return torch.randint(n_states, (n, n_labels), generator=generator, device=device)
    rows = torch.randint(pool.shape[0], (n,), generator=generator, device=pool.device)
    return pool[rows]


# -- prediction -------------------------------------------------------------------------------
def enumerate_labels(n_labels: int, n_states: int, limit: int = MAX_ENUMERATED_LABELS,
                     device: torch.device | None = None) -> Tensor:
    """Every label configuration, ``(q^k, k)`` long in lexicographic order (site 0 slowest)."""
    count = n_states ** n_labels
    if count > limit:
        raise ResourceError(f"exact enumeration of {n_states}^{n_labels} = {count} label "
                            f"configurations exceeds the limit of {limit}; use sampling instead "
                            f"(predict --method sample, train --missing sample)")
    rows = list(itertools.product(range(n_states), repeat=n_labels))
    return torch.tensor(rows, dtype=torch.long, device=device)


def label_log_posterior(joint: JointEnergy, x: Tensor, limit: int = MAX_ENUMERATED_LABELS,
                        chunk: int = 65536) -> tuple[Tensor, Tensor]:
    """Exact log p(y | x) by enumeration: ``(B, C)`` normalised over the configurations
    ``(C, k)`` (also returned), evaluated in chunks of ``chunk`` (x, y) pairs."""
    x, _ = joint.validate(x)
    labels = enumerate_labels(joint.n_labels, joint.n_states, limit, device=x.device)
    count = labels.shape[0]
    rows_per_chunk = max(1, chunk // count)
    parts = []
    with torch.no_grad():
        for start in range(0, x.shape[0], rows_per_chunk):
            block = x[start:start + rows_per_chunk]
            pairs_x = block.repeat_interleave(count, 0)
            pairs_y = joint.relax_labels(labels.repeat(block.shape[0], 1))
            parts.append(joint.relaxed_log_prob(pairs_x, pairs_y).view(-1, count))
    values = torch.cat(parts)
    return values - values.logsumexp(1, keepdim=True), labels


def log_marginal_unnormalised(joint: JointEnergy, x: Tensor, labels: Tensor) -> Tensor:
    """log Σ_y exp f(x, y) ``(B,)`` over ``labels (C, k)`` — differentiable in the parameters;
    its gradient is E_{p(y|x)}[∇f(x, y)], the positive phase of the paper's equation 8."""
    count = labels.shape[0]
    pairs = joint.relaxed_log_prob(x.repeat_interleave(count, 0),
                                   joint.relax_labels(labels.repeat(x.shape[0], 1)))
    return pairs.view(x.shape[0], count).logsumexp(1)


def predict_exact(joint: JointEnergy, x: Tensor,
                  limit: int = MAX_ENUMERATED_LABELS) -> Tensor:
    """argmax_y p(y | x) by enumeration (the paper's "energy-based" prediction): ``(B, k)``."""
    log_posterior, labels = label_log_posterior(joint, x, limit)
    return labels[log_posterior.argmax(1)]


def predict_by_sampling(joint: JointEnergy, x: Tensor, generator: torch.Generator,
                        n_samples: int = 10, burn_in: int = 200, thin: int = 1,
                        label_sampler: Sampler | None = None,
                        y0: Tensor | None = None) -> Tensor:
    """The paper's "sample-based" prediction: run label chains on p(y | x) (x fixed) for
    ``burn_in`` steps, keep ``n_samples`` states ``thin`` apart, and predict each site's most
    frequent value (ties: the smaller value). Chains start from ``y0`` (default uniform)."""
    x, _ = joint.validate(x)
    if y0 is None:
        y0 = torch.randint(joint.n_states, (x.shape[0], joint.n_labels), generator=generator,
                           device=x.device)
    sampler = JointSampler(label_sampler, update_data=False)
    run = run_joint_chains(sampler, joint, x, y0, n_samples, burn_in, thin, generator)
    counts = functional.one_hot(run.y, joint.n_states).sum(0)  # (B, k, q)
    return counts.argmax(-1)


def attribute_accuracy(predicted: Tensor, labels: Tensor) -> tuple[float, float]:
    """(fraction of label sites predicted right, fraction of rows with every site right)."""
    right = predicted == labels
    return float(right.float().mean()), float(right.all(1).float().mean())

