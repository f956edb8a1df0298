"""Raw margins for losses whose prediction lives in a constrained domain.

Boosters add trees on an unbounded raw margin z.  A loss on logits or
log-rates (bce_logits, poisson_nll, gamma_nll, cross_entropy) takes z as it
is.  A loss on a probability p (``domain = "unit"``) or a positive mean
(``domain = "positive"``) is composed symbolically with its link,
p = sigmoid(z) or mu = exp(z), and re-derived, so its gradient and Hessian are
in z and go through the same stability rewrites (1 - p is written
sigmoid(-z) and log(sigmoid(u)) is written -softplus(-u) first, so no
derivative overflows or takes log(0)).  The
composed loss must then be finite at every margin in [-700, 700]; if it is
not, or the prediction is a distribution (``simplex``), the loss is refused
with a message naming the loss to use.
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from ..errors import InputError

LINKS = {"unit": "sigmoid", "positive": "exp"}
# what to use instead, when a composition is refused
ALTERNATIVE = {"unit": "bce_logits", "positive": "poisson_nll or gamma_nll", "simplex": "cross_entropy"}
PROBE_TARGETS = {
    "real": (-2.0, 0.0, 3.0), "positive": (0.5, 4.0), "unit": (0.3,), "unit_closed": (0.0, 0.4, 1.0),
    "binary": (0.0, 1.0), "sign": (-1.0, 1.0),
}


def needs_link(loss) -> str | None:
    """The prediction's constrained domain, or None when the prediction is already a margin."""
    dom = loss.spec.predictions[0].domain
    return None if dom == "real" else dom


def compose(loss):
    """The loss in the raw margin z: p = sigmoid(z) or mu = exp(z) substituted and re-derived."""
    import sympy as sp

    from ..derive import primitives as P
    from ..runtime import Loss
    from ..spec.header import full_spec
    from ..spec.model import Input

    spec = full_spec(loss.spec)  # catalog losses load a header; composing needs the expression
    pred = spec.predictions[0]
    dom = pred.domain
    if dom not in LINKS:
        raise InputError(f"{loss.name}: its prediction '{pred.name}' lives on the {dom} domain, which no "
                         f"scalar link maps to a raw margin; use {ALTERNATIVE.get(dom, 'a loss on logits')}")
    taken = {i.name for i in spec.inputs} | {p.name for p in spec.params}
    zname = next(n for n in ("z", "margin", "raw_margin") if n not in taken)
    z = sp.Symbol(zname, real=True)
    p = spec.symbols[pred.name]
    if dom == "unit":
        expr = spec.loss.subs(1 - p, P.sigmoid(-z)).subs(p, P.sigmoid(z))
        # log(sigmoid(u)) = -softplus(-u): derivatives without exp overflow at large |z|
        expr = expr.replace(lambda e: isinstance(e, sp.log) and isinstance(e.args[0], P.sigmoid),
                            lambda e: -P.softplus(-e.args[0].args[0]))
    else:
        expr = spec.loss.subs(p, sp.exp(z))
    inputs = tuple(Input(zname, "prediction") if i.name == pred.name else i for i in spec.inputs)
    symbols = {k: v for k, v in spec.symbols.items() if k != pred.name}
    symbols[zname] = z
    composed = dataclasses.replace(
        spec, name=f"{spec.name}_{LINKS[dom]}", title=f"{spec.title}, {pred.name} = {LINKS[dom]}({zname})",
        inputs=inputs, loss=expr, symbols=symbols, loss_text=sp.sstr(expr), source=f"<{spec.source} with link>",
    )
    out = Loss.from_spec(composed)
    _check_stable(out, loss, dom)
    return out


def _check_stable(composed, original, dom: str) -> None:
    z = np.concatenate([-np.logspace(-3, np.log10(700), 40), [0.0], np.logspace(-3, np.log10(700), 40)])
    for t in itertools.product(*[PROBE_TARGETS.get(t.domain, (0.0,)) for t in composed.spec.targets]):
        ys = [np.full_like(z, v) for v in t]
        v = composed.value(*ys, z, reduction="none")
        g, h = composed.grad_hessian(*ys, z)
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(g)) and np.all(np.isfinite(h))):
            raise InputError(
                f"{original.name}: composed with its {LINKS[dom]} link it is not finite at every raw margin "
                f"(targets {t}); use {ALTERNATIVE[dom]}, or write the loss on the raw margin")

