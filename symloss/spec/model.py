"""The immutable, validated form of a spec file."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # runtime needs no SymPy: a catalog kernel loads without it
    import sympy as sp

ROLES = ("target", "prediction")
# How the checker samples an input, and what values it may take.
DOMAINS = ("real", "positive", "unit", "unit_closed", "binary", "sign", "simplex")
KINDS = ("elementwise", "row")
# Row losses: how an input is laid out.  "vector": one value per row and class
# (N, K); "scalar": one value per row (N,); "class": one value per class, shared
# by every row (K,), an optional keyword argument.  Elementwise inputs: "element".
SHAPES = ("vector", "scalar", "class")


@dataclass(frozen=True)
class Input:
    name: str
    role: str
    domain: str = "real"
    shape: str = "element"  # "element" (elementwise kind) or one of SHAPES (row kind)
    indices: bool = False  # a row target that may also be given as integer class indices (N,)
    default: float | None = None  # class inputs: the value of every entry when omitted

    @property
    def differentiable(self) -> bool:
        return self.role == "prediction"


@dataclass(frozen=True)
class Param:
    name: str
    default: float
    positive: bool = False
    nonnegative: bool = False
    min: float | None = None
    max: float | None = None
    differentiable: bool = False  # kernels also give d loss / d param (adaptive fitting)

    def violation(self, value: float) -> str | None:
        """A message if ``value`` breaks a constraint, else None."""
        if self.positive and not value > 0:
            return f"must be > 0, got {value}"
        if self.nonnegative and not value >= 0:
            return f"must be >= 0, got {value}"
        if self.min is not None and not value >= self.min:
            return f"must be >= {self.min}, got {value}"
        if self.max is not None and not value <= self.max:
            return f"must be <= {self.max}, got {value}"
        return None


@dataclass(frozen=True)
class RowInfo:
    """What a row spec adds: the class index, the class-count symbol, per-class lets."""

    index: str = "k"  # the summation index, written z[k] and Sum(..., k)
    size: str = "K"  # the number of classes, usable in expressions
    mean_weight: str | None = None  # class input weighing rows given as indices in the mean
    symbols: dict = field(default_factory=dict, compare=False)  # index/size/IndexedBase objects


class Roles:
    """Views of ``inputs`` and ``params`` that the full spec and its header share."""

    inputs: tuple[Input, ...]
    params: tuple[Param, ...]

    @property
    def targets(self) -> tuple[Input, ...]:
        return tuple(i for i in self.inputs if i.role == "target")

    @property
    def differentiable_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.differentiable)

    @property
    def predictions(self) -> tuple[Input, ...]:
        return tuple(i for i in self.inputs if i.differentiable)


@dataclass(frozen=True)
class LossSpec(Roles):
    name: str
    title: str
    kind: str
    inputs: tuple[Input, ...]
    params: tuple[Param, ...]
    loss_text: str
    loss: sp.Basic  # parsed, with [let] definitions substituted
    symbols: dict[str, sp.Symbol] = field(compare=False)
    description: str = ""
    references: tuple[str, ...] = ()
    source: str = "<expr>"
    row: RowInfo | None = None  # set for kind = "row"
    # param name -> a closed form of d loss / d param that the spec supplies for
    # stability; the checks verify it against the derivative of ``loss``
    param_derivatives: dict[str, sp.Basic] = field(default_factory=dict)
