"""Checkpoints of PCD fits: one ``.npz`` (no pickle) holding a whole :class:`PcdState`.

Written atomically, so a kill during a write leaves the previous checkpoint intact. The
file also records what the run was fitting (a fingerprint of the encoded alignment and its
weights) and the settings that shape the trajectory; resuming with other data or other
settings is refused rather than silently mixed. Stop criteria (``max_iterations``,
``max_time``, ``target_pearson``) may change between runs: that is how a fit is extended.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import InputError
from ..io.npz import json_meta, meta_array, read_npz
from .pcd import PcdSettings, PcdState, default_steps

FORMAT = "potts-gwg-pcd-checkpoint-2"
# check_every is not among them: a checkpoint's partial Pearson window is summed over it.
STOP_CRITERIA = ("max_iterations", "max_time", "target_pearson")
SCALARS = ("iteration", "seconds", "scan_position", "pearson_pairs", "pearson_sites",
           "acceptance")


def checkpoint_path(model_path: str | os.PathLike) -> Path:
    """``family.npz`` -> ``family.checkpoint.npz`` beside it."""
    model_path = Path(model_path)
    stem = model_path.name.removesuffix(".npz")
    return model_path.with_name(f"{stem}.checkpoint.npz")


def data_fingerprint(indices: torch.Tensor, weights: torch.Tensor) -> str:
    """SHA-256 of the encoded alignment and its weights: what the fit is fitting."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(indices.cpu().numpy().astype(np.uint8)).tobytes())
    digest.update(np.ascontiguousarray(weights.cpu().numpy().astype(np.float32)).tobytes())
    return digest.hexdigest()


def save_checkpoint(path: str | os.PathLike, state: PcdState, settings: PcdSettings,
                    fingerprint: str, extra: dict) -> Path:
    """Write ``state`` atomically; ``extra`` (JSON-able) comes back from :func:`load_checkpoint`."""
    meta = {"format": FORMAT, "settings": settings.as_dict(), "fingerprint": fingerprint,
            "extra": extra, **{name: getattr(state, name) for name in SCALARS}}
    arrays = {"h": state.h, "couplings": state.couplings, "chains": state.chains,
              "generator_state": state.generator_state, "window_sites": state.window_sites,
              "window_pairs": state.window_pairs,
              **{f"moment_{name}": value for name, value in state.moments.items()}}
    with atomic_path(path, suffix=".npz") as temporary, open(temporary, "wb") as stream:
        np.savez(stream, meta=meta_array(meta),
                 **{name: value.cpu().numpy() for name, value in arrays.items()})
    return Path(path)


def load_checkpoint(path: str | os.PathLike, settings: PcdSettings, fingerprint: str,
                    device: torch.device) -> tuple[PcdState, dict]:
    """Read a checkpoint made for the same data and settings; return the state and ``extra``."""
    path = Path(path)
    arrays = read_npz(path, "checkpoint")
    if "meta" not in arrays:
        raise InputError("not a potts-gwg PCD checkpoint (no 'meta')", path)
    meta = json_meta(arrays, path)
    if meta.get("format") != FORMAT:
        raise InputError(f"not a potts-gwg PCD checkpoint (format {meta.get('format')!r})", path)
    if meta["fingerprint"] != fingerprint:
        raise InputError("checkpoint was made from a different alignment or weights; "
                         "resume with the same MSA and options, or delete it", path)
    wanted, saved = settings.as_dict(), dict(meta["settings"])
    if saved.get("steps") is None and "h" in arrays:  # written before steps were resolved
        saved["steps"] = default_steps(arrays["h"].shape[0])
    changed = [name for name in wanted if name not in STOP_CRITERIA
               and wanted[name] != saved.get(name)]
    if changed:
        details = ", ".join(f"{name} {saved.get(name)!r} -> {wanted[name]!r}" for name in changed)
        raise InputError(f"checkpoint settings differ from this run's ({details}); resume "
                         "with the same settings, or delete it to start afresh", path)

    def tensor(name: str, dtype=None) -> torch.Tensor:
        value = torch.from_numpy(arrays[name])
        return value if dtype is None else value.to(device=device, dtype=dtype)

    moments = {name[len("moment_"):]: tensor(name, torch.float32)
               for name in arrays if name.startswith("moment_")}
    state = PcdState(h=tensor("h", torch.float32), couplings=tensor("couplings", torch.float32),
                     moments=moments, chains=tensor("chains", torch.long),
                     generator_state=tensor("generator_state"),
                     window_sites=tensor("window_sites", torch.float32),
                     window_pairs=tensor("window_pairs", torch.float32),
                     **{name: meta[name] for name in SCALARS})
    return state, meta["extra"]
