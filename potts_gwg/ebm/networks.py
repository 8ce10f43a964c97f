"""Energies for deep EBMs: MLP and small ResNet networks over binary or one-hot inputs, plus
an independent base distribution, as in Grathwohl et al. (2021): f(x) = net(x) + log p_base(x).

The base distribution (independent sites at the smoothed data marginals) lets a network that
outputs a constant start as a sensible model, gives the replay buffer its re-initialisation
draws, and is the tractable start of annealed importance sampling. An energy is described by
a JSON-able :class:`EnergySpec`, so model files hold tensors and that description only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ..engine import EnergyModel, NeuralEnergy, RBMEnergy, StateShapeError
from ..engine.draws import draw_from_logits
from ..errors import InputError
from ..settings import integer

ENERGIES = ("mlp", "resnet", "rbm")


class IndependentSites(EnergyModel):
    """Independent sites with normalised log-probabilities ``table (n_sites, n_states)``.

    Unlike the engine's Bernoulli/Categorical energies it is normalised (log Z = 0) and draws
    exact samples, which is what a base distribution is for. ``kind`` (how relaxed input is
    shaped) follows ``n_states`` unless given: a categorical model may have two states.
    """

    def __init__(self, table: Tensor, normalise: bool = True, kind: str | None = None):
        super().__init__(*table.shape)
        self.kind = kind or ("binary" if table.shape[1] == 2 else "categorical")
        # normalise=False takes a table that already is (a copy keeps its exact bits)
        self.register_buffer("table", torch.log_softmax(table, dim=1) if normalise
                             else table.clone())

    @classmethod
    def from_data(cls, data: Tensor, n_states: int, pseudo_count: float = 1.0,
                  dtype: torch.dtype = torch.float32) -> IndependentSites:
        """Site marginals of ``data (N, D)`` long, with ``pseudo_count`` added to each value
        (so no value has probability 0, which would make the base useless for AIS). ``data``
        is checked against the shape contract of the model it makes."""
        n_states = integer("n_states", n_states, least=2)
        if not isinstance(data, Tensor) or data.ndim != 2:
            raise StateShapeError(f"data must be a (N, D) tensor of states, got "
                                  f"{getattr(data, 'shape', type(data).__name__)}")
        data = cls(torch.zeros(data.shape[1], n_states, device=data.device)).validate_state(data)
        counts = nn.functional.one_hot(data, n_states).sum(0).to(torch.float64)
        return cls(torch.log(counts + pseudo_count).to(dtype))

    def relaxed_log_prob(self, v: Tensor) -> Tensor:
        if self.kind == "binary":
            return v @ (self.table[:, 1] - self.table[:, 0]) + self.table[:, 0].sum()
        return (v * self.table).sum((1, 2))

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` exact draws ``(n, n_sites)`` long on the table's device."""
        logits = self.table.unsqueeze(0).expand(n, -1, -1).reshape(n * self.n_sites, -1)
        return draw_from_logits(logits, 1, generator).view(n, self.n_sites)


class MLPNet(nn.Module):
    """``depth`` hidden layers of ``hidden`` units with SiLU (swish), scalar output.

    Input ``(B, D)`` or ``(B, L, q)`` floats (flattened) -> ``(B,)``.
    """

    def __init__(self, n_inputs: int, hidden: int, depth: int):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_inputs
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, v: Tensor) -> Tensor:
        return self.layers(v.flatten(1)).squeeze(1)


class ResidualBlock(nn.Module):
    """x + conv(silu(conv(silu(x)))), 3×3 convolutions keeping the spatial size."""

    def __init__(self, channels: int):
        super().__init__()
        self.first = nn.Conv2d(channels, channels, 3, padding=1)
        self.second = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.second(nn.functional.silu(self.first(nn.functional.silu(x))))


class ResNetNet(nn.Module):
    """A small ResNet energy over images: pixels as channels (1 for bits, q for one-hot), a
    3×3 stem, ``depth`` residual blocks of ``hidden`` channels, global mean pool, linear.

    Input ``(B, H·W)`` or ``(B, H·W, q)`` floats -> ``(B,)``.
    """

    def __init__(self, image_shape: tuple[int, int], n_channels: int, hidden: int, depth: int):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.n_channels = n_channels
        self.stem = nn.Conv2d(n_channels, hidden, 3, padding=1)
        self.blocks = nn.Sequential(*(ResidualBlock(hidden) for _ in range(depth)))
        self.head = nn.Linear(hidden, 1)

    def forward(self, v: Tensor) -> Tensor:
        height, width = self.image_shape
        if v.ndim == 2:
            images = v.view(-1, 1, height, width)
        else:
            images = v.transpose(1, 2).reshape(-1, self.n_channels, height, width)
        features = nn.functional.silu(self.blocks(self.stem(images))).mean((2, 3))
        return self.head(features).squeeze(1)


