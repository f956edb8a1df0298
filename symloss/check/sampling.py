"""Random inputs for each input domain, reproducible from a seed."""
from __future__ import annotations

import numpy as np

from ..spec.model import LossSpec


def sample(domain: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if domain == "real":
        return rng.normal(0.0, 2.0, n)
    if domain == "positive":
        return np.exp(rng.normal(0.0, 1.0, n))
    if domain == "unit":
        return rng.uniform(0.02, 0.98, n)
    if domain == "unit_closed":
        return rng.uniform(0.0, 1.0, n)
    if domain == "binary":
        return rng.integers(0, 2, n).astype(np.float64)
    if domain == "sign":
        return rng.choice([-1.0, 1.0], n)
    raise ValueError(f"unknown domain {domain!r}")


def sample_inputs(spec: LossSpec, n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [sample(i.domain, n, rng) for i in spec.inputs]
