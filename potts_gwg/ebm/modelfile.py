"""EBM model files: one ``.npz`` (no pickle) that is both the trained model and a checkpoint.

It holds ``meta`` (a JSON string: format, energy description, training settings, updates
done, wall seconds, data file), ``base_table`` (the base distribution's log-probabilities)
and the arrays of :meth:`PCDTrainer.to_arrays` (model, EMA, Adam state, replay buffer,
generator state, history). Sampling and evaluation use the EMA parameters by default.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_open
from ..engine import EnergyModel
from ..errors import InputError
from ..io.npz import meta_array, read_npz
from .networks import EnergySpec, IndependentSites, build_energy
from .trainer import PCDTrainer, TrainConfig

FORMAT = "potts-gwg-ebm"
VERSION = 1


@dataclass
class ModelFile:
    """A read model file: its description and arrays (CPU numpy)."""

    path: Path
    spec: EnergySpec
    config: TrainConfig
    meta: dict
    arrays: dict[str, np.ndarray]

    def base(self, device: torch.device | str = "cpu") -> IndependentSites:
        return IndependentSites(torch.from_numpy(self.arrays["base_table"]).to(device),
                                normalise=False)

    def energy(self, device: torch.device | str = "cpu", ema: bool = True) -> EnergyModel:
        """The trained energy on ``device``, with EMA parameters (``ema``) or the last ones."""
        model = build_energy(self.spec, self.base(), seed=0)
        state = {name[len("model/"):]: torch.from_numpy(value)
                 for name, value in self.arrays.items() if name.startswith("model/")}
        if ema:
            state.update({name[len("ema/"):]: torch.from_numpy(value)
                          for name, value in self.arrays.items() if name.startswith("ema/")})
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise InputError(f"the tensors do not fit the energy description "
                             f"({str(error).splitlines()[0]})", self.path) from None
        return model.to(device).requires_grad_(False)

    def trainer(self, data: torch.Tensor, device: torch.device | str = "cpu") -> PCDTrainer:
        """A trainer that continues this run exactly (same settings, state and random
        stream) on ``data (N, n_sites)``."""
        trainer = PCDTrainer(build_energy(self.spec, self.base(), seed=0).to(device),
                             data.to(device), self.base(device), self.config)
        try:
            trainer.restore(self.arrays, self.meta["iterations"], self.meta["train_seconds"])
        except (RuntimeError, ValueError, KeyError) as error:  # shapes, generator state
            raise InputError(f"cannot continue this run here ({str(error).splitlines()[0]}; a "
                             "run continues on the device type it started on)",
                             self.path) from None
        return trainer


def save_model_file(path: str | os.PathLike, trainer: PCDTrainer, spec: EnergySpec,
                    extra: dict | None = None) -> None:
    """Write ``trainer``'s model and state atomically (the old file stays until it is done)."""
    meta = {"format": FORMAT, "version": VERSION, "spec": spec.to_json(),
            "config": trainer.config.to_json(), "iterations": trainer.iteration,
            "train_seconds": trainer.seconds, **(extra or {})}
    arrays = trainer.to_arrays()
    arrays["base_table"] = trainer.base.table.detach().cpu().numpy()
    with atomic_open(path, "wb") as stream:
        np.savez(stream, meta=meta_array(meta), **arrays)


def load_model_file(path: str | os.PathLike) -> ModelFile:
    """Read and check a model file written by :func:`save_model_file`."""
    path = Path(path)
    arrays = read_npz(path, "EBM model file")
    if "meta" not in arrays:
        raise InputError("not a potts-gwg EBM model file (no 'meta' array)", path)
    try:
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
        spec = EnergySpec.from_json(meta["spec"])
        config = TrainConfig(**meta["config"])
        missing = {"base_table", "buffer", "generator", "history"} - set(arrays)
        if missing:
            raise ValueError(f"missing arrays {', '.join(sorted(missing))}")
        for name in ("iterations", "train_seconds"):
            if not isinstance(meta.get(name), (int, float)) or isinstance(meta[name], bool):
                raise ValueError(f"meta has no number {name!r}")
        model_arrays = {name[len("model/"):] for name in arrays if name.startswith("model/")}
        ema_arrays = {name[len("ema/"):] for name in arrays if name.startswith("ema/")}
        # The averaged parameters: without them energy(ema=True) would silently give the last.
        if not ema_arrays or not ema_arrays <= model_arrays:
            raise ValueError("the ema/ arrays are missing or do not match the model/ arrays")
    except (KeyError, ValueError, TypeError, InputError) as error:
        raise InputError(f"not a potts-gwg EBM model file ({error})", path) from None
    return ModelFile(path=path, spec=spec, config=config, meta=meta, arrays=arrays)
