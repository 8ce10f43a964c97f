"""Energy models: unnormalised log-probabilities f(x) over binary or categorical states.

Every model is a ``torch.nn.Module`` that can be evaluated on discrete states and on relaxed
(real-valued) inputs, so that ∇f exists for Gibbs-With-Gradients. The shape contract, checked
once at the boundary (:meth:`EnergyModel.forward`, a sampler's ``init``):

* binary models (``kind == "binary"``, ``n_states == 2``) take ``(batch, D)`` tensors: 0/1
  values of any dtype, or floats (relaxed);
* categorical models (``kind == "categorical"``) take ``(batch, L)`` integer indices in
  ``0..q-1``, or ``(batch, L, q)`` one-hot/relaxed floats.

Inside the engine a state is always a ``(batch, n_sites)`` long tensor of indices (for
binary models the bit itself); :meth:`EnergyModel.relax` gives the float view that the
model's formula and its gradient are written on: ``(batch, D)`` for binary models,
``(batch, L, q)`` one-hot for categorical ones. Devices and dtypes follow the model's
parameters; nothing here picks a device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional

from ..errors import InputError


class StateShapeError(InputError, ValueError):
    """A state tensor breaks a model's shape contract (also a ``ValueError`` for API users)."""


class EnergyModel(nn.Module, ABC):
    """f(x) = log p(x) + log Z for states of ``n_sites`` sites with ``n_states`` values each."""

    kind: ClassVar[str]  # "binary" or "categorical"

    def __init__(self, n_sites: int, n_states: int):
        super().__init__()
        if n_sites < 1 or n_states < 2:
            raise ValueError(f"need n_sites >= 1 and n_states >= 2, got {n_sites}, {n_states}")
        self.n_sites = n_sites
        self.n_states = n_states

    # -- what a model defines -------------------------------------------------------------
    @abstractmethod
    def relaxed_log_prob(self, v: Tensor) -> Tensor:
        """f on relaxed input, binary ``(B, D)`` or categorical ``(B, L, q)`` floats -> ``(B,)``."""

    def project_(self) -> None:
        """Put trained tensors back on the model's stated constraints, in place (a trainer
        calls it under ``torch.no_grad()`` after each optimiser step). Default: none."""

    # -- derived, overridable for speed ---------------------------------------------------
    def log_prob_indices(self, x: Tensor) -> Tensor:
        """f on index states ``(B, n_sites)`` long -> ``(B,)``, without validation.

        Differentiable in the model's parameters (PCD needs that); kernels call it under
        ``torch.no_grad()``.
        """
        return self.relaxed_log_prob(self.relax(x))

    def log_prob_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """f(x) ``(B,)`` and ∇f at the relaxed view of ``x`` (``(B, D)`` or ``(B, L, q)``)."""
        with torch.enable_grad():
            v = self.relax(x).requires_grad_(True)
            value = self.relaxed_log_prob(v)
            (grad,) = torch.autograd.grad(value.sum(), v)
        return value.detach(), grad

    def site_log_probs(self, x: Tensor, sites: Tensor) -> Tensor:
        """f at every value of one site per chain: ``x (B, n)``, ``sites (B,)`` -> ``(B, q)``.

        One batched evaluation of the ``n_states`` candidate states of each chain.
        """
        batch, n = x.shape
        q = self.n_states
        candidates = x.unsqueeze(1).repeat(1, q, 1)
        values = torch.arange(q, device=x.device).view(1, q, 1).expand(batch, q, 1)
        candidates.scatter_(2, sites.view(batch, 1, 1).expand(batch, q, 1), values)
        return self.log_prob_indices(candidates.view(batch * q, n)).view(batch, q)

    # -- views and the boundary -----------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        """The float dtype of the relaxed view: that of the model's tensors."""
        for tensor in self._tensors():
            if tensor.is_floating_point():
                return tensor.dtype
        return torch.get_default_dtype()

    @property
    def device(self) -> torch.device | None:
        """The device of the model's tensors (None for a model without any)."""
        return next((tensor.device for tensor in self._tensors()), None)

    def _tensors(self):
        yield from self.parameters()
        yield from self.buffers()

    def relax(self, x: Tensor) -> Tensor:
        """Float view of index states: ``(B, D)`` bits, or ``(B, L, q)`` one-hot."""
        if self.kind == "binary":
            return x.to(self.dtype)
        return functional.one_hot(x, self.n_states).to(self.dtype)

    def forward(self, x: Tensor) -> Tensor:
        """f(x) ``(B,)`` for any input the shape contract allows (validated here)."""
        indices, relaxed = self._check(x, exact=False)
        if indices is not None:
            return self.log_prob_indices(indices)
        return self.relaxed_log_prob(relaxed)

    def validate_state(self, x: Tensor) -> Tensor:
        """Check a discrete state batch and return it as ``(B, n_sites)`` long indices."""
        indices, _ = self._check(x, exact=True)
        return indices

    def _contract(self) -> str:
        name, n, q = type(self).__name__, self.n_sites, self.n_states
        if self.kind == "binary":
            return f"{name} takes (batch, D={n}) tensors of 0/1 values (or relaxed floats)"
        return (f"{name} takes (batch, L={n}) long indices in 0..{q - 1} "
                f"or (batch, {n}, {q}) one-hot/relaxed floats")

    def _fail(self, x: Tensor, problem: str) -> StateShapeError:
        return StateShapeError(f"{self._contract()}; got {tuple(x.shape)} {x.dtype}: {problem}")

    def _check(self, x: Tensor, exact: bool) -> tuple[Tensor | None, Tensor | None]:
        """Return (indices, None) for discrete input or (None, relaxed) for float input."""
        if not isinstance(x, Tensor):
            raise StateShapeError(f"{self._contract()}; got {type(x).__name__}")
        device = self.device
        if device is not None and x.device != device:
            raise self._fail(x, f"the state is on {x.device} but the model on {device}")
        n, q = self.n_sites, self.n_states
        if x.ndim in (2, 3) and x.shape[0] == 0:
            raise self._fail(x, "empty batch")
        if x.ndim == 2 and x.shape[1] == n:
            if self.kind == "binary":
                if x.is_floating_point() and not exact:
                    return None, x.to(self.dtype)
                if x.is_complex() or not bool(((x == 0) | (x == 1)).all()):
                    raise self._fail(x, "values must be 0 or 1")
                return x.long(), None
            if x.is_floating_point() or x.dtype == torch.bool or x.is_complex():
                raise self._fail(x, "indices must be an integer tensor")
            if not bool(((x >= 0) & (x < q)).all()):
                raise self._fail(x, f"indices must lie in 0..{q - 1}")
            return x.long(), None
        if self.kind == "categorical" and x.ndim == 3 and x.shape[1:] == (n, q):
            if not x.is_floating_point():
                raise self._fail(x, "a one-hot/relaxed input must be floating point")
            if not exact:
                return None, x.to(self.dtype)
            if not bool((((x == 0) | (x == 1)).all()) and bool((x.sum(-1) == 1).all())):
                raise self._fail(x, "a state must be exactly one-hot")
            return x.argmax(-1), None
        raise self._fail(x, "wrong shape")


