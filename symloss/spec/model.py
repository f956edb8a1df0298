"""The immutable, validated form of a spec file."""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

ROLES = ("target", "prediction")
# How the checker samples an input, and what values it may take.
DOMAINS = ("real", "positive", "unit", "unit_closed", "binary", "sign")
KINDS = ("elementwise",)


@dataclass(frozen=True)
class Input:
    name: str
    role: str
    domain: str = "real"

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
class LossSpec:
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

    @property
    def targets(self) -> tuple[Input, ...]:
        return tuple(i for i in self.inputs if i.role == "target")

    @property
    def predictions(self) -> tuple[Input, ...]:
        return tuple(i for i in self.inputs if i.differentiable)
