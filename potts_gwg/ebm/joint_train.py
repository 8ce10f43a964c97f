"""Training joint EBMs f(x, y) by persistent contrastive divergence, with labels observed for
all, some or none of the examples, and their files (model and data ``.npz``, no pickle).

The gradient of the log-likelihood of the observed data is

    Σ_labelled ∇f(x, y) + Σ_unlabelled E_{p(y|x)}[∇f(x, y)] − N · E_{p(x,y)}[∇f(x, y)]

(the paper's equations 2 and 8). The last expectation comes from a replay buffer of (x, y)
chains advanced by the joint Metropolis-within-Gibbs sampler; the unlabelled term either
marginalises y exactly (log Σ_y exp f(x, y), whose gradient is that expectation; needs an
enumerable label space) or uses labels imputed by persistent label chains on p(y | x).
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..atomic import atomic_path
from ..engine.driver import checked_generator
from ..errors import InputError, NumericalError
from ..io.npz import json_meta, meta_array, read_npz
# The settings live in a torch-free module (for the CLI's --help); imported from here too.
from ..joint_settings import JointTrainingConfig
from .joint import (
    JointEnergy,
    JointSampler,
    MLPJointEnergy,
    enumerate_labels,
    labels_like,
    log_marginal_unnormalised,
    uniform_data,
)

MISSING_LABEL = -1  # in data files: a row of -1 labels is an unlabelled example


@dataclass
class JointTrainingResult:
    """The trained model, its parameter EMA (use it for evaluation) and the loss history."""

    model: JointEnergy
    ema: JointEnergy
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    data_low: Tensor | None = None   # (d,) per-dimension data minimum (sampling starts)
    data_high: Tensor | None = None  # (d,)


def train_joint(joint: JointEnergy, x: Tensor, y: Tensor, labelled: Tensor,
                config: JointTrainingConfig, generator: torch.Generator,
                log_every: int = 100,
                callback: Callable[[dict], None] | None = None) -> JointTrainingResult:
    """Fit ``joint`` to ``x (N, d)`` with labels ``y (N, k)`` observed where ``labelled (N,)``.

    ``generator`` (on the data's device) drives every random choice: same seed, same run on
    the CPU. Every ``log_every`` iterations a record (iteration, mean f on data and samples,
    acceptance rates, seconds) goes to ``history`` and to ``callback``.
    """
    config.validate()
    if generator is None:  # it drew from torch's global state: not the same run per seed
        raise TypeError("generator must be a torch.Generator on the data's device, got None")
    checked_generator(generator, x.device)
    x, _ = joint.validate(x)
    if y.shape != (x.shape[0], joint.n_labels) or labelled.shape != (x.shape[0],):
        raise InputError(f"labels must be ({x.shape[0]}, {joint.n_labels}) with a "
                         f"({x.shape[0]},) mask; got {tuple(y.shape)}, {tuple(labelled.shape)}")
    if y.is_floating_point() or y.is_complex():
        raise InputError(f"labels y must be integers, got {y.dtype} (.long() would truncate "
                         "them silently)")
    labelled = labelled.bool()
    y = torch.where(labelled.unsqueeze(1), y.long(), torch.zeros_like(y).long())
    joint.validate(x, y)
    all_labels = None
    if config.missing == "marginal" and not bool(labelled.all()):
        all_labels = enumerate_labels(joint.n_labels, joint.n_states, device=x.device)
    device, n = x.device, x.shape[0]
    low, high = x.min(0).values, x.max(0).values
    pool = y[labelled]
    sampler = config.make_sampler()
    imputer = JointSampler(config.make_label_sampler(), update_data=False)
    imputed = labels_like(pool, n, joint.n_labels, joint.n_states, generator, device)
    buffer_x = uniform_data(config.buffer_size, low, high, generator)
    buffer_y = labels_like(pool, config.buffer_size, joint.n_labels, joint.n_states,
                           generator, device)
    optimiser = torch.optim.Adam(joint.parameters(), lr=config.learning_rate)
    ema = copy.deepcopy(joint).requires_grad_(False)
    result = JointTrainingResult(model=joint, ema=ema, data_low=low, data_high=high)
    start = time.perf_counter()
    labelled_rows, unlabelled_rows = labelled.nonzero().squeeze(1), (~labelled).nonzero().squeeze(1)
    balanced = config.balance and len(labelled_rows) > 0 and len(unlabelled_rows) > 0

    def unlabelled_term(rows: Tensor) -> Tensor:
        """log Σ_y exp f(x, y) (the exact eq. 8 positive phase), or f at labels imputed by
        ``missing_steps`` steps of persistent label chains on p(y | x)."""
        if all_labels is not None:
            return log_marginal_unnormalised(joint, x[rows], all_labels)
        chains = imputer.init(joint, x[rows], imputed[rows])
        for _ in range(config.missing_steps):
            chains, _ = imputer.step(joint, chains, generator)
        imputed[rows] = chains.y
        return joint.relaxed_log_prob(x[rows], joint.relax_labels(chains.y))

    # Acceptance summed on the device (float64), read at each record: no sync per step.
    totals = {name: torch.zeros((), dtype=torch.float64, device=device)
              for name in ("label_acceptance", "data_acceptance")}
    counted = 0  # sampler steps since the last record
    for iteration in range(1, config.iterations + 1):
        for group in optimiser.param_groups:
            group["lr"] = config.learning_rate * min(1.0, iteration / max(config.warmup, 1))
        # Negative phase: advance a batch of buffer chains; some restart from noise.
        slots = torch.randint(config.buffer_size, (config.batch_size,), generator=generator,
                              device=device)
        restart = torch.rand(config.batch_size, generator=generator,
                             device=device) < config.reinit_rate
        x_neg = torch.where(restart.unsqueeze(1),
                            uniform_data(config.batch_size, low, high, generator),
                            buffer_x[slots])
        y_neg = torch.where(restart.unsqueeze(1),
                            labels_like(pool, config.batch_size, joint.n_labels,
                                        joint.n_states, generator, device), buffer_y[slots])
        state = sampler.init(joint, x_neg, y_neg)
        for _ in range(config.sampler_steps):
            state, info = sampler.step(joint, state, generator)
            totals["label_acceptance"] += info.labels_accepted.float().mean()
            totals["data_acceptance"] += info.data_accepted.float().mean()
            counted += 1
        buffer_x[slots], buffer_y[slots] = state.x, state.y
        # Positive phase: f on labelled pairs; log Σ_y exp f (or f at imputed y) on the rest.
        if balanced:
            rows_l = labelled_rows[torch.randint(len(labelled_rows), (config.batch_size,),
                                                 generator=generator, device=device)]
            rows_u = unlabelled_rows[torch.randint(len(unlabelled_rows), (config.batch_size,),
                                                   generator=generator, device=device)]
        else:
            rows = torch.randint(n, (config.batch_size,), generator=generator, device=device)
            rows_l, rows_u = rows[labelled[rows]], rows[~labelled[rows]]
        terms = []
        if len(rows_l):
            terms.append(joint.relaxed_log_prob(x[rows_l], joint.relax_labels(y[rows_l])))
        if len(rows_u):
            terms.append(unlabelled_term(rows_u))
        f_neg = joint.relaxed_log_prob(state.x, joint.relax_labels(state.y))
        # Each mean log-likelihood term brings its own −log Z, estimated by f on the samples.
        if balanced:
            loss = len(terms) * f_neg.mean() - sum(term.mean() for term in terms)
        else:
            loss = f_neg.mean() - torch.cat(terms).mean()
        f_pos = torch.cat(terms)
        if config.energy_l2 > 0:
            loss = loss + config.energy_l2 * ((f_pos ** 2).mean() + (f_neg ** 2).mean())
        if not bool(torch.isfinite(loss)):
            raise NumericalError(f"joint training: the loss became {float(loss)} at iteration "
                                 f"{iteration} (lower --learning-rate or --step-size, or set "
                                 f"--energy-l2)")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            for average, current in zip(ema.parameters(), joint.parameters()):
                average.mul_(config.ema).add_(current, alpha=1 - config.ema)
        if iteration % log_every == 0 or iteration == config.iterations:
            record = {"iteration": iteration, "f_data": float(f_pos.detach().mean()),
                      "f_samples": float(f_neg.detach().mean()),
                      "label_acceptance": float(totals["label_acceptance"]) / counted,
                      "data_acceptance": float(totals["data_acceptance"]) / counted,
                      "seconds": time.perf_counter() - start}
            for total in totals.values():
                total.zero_()
            counted = 0
            result.history.append(record)
            if callback is not None:
                callback(record)
    result.seconds = time.perf_counter() - start
    return result


# -- files ------------------------------------------------------------------------------------
def save_joint_model(path: str | os.PathLike, joint: MLPJointEnergy, meta: dict) -> Path:
    """Write the parameters (``param/<name>`` float32 arrays) and ``meta`` (JSON: the
    architecture under ``"architecture"``, plus what the caller adds) atomically."""
    arrays = {f"param/{name}": value.detach().cpu().float().numpy()
              for name, value in joint.state_dict().items()}
    text = json.dumps({**meta, "architecture": joint.architecture()})
    with atomic_path(path, suffix=".npz") as temporary, open(temporary, "wb") as stream:
        np.savez(stream, meta=np.array(text), **arrays)
    return Path(path)


def load_joint_model(path: str | os.PathLike,
                     device: torch.device | None = None) -> tuple[MLPJointEnergy, dict]:
    """Read a model written by :func:`save_joint_model`; problems are :class:`InputError`."""
    arrays, meta = _read_npz(path, "joint model file (from potts-gwg ebm joint train)")
    architecture = meta.get("architecture")
    if not isinstance(architecture, dict) or architecture.get("type") != "mlp":
        raise InputError("not a joint model file ('meta' has no MLP architecture; write one "
                         "with potts-gwg ebm joint train)", path)
    spec = architecture
    try:
        joint = MLPJointEnergy(int(spec["data_dim"]), int(spec["n_labels"]),
                               int(spec["n_states"]), str(spec["label_kind"]),
                               [int(width) for width in spec["hidden"]])
        state = {name[len("param/"):]: torch.from_numpy(value)
                 for name, value in arrays.items() if name.startswith("param/")}
        joint.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise InputError(f"parameters do not fit the architecture ({str(error)[:200]})",
                         path) from None
    return joint.to(device) if device is not None else joint, meta


def save_joint_data(path: str | os.PathLike, x: Tensor, y: Tensor, labelled: Tensor,
                    meta: dict | None = None) -> Path:
    """``x (N, d)`` float32, ``y (N, k)`` int64 with rows of −1 where not ``labelled``."""
    y = torch.where(labelled.bool().unsqueeze(1), y.long(), MISSING_LABEL)
    with atomic_path(path, suffix=".npz") as temporary, open(temporary, "wb") as stream:
        np.savez(stream, x=x.detach().cpu().float().numpy(), y=y.cpu().numpy(),
                 meta=meta_array(meta or {}))
    return Path(path)


def load_joint_data(path: str | os.PathLike) -> tuple[Tensor, Tensor, Tensor, dict]:
    """Read ``x``, ``y`` (rows of −1: unlabelled) from an ``.npz``; returns x float32,
    y long (0 where unlabelled), the labelled mask and ``meta`` (``{}`` if absent)."""
    arrays, meta = _read_npz(path, "joint data file (.npz with x and y)", need_meta=False)
    for key in ("x", "y"):
        if key not in arrays:
            raise InputError(f"data file lacks '{key}' (has {', '.join(arrays) or 'nothing'})",
                             path)
    x, y = arrays["x"], arrays["y"]
    if x.ndim != 2 or x.dtype.kind != "f" or x.shape[0] == 0:
        raise InputError(f"'x' must be a non-empty (N, d) float array, got {x.shape} {x.dtype}",
                         path)
    if y.ndim != 2 or y.dtype.kind not in "iu" or y.shape[0] != x.shape[0]:
        raise InputError(f"'y' must be an (N={x.shape[0]}, k) integer array, got {y.shape} "
                         f"{y.dtype}", path)
    if not np.isfinite(x).all():
        row = int(np.nonzero(~np.isfinite(x).all(1))[0][0])
        raise InputError(f"'x' has NaN or infinite values (first in row {row})", path)
    missing = y == MISSING_LABEL
    partial = missing.any(1) & ~missing.all(1)
    if partial.any():
        raise InputError(f"row {int(np.nonzero(partial)[0][0])} of 'y' is partly missing; a "
                         f"row is either fully labelled or all {MISSING_LABEL}", path)
    if (y < MISSING_LABEL).any():
        row = int(np.nonzero((y < MISSING_LABEL).any(1))[0][0])
        raise InputError(f"'y' row {row} has a negative label other than {MISSING_LABEL}",
                         path)
    labelled = ~missing.all(1)
    y = np.where(labelled[:, None], y, 0)
    return (torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64)),
            torch.from_numpy(labelled), meta)


def _read_npz(path: str | os.PathLike, what: str,
              need_meta: bool = True) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and the JSON ``meta`` (``{}`` if absent and not needed) of a joint file."""
    arrays = read_npz(path, what)
    if "meta" not in arrays:
        if need_meta:
            raise InputError(f"not a {what}: no 'meta'", path)
        return arrays, {}
    meta = json_meta(arrays, path)
    del arrays["meta"]
    return arrays, meta


def config_record(config: JointTrainingConfig) -> dict:
    """The settings as a plain dict (for ``meta`` and benchmark JSON)."""
    return asdict(config)