class DeepEnergy(NeuralEnergy):
    """f(x) = net(x) + log p_base(x); without a base, f = net (the engine's NeuralEnergy)."""

    def __init__(self, net: nn.Module, kind: str, n_sites: int, n_states: int,
                 base: IndependentSites | None):
        super().__init__(net, kind, n_sites, n_states)
        self.base = base

    def relaxed_log_prob(self, v: Tensor) -> Tensor:
        value = super().relaxed_log_prob(v)
        return value if self.base is None else value + self.base.relaxed_log_prob(v)


@dataclass(frozen=True)
class EnergySpec:
    """What a model file needs to rebuild an energy (stored as JSON next to the tensors).

    ``hidden``: units (MLP), channels (ResNet) or hidden units (RBM); ``depth``: hidden
    layers (MLP) or residual blocks (ResNet), unused by the RBM; ``base``: add log p_base
    (MLP/ResNet) or start the visible biases at the base logits (RBM, binary only).
    """

    energy: str
    n_sites: int
    n_states: int
    hidden: int = 256
    depth: int = 2
    base: bool = True
    image_shape: tuple[int, int] | None = None

    @property
    def kind(self) -> str:
        return "binary" if self.n_states == 2 else "categorical"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict) -> EnergySpec:
        shape = record.get("image_shape")
        try:
            return cls(**{**record, "image_shape": None if shape is None else tuple(shape)})
        except TypeError as error:
            raise InputError(f"bad energy description {record}: {error}") from None

    def __post_init__(self):
        """Checked when made (a one-line InputError naming the setting); numpy scalars
        become plain ints, so that the description always serialises to JSON."""
        if self.energy not in ENERGIES:
            raise InputError(f"unknown energy {self.energy!r} (choose {', '.join(ENERGIES)})")
        try:
            checked = {"n_sites": integer("n_sites", self.n_sites, least=1),
                       "n_states": integer("n_states", self.n_states, least=2),
                       "hidden": integer("hidden", self.hidden, least=1),
                       "depth": integer("depth", self.depth,
                                        least=int(self.energy == "resnet"))}
            if self.image_shape is not None:
                sides = (tuple(integer("image_shape", side, least=1) for side in self.image_shape)
                         if isinstance(self.image_shape, (tuple, list)) else ())
                if len(sides) != 2 or math.prod(sides) != checked["n_sites"]:
                    raise ValueError(f"image_shape must be two sides whose product is the "
                                     f"{checked['n_sites']} sites, got {self.image_shape!r}")
                checked["image_shape"] = sides
        except (TypeError, ValueError) as error:
            raise InputError(str(error)) from None
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen
        if self.energy == "rbm" and self.kind != "binary":
            raise InputError(f"the RBM energy needs binary data; these have {self.n_states} "
                             "states per site")
        if self.energy == "resnet" and self.image_shape is None:
            raise InputError("the ResNet energy needs image data (an image_shape in the data "
                             "file)")


def make_trainable(model: EnergyModel) -> EnergyModel:
    """Turn the floating-point buffers of an engine model into parameters, in place.

    The engine's fixed models (RBM, Ising, Potts, …) keep their tensors as buffers; PCD needs
    them as parameters. Integer buffers (e.g. index offsets) stay buffers.
    """
    for module in model.modules():
        for name, tensor in list(module._buffers.items()):
            if tensor is not None and tensor.is_floating_point():
                del module._buffers[name]
                module.register_parameter(name, nn.Parameter(tensor))
    return model


def build_energy(spec: EnergySpec, base: IndependentSites, seed: int) -> EnergyModel:
    """A freshly initialised energy for ``spec``; weights drawn from ``seed`` (not the
    global RNG, whose state is left as it was)."""
    if base.n_sites != spec.n_sites or base.n_states != spec.n_states:
        raise InputError(f"the base distribution has {base.n_sites} sites × {base.n_states} "
                         f"states, the energy {spec.n_sites} × {spec.n_states}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if spec.energy == "rbm":
            weight = 0.01 * torch.randn(spec.hidden, spec.n_sites)
            visible = (base.table[:, 1] - base.table[:, 0] if spec.base
                       else torch.zeros(spec.n_sites))
            return make_trainable(RBMEnergy(weight, visible.clone(), torch.zeros(spec.hidden)))
        one_hot = spec.n_states if spec.kind == "categorical" else 1
        if spec.energy == "mlp":
            net: nn.Module = MLPNet(spec.n_sites * one_hot, spec.hidden, spec.depth)
        else:
            net = ResNetNet(spec.image_shape, one_hot, spec.hidden, spec.depth)
    return DeepEnergy(net, spec.kind, spec.n_sites, spec.n_states,
                      IndependentSites(base.table, normalise=False) if spec.base else None)