def checked_parameter(value: Tensor, ndim: int, shape: str, name: str) -> Tensor:
    """``value`` as a finite float tensor with ``ndim`` non-empty dimensions (``shape`` says
    which, for the message): a model's parameters are checked once, when it is made."""
    tensor = torch.as_tensor(value)
    if tensor.ndim != ndim or not tensor.is_floating_point() or 0 in tensor.shape:
        raise ValueError(f"{name} must be {shape} floats, none of its sizes 0, got "
                         f"{tuple(tensor.shape)} {tensor.dtype}")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} must be finite: it holds NaN or infinite values")
    return tensor


class BernoulliEnergy(EnergyModel):
    """Independent bits: f(x) = θ·x, θ ``(D,)`` logits."""

    kind = "binary"

    def __init__(self, logits: Tensor):
        logits = checked_parameter(logits, 1, "(D,)", "logits")
        super().__init__(logits.shape[0], 2)
        self.register_buffer("logits", logits)

    def relaxed_log_prob(self, v: Tensor) -> Tensor:
        return v @ self.logits


class CategoricalEnergy(EnergyModel):
    """Independent categorical sites: f(x) = Σ_i θ[i, x_i], θ ``(L, q)`` logits."""

    kind = "categorical"

    def __init__(self, logits: Tensor):
        logits = checked_parameter(logits, 2, "(L, q)", "logits")
        super().__init__(*logits.shape)
        self.register_buffer("logits", logits)

    def relaxed_log_prob(self, v: Tensor) -> Tensor:
        return (v * self.logits).sum((1, 2))


class IsingEnergy(EnergyModel):
    """Dense Ising model on spins s = 2x − 1: f = ½ sᵀWs + b·s.

    ``coupling W (D, D)`` symmetric with a zero diagonal, ``bias b (D,)``.
    """

    kind = "binary"

    def __init__(self, coupling: Tensor, bias: Tensor):
        bias = checked_parameter(bias, 1, "(D,)", "bias")
        coupling = checked_parameter(coupling, 2, "(D, D)", "coupling")
        dim = bias.shape[0]
        if coupling.shape != (dim, dim):
            raise ValueError(f"coupling must be ({dim}, {dim}), got {tuple(coupling.shape)}")
        if not torch.allclose(coupling, coupling.T) or bool(coupling.diagonal().any()):
            raise ValueError("coupling must be symmetric with a zero diagonal")
        super().__init__(dim, 2)
        self.register_buffer("coupling", coupling)
        self.register_buffer("bias", bias)

    def relaxed_log_prob(self, v: Tensor) -> Tensor:
        s = 2 * v - 1
        return 0.5 * ((s @ self.coupling) * s).sum(1) + s @ self.bias

    def project_(self) -> None:
        """W symmetric with a zero diagonal."""
        self.coupling.copy_(0.5 * (self.coupling + self.coupling.T)).fill_diagonal_(0.0)


