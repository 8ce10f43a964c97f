"""The settings of the fits (``PlmSettings``, ``PcdSettings``, ``FitOptions``) and the checks
of their numbers, run once when they are made. No torch here: the command line builds its
options and ``--help`` from these without loading it.

Each check returns the value as a plain Python ``int`` or ``float``: a numpy scalar (``np.int64``
from an array, ``np.float32``) is accepted and converted, so that it reaches the model file's
JSON meta as a number instead of failing there after the whole fit. A wrong type, a NaN or a
value out of range is a ``TypeError`` / ``ValueError`` naming the setting.
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import asdict, dataclass, field

MAX_SEED = 2 ** 63 - 1  # what every command takes and records (torch takes any 64-bit seed)


def integer(name: str, value, least: int | None = None, most: int | None = None) -> int:
    """``value`` as an ``int`` in [least, most]; floats (even 3.0) and booleans are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = operator.index(value)
    if (least is not None and value < least) or (most is not None and value > most):
        bounds = (f"in {least}..{most}" if least is not None and most is not None
                  else f">= {least}" if least is not None else f"<= {most}")
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return value


def real(name: str, value, least: float | None = None, most: float | None = None,
         above: float | None = None, below: float | None = None) -> float:
    """``value`` as a finite ``float`` with least <= value <= most, above < value < below."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    for failed, bound in ((least is not None and value < least, f">= {least}"),
                          (most is not None and value > most, f"<= {most}"),
                          (above is not None and value <= above, f"> {above}"),
                          (below is not None and value >= below, f"< {below}")):
        if failed:
            raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def random_seed(value) -> int:
    """A random seed: an integer in 0..MAX_SEED."""
    return integer("seed", value, 0, MAX_SEED)


DEFAULT_THETA = 0.8  # identity threshold of the sequence weights (CCMpred's)
SAMPLERS = ("gwg", "gibbs")
OPTIMIZERS = ("sgd", "adam")
FIT_METHODS = ("plm", "gwg", "gibbs")
PCD_INITS = ("plm", "independent")
DEFAULT_CHECKPOINT_INTERVAL = 300.0  # seconds


@dataclass
class PlmSettings:
    """Hyperparameters; λ_J is given per (L − 1), as CCMpred's ``-r`` factor."""

    lambda_h: float = 0.01
    lambda_j: float = 0.2
    max_iterations: int = 200
    # Relative decrease over 5 iterations that ends the fit. Tighter (0.001, 0.0001) moved
    # single contacts either way on the dev families, no systematic gain (benchmarks/README.md).
    tolerance: float = 0.005
    history_size: int = 5

    def __post_init__(self):
        self.lambda_h = real("lambda_h", self.lambda_h, least=0)
        self.lambda_j = real("lambda_j", self.lambda_j, least=0)
        self.max_iterations = integer("max_iterations", self.max_iterations, least=1)
        self.tolerance = real("tolerance", self.tolerance, least=0)
        self.history_size = integer("history_size", self.history_size, least=1)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class PcdSettings:
    """Hyperparameters of a PCD fit (:mod:`potts_gwg.fit.pcd`, whose docstring explains the
    defaults); λ_J is per (L − 1) as for PLM."""

    sampler: str = "gwg"
    n_chains: int = 1024
    steps: int | None = None       # sampler steps per update; None: default_steps(L)
    optimizer: str = "sgd"
    learning_rate: float = 0.05
    lambda_h: float = 0.01
    lambda_j: float = 0.02           # not PLM's 0.2: see potts_gwg.fit.pcd
    lambda_group: float = 0.0
    max_iterations: int = 2000      # in all, counting a continued state's earlier ones
    max_time: float | None = None  # seconds of fitting, counted across resumes
    target_pearson: float | None = 0.95
    check_every: int = 10          # iterations between Pearson diagnostics; the chains'
                                   # statistics are averaged over those iterations

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name, least in (("n_chains", 2), ("max_iterations", 1), ("check_every", 1)):
            setattr(self, name, integer(name, getattr(self, name), least=least))
        if self.steps is not None:
            self.steps = integer("steps", self.steps, least=1)
        self.learning_rate = real("learning_rate", self.learning_rate, above=0)
        for name in ("lambda_h", "lambda_j", "lambda_group"):
            setattr(self, name, real(name, getattr(self, name), least=0))
        if self.max_time is not None:
            self.max_time = real("max_time", self.max_time, least=0)
        if self.target_pearson is not None:
            self.target_pearson = real("target_pearson", self.target_pearson, least=-1, most=1)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class FitOptions:
    """Everything ``fit`` needs besides the alignment path; recorded in the model's meta."""

    method: str = "plm"
    device: str = "auto"
    seed: int = 0
    format: str | None = None
    query: str | None = None
    query_index: int | None = None
    query_file: str | None = None
    theta: float = DEFAULT_THETA
    plm: PlmSettings = field(default_factory=PlmSettings)
    max_memory: int | None = None
    pcd: PcdSettings = field(default_factory=PcdSettings)  # gwg/gibbs; sampler = method
    init: str = "plm"                  # gwg/gibbs start: the PLM fit, or independent sites
    checkpoint_interval: float | None = DEFAULT_CHECKPOINT_INTERVAL
    resume: bool = False
    progress: bool | None = False      # bars while reading and weighting (None: on a terminal)

    def __post_init__(self):
        # Checked here, not after the fit when the meta is written (numpy scalars converted).
        self.seed = random_seed(self.seed)
        self.theta = real("theta", self.theta, most=1, above=0)
        if self.query_index is not None:
            self.query_index = integer("query_index (1-based)", self.query_index, least=1)
        if self.max_memory is not None:
            self.max_memory = integer("max_memory (bytes)", self.max_memory, least=0)
        if self.checkpoint_interval is not None:
            self.checkpoint_interval = real("checkpoint_interval (seconds)",
                                            self.checkpoint_interval, least=0)
