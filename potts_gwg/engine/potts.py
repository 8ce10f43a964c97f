"""The Potts energy with local fields, the fast path of every single-site sampler.

f(x) = Σ_i h[i, x_i] + Σ_{i<j} J[i, j, x_i, x_j]   (the model-file convention).

The couplings are stored once as a symmetric ``(L·q, L·q)`` matrix
G[(i, b), (j, a)] = J[i, j, b, a], so that

* the local fields of a state are a sum of L rows of G:
  F[i, a] = h[i, a] + Σ_j J[i, j, a, x_j] = h + Σ_j G[(j, x_j), (i, a)];
* F is also ∂f/∂x[i, a] at the one-hot x, and because J[i, i] = 0 the first-order
  difference F[i, a] − F[i, x_i] is the exact energy change of setting x_i = a;
* after site i changes from ``old`` to ``new`` every chain's F moves by
  G[(i, new)] − G[(i, old)]: two rows, O(L·q) memory traffic per chain-step instead of
  the O(L²·q²) of recomputing x·J.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional

from ..io.model_file import PottsModel
from ..row_sums import summed_rows
from .energies import LocalFieldEnergy

SYMMETRY_TOLERANCE = 1e-4


class PottsEnergy(LocalFieldEnergy):
    """Potts model with fields ``h (L, q)`` and couplings ``J (L, L, q, q)``.

    ``J`` must satisfy J[i, j, a, b] = J[j, i, b, a] (to ``SYMMETRY_TOLERANCE`` relative; it is
    then symmetrised exactly) and J[i, i] = 0, as in the model file. Tensors or numpy arrays
    (``fit_plm``'s result); a model file's are read by :meth:`from_model`.
    """

    def __init__(self, h: Tensor | np.ndarray, J: Tensor | np.ndarray):
        h, J = torch.as_tensor(h), torch.as_tensor(J)
        if h.ndim != 2 or not h.is_floating_point() or not J.is_floating_point():
            raise ValueError(f"h must be (L, q) and J (L, L, q, q), both floats; got "
                             f"{tuple(h.shape)} {h.dtype} and {tuple(J.shape)} {J.dtype}")
        length, n_states = h.shape
        if J.shape != (length, length, n_states, n_states):
            raise ValueError(f"J must have shape {(length, length, n_states, n_states)} for h "
                             f"{tuple(h.shape)}, got {tuple(J.shape)}")
        if J.dtype != h.dtype or J.device != h.device:
            raise ValueError(f"h and J must share dtype and device, got {h.dtype} on "
                             f"{h.device} and {J.dtype} on {J.device}")
        super().__init__(length, n_states)
        couplings = J.permute(0, 2, 1, 3).reshape(length * n_states, length * n_states)
        if bool(J.diagonal(dim1=0, dim2=1).any()):
            raise ValueError("J must be zero on the diagonal blocks J[i, i]")
        if not bool(torch.isfinite(h).all()):
            raise ValueError("h must be finite: it holds NaN or infinite values")
        largest = float(couplings.abs().max())  # NaN if any is
        if not math.isfinite(largest):
            raise ValueError("J must be finite: it holds NaN or infinite values")
        scale = max(1.0, largest)
        if float((couplings - couplings.T).abs().max()) > SYMMETRY_TOLERANCE * scale:
            raise ValueError("J is not symmetric: J[i, j, a, b] != J[j, i, b, a]")
        self.register_buffer("h", h.clone())   # never an alias of the caller's array
        self.register_buffer("couplings", 0.5 * (couplings + couplings.T))
        self.register_buffer("offsets", torch.arange(length, device=h.device) * n_states)

    @classmethod
    def from_model(cls, model: PottsModel, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> "PottsEnergy":
        """The energy of a loaded model file, on ``device`` (default CPU) in ``dtype``."""
        return cls(torch.as_tensor(model.h, dtype=dtype, device=device),
                   torch.as_tensor(model.J, dtype=dtype, device=device))

    @property
    def J(self) -> Tensor:
        """The couplings as ``(L, L, q, q)`` (a view of the stored matrix)."""
        length, q = self.n_sites, self.n_states
        return self.couplings.view(length, q, length, q).permute(0, 2, 1, 3)

    def project_(self) -> None:
        """G symmetric and J[i, i] = 0: the local-field differences are the exact energy
        changes only then (a trained diagonal block would act as a hidden field)."""
        length, q = self.n_sites, self.n_states
        self.couplings.copy_(0.5 * (self.couplings + self.couplings.T))
        sites = torch.arange(length, device=self.couplings.device)
        self.couplings.view(length, q, length, q)[sites, :, sites, :] = 0.0

    def relaxed_log_prob(self, v: Tensor) -> Tensor:
        flat = v.reshape(v.shape[0], -1)
        return flat @ self.h.reshape(-1) + 0.5 * ((flat @ self.couplings) * flat).sum(1)

    def local_fields(self, x: Tensor) -> Tensor:
        rows = x + self.offsets
        summed = summed_rows(rows, self.couplings)
        return self.h + summed.view(x.shape[0], self.n_sites, self.n_states)

    def log_prob_indices(self, x: Tensor) -> Tensor:
        # L coupling rows per chain instead of the (L·q)² matmul of the relaxed formula.
        return self.log_prob_from_fields(x, self.local_fields(x))

    def log_prob_from_fields(self, x: Tensor, fields: Tensor) -> Tensor:
        # f = Σ_i h[i, x_i] + ½ Σ_i Σ_j J[i, j, x_i, x_j] = ½ Σ_i (h[i, x_i] + F[i, x_i]).
        index = x.unsqueeze(-1)
        at_x = fields.gather(2, index) + self.h.expand_as(fields).gather(2, index)
        return 0.5 * at_x.sum((1, 2))

    def field_delta(self, sites: Tensor, old: Tensor, new: Tensor) -> Tensor:
        rows = torch.stack((sites * self.n_states + new, sites * self.n_states + old), 1)
        # +1 for the new row, −1 for the old one, filled on the device: a tensor built from
        # a Python list would be a host-to-device copy that waits for the GPU on every step.
        signs = torch.ones(rows.shape, dtype=self.couplings.dtype, device=rows.device)
        signs[:, 1] = -1.0
        delta = functional.embedding_bag(rows, self.couplings, mode="sum",
                                         per_sample_weights=signs)
        return delta.view(sites.shape[0], self.n_sites, self.n_states)
