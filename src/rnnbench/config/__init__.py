"""One run's settings as a frozen dataclass (no torch import: Snakemake imports this).

The field defaults here are the same as those in ``config/schema/config.schema.yaml``;
a test checks that the two agree.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import dataclass, field
from typing import Any

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru", "min_gru", "min_lstm")
GRAD_MODES = ("normalize", "clip", "none")
REDUCTIONS = ("mean", "sum_time")
INITS = ("seed", "uniform")
DEVICES = ("auto", "cpu", "cuda")
LOSS_IMPLS = ("auto", "fused", "naive")
PRECISIONS = ("fp32", "bf16")
SCHEDULES = ("fixed", "plateau")
BUDGET_KINDS = ("recurrent", "total")
# The plateau schedule's keys and the values a null takes under `schedule: plateau`: the lr
# divided by 4 at the first epoch whose validation perplexity is no better than the best so
# far (pytorch/examples word_language_model's rule), and the run stopped at the plateau after
# the third decay (rnnbench.training.schedule).
PLATEAU_DEFAULTS = {"plateau_factor": 0.25, "plateau_patience": 0, "plateau_threshold": 0.0,
                    "max_decays": 3}


class ConfigError(ValueError):
    """The experiment config cannot run: a key against config/schema/config.schema.yaml, or a
    grid, budget or tuning that does not work (the message names the value and the fix)."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run's numbers."""

    cell: str
    hidden: int
    layers: int = 1
    seed: int = 1
    # --- recipe (the training keys of config.yaml's `recipes:`) ---
    epochs: int = 10
    lr: float = 1.0
    decay_start: int = 4
    decay_factor: float = 1.0
    batch_size: int = 20
    bptt: int = 35
    grad: str = "normalize"
    clip_norm: float = 5.0
    normalize_eps: float = 1e-4
    loss_reduction: str = "mean"
    init: str = "seed"
    init_scale: float = 0.1
    dropout: float = 0.0
    embedding_size: int | None = None
    max_batches: int | None = None
    max_eval_batches: int | None = None
    loss_impl: str = "auto"
    # Initialisation options, off (None) by default so every published recipe keeps its
    # numbers and an existing run's flags (and so its Snakemake params) do not change.
    forget_bias: float | None = None  # lstm: effective forget-gate bias (Jozefowicz+ 2015)
    irnn: float | None = None  # rnn_relu: W_hh = irnn * I, recurrent biases 0 (Le+ 2015)
    # Arithmetic of the products: None is fp32 (``fp32`` is stored as None, so that spelling it
    # out names the same run); ``bf16`` autocasts them (rnnbench.model.precision).
    precision: str | None = None
    # The lr schedule: None is the fixed one of lr, decay_start and decay_factor (``fixed`` is
    # stored as None, as every published recipe has it); ``plateau`` decays the lr when the
    # validation perplexity stops improving and stops after ``max_decays`` decays, with
    # ``epochs`` the maximum (rnnbench.training.schedule). Its keys are None unless it is plateau.
    schedule: str | None = None
    plateau_factor: float | None = None  # lr multiplier at a decay
    plateau_patience: int | None = None  # epochs without improvement before a decay
    plateau_threshold: float | None = None  # relative improvement that counts as one
    max_decays: int | None = None  # decays before the next plateau ends the run
    # --- grid, not recipe: the parameter budget `hidden` was solved for (or None), and
    # whose parameters it counts: None is recurrent (stored so), or ``total`` ---
    budget: int | None = None
    budget_kind: str | None = None
    # --- machine, not recipe ---
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_choice("cell", self.cell, CELLS)
        check_choice("grad", self.grad, GRAD_MODES)
        check_choice("loss_reduction", self.loss_reduction, REDUCTIONS)
        check_choice("init", self.init, INITS)
        check_choice("device", self.device, DEVICES)
        check_choice("loss_impl", self.loss_impl, LOSS_IMPLS)
        if self.precision is not None:
            check_choice("precision", self.precision, PRECISIONS)
            if self.precision == "fp32":  # the default, spelled out: the same run
                object.__setattr__(self, "precision", None)
        self._check_budget()
        for name in INT_FIELDS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not _is_index(value)):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        for name in FLOAT_FIELDS:
            # NaN passes every bound below (each comparison is False) and trains to nonsense.
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)!r}")
        for name in ("hidden", "layers", "epochs", "batch_size", "bptt"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.lr <= 0 or self.decay_factor <= 0:
            raise ValueError(f"lr and decay_factor must be > 0, got {self.lr}, {self.decay_factor}")
        if self.forget_bias is not None and self.cell != "lstm":
            raise ValueError(f"forget_bias is an LSTM option, but the cell is {self.cell}: set "
                             "it under `cell_overrides: {lstm: {forget_bias: ...}}`")
        if self.irnn is not None and self.cell != "rnn_relu":
            raise ValueError(f"irnn is an initialisation of rnn_relu, but the cell is "
                             f"{self.cell}: set it under `cell_overrides: {{rnn_relu: "
                             "{irnn: 1.0}}`")
        self._check_schedule()

    def _check_budget(self) -> None:
        """``recurrent`` (the default) is stored as None; a kind needs a budget."""
        if self.budget_kind is None:
            return
        check_choice("budget_kind", self.budget_kind, BUDGET_KINDS)
        if self.budget_kind == "recurrent":
            object.__setattr__(self, "budget_kind", None)
        elif self.budget is None:
            raise ValueError("budget_kind total names what a budget counts, but budget is "
                             "None: give the budget too (the grid does, from `budgets:`)")

    def _check_schedule(self) -> None:
        """``fixed`` is stored as None; plateau keys only with plateau, nulls filled in."""
        if self.schedule is not None:
            check_choice("schedule", self.schedule, SCHEDULES)
            if self.schedule == "fixed":
                object.__setattr__(self, "schedule", None)
        given = [k for k in PLATEAU_DEFAULTS if getattr(self, k) is not None]
        if self.schedule is None:
            if given:
                raise ValueError(
                    f"{', '.join(given)} set, but the schedule is fixed (lr, decay_start, "
                    "decay_factor): add `schedule: plateau` to the recipe, or remove them")
            return
        if self.decay_factor != 1.0:
            raise ValueError(
                f"decay_factor {self.decay_factor} belongs to the fixed schedule, but the "
                "schedule is plateau, which multiplies the lr by plateau_factor when the "
                "validation perplexity stops improving: remove decay_factor (or set it to 1)")
        for key, default in PLATEAU_DEFAULTS.items():
            if getattr(self, key) is None:  # null under plateau: the default, the same run
                object.__setattr__(self, key, default)
        if not 0 < self.plateau_factor < 1:
            raise ValueError(f"plateau_factor must be in (0, 1), got {self.plateau_factor}")
        if not 0 <= self.plateau_threshold < 1:
            raise ValueError(f"plateau_threshold must be in [0, 1), got {self.plateau_threshold}")
        for key in ("plateau_patience", "max_decays"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)!r}")

    @property
    def precision_name(self) -> str:
        """``fp32`` or ``bf16``: the precision this run computes in (None is fp32)."""
        return self.precision or "fp32"

    def lr_at(self, epoch: int) -> float:
        """The fixed schedule's learning rate of 0-based ``epoch``: lr for the first
        ``decay_start`` epochs, then divided by ``decay_factor`` once more at each later one."""
        return self.lr / self.decay_factor ** max(0, epoch - self.decay_start + 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (without ``extra``)."""
        d = dataclasses.asdict(self)
        d.pop("extra")
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from a dict, rejecting unknown keys with the list of known ones."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown training key(s) {', '.join(unknown)}: known keys are "
                f"{', '.join(sorted(names))}"
            )
        return cls(**data)


TRAINING_KEYS = tuple(
    f.name for f in dataclasses.fields(RunConfig)
    if f.name not in {"cell", "hidden", "layers", "seed", "budget", "budget_kind", "device",
                      "extra"}
)


INT_FIELDS = ("hidden", "layers", "seed", "epochs", "decay_start", "batch_size", "bptt",
              "embedding_size", "max_batches", "max_eval_batches", "budget", "plateau_patience",
              "max_decays")
FLOAT_FIELDS = ("lr", "decay_factor", "clip_norm", "normalize_eps", "init_scale", "dropout",
                "forget_bias", "irnn", "plateau_factor", "plateau_threshold")


def _is_index(value: Any) -> bool:
    """True for int-like values (int, numpy integers), False for floats such as 2.0."""
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raise a ValueError naming ``key``, the bad value and the allowed ones."""
    if value not in choices:
        raise ValueError(f"invalid {key} {value!r}: choose one of {', '.join(choices)}")