class LatticeIsingEnergy(EnergyModel):
    """Ising model on a 2-D or 3-D lattice, without a dense coupling matrix.

    f = θ Σ_<ij> s_i s_j + b Σ_i s_i over nearest-neighbour pairs, s = 2x − 1; sites are the
    lattice flattened in C order. ``periodic`` wraps each axis (an axis of length 2 then has
    its pair counted twice, as the wrap-around makes it a double bond).
    """

    kind = "binary"

    def __init__(self, shape: Sequence[int], coupling: float, bias: float = 0.0,
                 periodic: bool = True, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None):
        shape = tuple(int(size) for size in shape)
        if len(shape) not in (2, 3) or min(shape) < 2:
            raise ValueError(f"lattice shape must be 2-D or 3-D with sides >= 2, got {shape}")
        super().__init__(int(torch.tensor(shape).prod()), 2)
        self.shape = shape
        self.periodic = periodic
        self.register_buffer("coupling", torch.tensor(coupling, dtype=dtype, device=device))
        self.register_buffer("bias", torch.tensor(bias, dtype=dtype, device=device))

    def relaxed_log_prob(self, v: Tensor) -> Tensor:
        s = (2 * v - 1).view(v.shape[0], *self.shape)
        pairs = torch.zeros(v.shape[0], dtype=v.dtype, device=v.device)
        for axis in range(1, s.ndim):
            if self.periodic:
                neighbour_product = s * s.roll(-1, dims=axis)
            else:
                length = s.shape[axis]
                neighbour_product = s.narrow(axis, 0, length - 1) * s.narrow(axis, 1, length - 1)
            pairs = pairs + neighbour_product.flatten(1).sum(1)
        return self.coupling * pairs + self.bias * s.flatten(1).sum(1)


class RBMEnergy(EnergyModel):
    """Binary RBM with the hidden units summed out: f(x) = c·x + Σ_h softplus(W x + b)_h.

    ``weight (H, D)``, ``visible_bias c (D,)``, ``hidden_bias b (H,)``.
    """

    kind = "binary"

    def __init__(self, weight: Tensor, visible_bias: Tensor, hidden_bias: Tensor):
        hidden, visible = weight.shape
        if visible_bias.shape != (visible,) or hidden_bias.shape != (hidden,):
            raise ValueError(f"biases must be ({visible},) and ({hidden},) for weight "
                             f"{tuple(weight.shape)}")
        super().__init__(visible, 2)
        self.register_buffer("weight", weight)
        self.register_buffer("visible_bias", visible_bias)
        self.register_buffer("hidden_bias", hidden_bias)

    def relaxed_log_prob(self, v: Tensor) -> Tensor:
        hidden = functional.softplus(v @ self.weight.T + self.hidden_bias)
        return v @ self.visible_bias + hidden.sum(1)


class NeuralEnergy(EnergyModel):
    """Any ``nn.Module`` as f (a deep EBM): it maps ``(B, D)`` or ``(B, L, q)`` floats to ``(B,)``.

    A ``(B, 1)`` output is accepted and flattened; anything else is refused with its shape.
    """

    def __init__(self, net: nn.Module, kind: str, n_sites: int, n_states: int = 2):
        if kind not in ("binary", "categorical"):
            raise ValueError(f"kind must be 'binary' or 'categorical', got {kind!r}")
        if kind == "binary" and n_states != 2:
            raise ValueError(f"a binary model has n_states = 2, got {n_states}")
        super().__init__(n_sites, n_states)
        self.kind = kind
        self.net = net

    def relaxed_log_prob(self, v: Tensor) -> Tensor:
        out = self.net(v)
        if out.shape not in ((v.shape[0],), (v.shape[0], 1)):
            raise ValueError(f"the energy network must return ({v.shape[0]},) or "
                             f"({v.shape[0]}, 1) for a batch of {v.shape[0]}, "
                             f"got {tuple(out.shape)}")
        return out.reshape(v.shape[0])


class LocalFieldEnergy(EnergyModel):
    """A categorical model that keeps per-chain local fields F ``(B, L, q)`` such that

    f(x with x_i = a) − f(x) = F[i, a] − F[i, x_i]   exactly, for every site i and value a,

    and that can update F after one site changes in O(L·q). Samplers detect this class and
    then never evaluate f in full while stepping (see :mod:`potts_gwg.engine.potts`).
    """

    kind = "categorical"

    @abstractmethod
    def local_fields(self, x: Tensor) -> Tensor:
        """F for index states ``x (B, L)`` -> ``(B, L, q)``, computed from scratch."""

    @abstractmethod
    def field_delta(self, sites: Tensor, old: Tensor, new: Tensor) -> Tensor:
        """Change of F ``(B, L, q)`` when site ``sites[c]`` goes from ``old[c]`` to ``new[c]``."""

    def update_fields(self, fields: Tensor, sites: Tensor, old: Tensor, new: Tensor) -> Tensor:
        """``fields`` after the change (a new tensor; zero change where ``old == new``)."""
        return self.field_delta(sites, old, new).add_(fields)

    def log_prob_from_fields(self, x: Tensor, fields: Tensor) -> Tensor:
        """f(x) ``(B,)`` given F of x; models that can read f off F override this to save
        recomputing it (default: from scratch)."""
        return self.log_prob_indices(x)
