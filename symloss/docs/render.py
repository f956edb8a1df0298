"""specs/ -> generated/docs/: a Markdown and an HTML page per loss, an index, a selection guide
and a comparison page, with PNG plots drawn from the generated kernels.

Everything is computed here; the templates in ``templates/docs`` only loop
over the prepared data.  Output is deterministic: the same specs give the
same bytes, PNGs included (fixed rcParams, no software/version metadata).
"""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy as sp
from markupsafe import Markup, escape

from .. import catalog
from ..derive import Derivation
from ..derive.rewrites import describe
from ..render.environment import docs_environment
from ..render.write import HEADER_MARK, write_tree
from ..spec import LossSpec, load_spec
from . import mathml as M
from .properties import Kernels, Properties, family, parameter_variations, properties
from .row_properties import RowProperties, row_properties
from .split import split

OWNED = (".md", ".html", ".png")
FAMILIES = ("regression", "classification", "probabilistic", "metric learning", "other")
FAMILY_INTRO = {
    "regression": "A real target and a real prediction; the loss is a function of the residual.",
    "classification": "Labels (0/1, ±1 or probabilities) against logits, margins or probabilities.",
    "probabilistic": "Negative log-likelihoods: counts, positive targets, or a predicted mean and variance.",
    "metric learning": "Losses over embeddings: several predictions compared with each other.",
    "other": "Losses that fit none of the groups above.",
}
# Example arrays for the usage snippet, by domain: targets, then predictions.
EXAMPLE_TARGET = {
    "real": "[0.5, -1.0, 2.0]", "positive": "[0.5, 1.0, 3.0]", "unit": "[0.2, 0.6, 0.9]",
    "unit_closed": "[0.0, 1.0, 1.0]", "binary": "[0.0, 1.0, 1.0]", "sign": "[-1.0, 1.0, 1.0]",
}
EXAMPLE_PREDICTION = {
    "real": "[0.0, -0.5, 4.0]", "positive": "[0.8, 1.5, 2.0]", "unit": "[0.1, 0.7, 0.8]",
    "unit_closed": "[0.1, 0.7, 0.8]",
}
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
          "#7f7f7f", "#bcbd22"]
STYLES = ["-", "--", "-.", ":"]
RC = {
    "figure.dpi": 100, "savefig.dpi": 100, "font.family": "DejaVu Sans", "font.size": 9,
    "axes.titlesize": 10, "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 8,
    "legend.frameon": False, "svg.hashsalt": "symloss", "path.simplify": False,
    "axes.spines.top": False, "axes.spines.right": False,
}


def _mark(what: str) -> str:
    return f"{HEADER_MARK} from {what}: do not edit; run `symloss docs`."


# ---------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------
def _figure(width: float, height: float, ncols: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, list(np.atleast_1d(axes))


def _png(draw: Callable[[], "object"], comment: str) -> bytes:
    import matplotlib

    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(RC)
        fig = draw()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None, "Comment": comment})
    return buf.getvalue()


def _limits(ax, curves: list[np.ndarray]) -> None:
    """Clip the y-range when a few huge values would flatten everything else."""
    vals = np.concatenate([c[np.isfinite(c)] for c in curves]) if curves else np.array([])
    if vals.size == 0:
        return
    lo, hi = float(vals.min()), float(vals.max())
    qlo, qhi = (float(q) for q in np.percentile(vals, [2, 95]))
    if hi - lo > 6 * max(qhi - qlo, 1e-12):
        lo, hi = min(qlo, 0.0), qhi
    span = max(hi - lo, 1e-6)
    ax.set_ylim(lo - 0.06 * span, hi + 0.06 * span)


def _param_label(spec: LossSpec, params: dict, varied: str | None) -> str:
    if varied is None:
        return "default"
    return f"${sp.latex(spec.symbols[varied])} = {params[varied]:g}$"


def _curves(spec: LossSpec, props: Properties, K: Kernels):
    """x, and per parameter setting (label, loss, gradient, Hessian), the default first."""
    axis = props.axis
    x = np.linspace(axis.lo, axis.hi, 601)
    values = {**dict(axis.fixed), axis.prediction: x}
    j = [i.name for i in spec.predictions].index(axis.prediction)
    out, varied = [], None
    settings = parameter_variations(spec)
    base = K.value(values, settings[0])
    if any(not np.array_equal(K.value(values, s), base, equal_nan=True) for s in settings[1:]):
        varied = spec.params[0].name
    else:
        settings = settings[:1]
    for s in settings:
        out.append((_param_label(spec, s, varied), K.value(values, s), K.grad(values, j, s), K.hess(values, j, s)))
    default = settings[0]
    rest = sorted(out[1:], key=lambda c: c[0])
    return x, [out[0]] + rest, default


def loss_plot(spec: LossSpec, props: Properties, K: Kernels) -> bytes:
    x, curves, _ = _curves(spec, props, K)
    pred = sp.latex(spec.symbols[props.axis.prediction])

    def draw():
        fig, axes = _figure(10.5, 3.1, 3)
        titles = ["loss $L$", f"gradient $\\partial L / \\partial {pred}$",
                  f"Hessian $\\partial^2 L / \\partial {pred}^2$"]
        for k, (ax, title) in enumerate(zip(axes, titles)):
            ys = []
            for n, (label, *vals) in enumerate(curves):
                ax.plot(x, vals[k], color=COLORS[n % len(COLORS)], lw=2.0 if n == 0 else 1.3,
                        ls=STYLES[0] if n == 0 else STYLES[1 + (n - 1) % 3], label=label)
                ys.append(vals[k])
            _limits(ax, ys)
            ax.set_title(title)
            ax.set_xlabel(props.axis.label)
            ax.axhline(0.0, color="black", lw=0.6)
        if len(curves) > 1:
            axes[0].legend(loc="best")
        fig.subplots_adjust(left=0.05, right=0.99, bottom=0.16, top=0.9, wspace=0.22)
        return fig

    return _png(draw, _mark(f"specs/{spec.name}.toml"))


@dataclass
class _Entry:
    spec: LossSpec
    props: Properties | None
    derivation: Derivation | None
    kernels: Kernels | None
    row_props: RowProperties | None = None


def _margin_curve(e: _Entry, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Loss and d/dm against the margin m for the positive class."""
    axis, K = e.props.axis, e.kernels
    j = [i.name for i in e.spec.predictions].index(axis.prediction)
    fixed = dict(axis.fixed)
    if axis.kind == "probability":
        p = 1.0 / (1.0 + np.exp(-m))
        vals = {**fixed, axis.prediction: p}
        return K.value(vals), K.grad(vals, j) * p * (1.0 - p)
    vals = {**fixed, axis.prediction: m}
    return K.value(vals), K.grad(vals, j)


CLASSIC = ("mse", "mae", "huber")
KIND_STYLE = {"margin": "-", "logit": "--", "probability": "-."}


def _regression_figure(group: list[_Entry], comment: str) -> bytes:
    r = np.linspace(-4.0, 4.0, 801)

    def draw():
        fig, axes = _figure(10.5, 3.6, 2)
        for n, e in enumerate(group):
            vals = {e.spec.targets[0].name: 0.0, e.props.axis.prediction: r}
            style = dict(color=COLORS[n % len(COLORS)], ls=STYLES[n // len(COLORS) % 4], lw=1.6, label=e.spec.name)
            axes[0].plot(r, e.kernels.value(vals), **style)
            axes[1].plot(r, e.kernels.grad(vals), **style)
        axes[0].set_ylim(-0.2, 5.0)
        axes[1].set_ylim(-3.0, 3.0)
        axes[0].set_title("loss at the default parameters")
        axes[1].set_title("gradient: the pull of one residual")
        for ax in axes:
            ax.set_xlabel("residual $\\hat{y} - y$")
            ax.axhline(0.0, color="black", lw=0.6)
        axes[1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
        fig.subplots_adjust(left=0.05, right=0.8, bottom=0.14, top=0.91, wspace=0.2)
        return fig

    return _png(draw, comment)


def _classification_figure(group: list[_Entry], comment: str) -> bytes:
    m = np.linspace(-3.0, 3.0, 601)

    def draw():
        fig, axes = _figure(10.5, 3.6, 2)
        axes[0].plot(m, np.where(m < 0, 1.0, 0.0), color="black", lw=1.0, ls=":", label="0-1 loss")
        for n, e in enumerate(group):
            value, grad = _margin_curve(e, m)
            how = {"probability": " (p = σ(m))", "logit": " (z = m)"}.get(e.props.axis.kind, "")
            style = dict(color=COLORS[n % len(COLORS)], ls=KIND_STYLE.get(e.props.axis.kind, "-"), lw=1.6,
                         label=e.spec.name + how)
            axes[0].plot(m, value, **style)
            axes[1].plot(m, grad, **style)
        axes[0].set_ylim(-0.2, 5.0)
        axes[1].set_ylim(-3.0, 0.5)
        axes[0].set_title("loss for the positive class")
        axes[1].set_title("gradient with respect to the margin")
        for ax in axes:
            ax.set_xlabel("margin $m$ ($m > 0$: correct side)")
            ax.axhline(0.0, color="black", lw=0.6)
        axes[1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
        fig.subplots_adjust(left=0.05, right=0.8, bottom=0.14, top=0.91, wspace=0.2)
        return fig

    return _png(draw, comment)


def comparison_plots(entries: list[_Entry]) -> list[dict]:
    """Figures of several losses on shared axes, for whichever losses the catalog has."""
    comment = _mark("specs/")
    figures = []
    reg = [e for e in entries if e.props and e.props.family == "regression" and e.props.residual_based]
    classic = [e for name in CLASSIC for e in reg if e.spec.name == name]
    if len(classic) >= 2:
        figures.append({"file": "compare_classic.png", "png": _regression_figure(classic, comment),
                        "names": [e.spec.name for e in classic],
                        "caption": "The classic picture: " + ", ".join(e.spec.name for e in classic)
                                   + " against the residual"})
    if len(reg) > len(classic):
        figures.append({"file": "compare_regression.png", "png": _regression_figure(reg, comment),
                        "names": [e.spec.name for e in reg],
                        "caption": "Every regression loss against the residual (target 0, default parameters)"})
    cls = [e for e in entries if e.props and e.props.family == "classification" and len(e.spec.predictions) == 1]
    if len(cls) >= 2:
        figures.append({"file": "compare_classification.png", "png": _classification_figure(cls, comment),
                        "names": [e.spec.name for e in cls],
                        "caption": "Classification losses against the margin for the positive class "
                                   "(logit losses at z = m, probability losses at p = σ(m)), "
                                   "with the 0-1 loss for reference"})
    return figures


# ---------------------------------------------------------------------------
# page data (everything the templates print, already formatted)
# ---------------------------------------------------------------------------
def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    for k in range(len(text) - 1):
        if text[k] == "." and text[k + 1] == " " and not text[max(0, k - 3):k].endswith(("e.g", "i.e", "vs")):
            return text[: k + 1]
    return text


def _constraint(p) -> str:
    parts = []
    if p.positive:
        parts.append("> 0")
    if p.nonnegative:
        parts.append("≥ 0")
    if p.min is not None and p.max is not None:
        parts.append(f"in [{p.min:g}, {p.max:g}]")
    elif p.min is not None:
        parts.append(f"≥ {p.min:g}")
    elif p.max is not None:
        parts.append(f"≤ {p.max:g}")
    return ", ".join(parts) or "any real"


ARGMAX = sp.Symbol("[j = argmax]")  # the indicator of class j being the row's argmax


def _row_gradients(d) -> dict[str, sp.Basic]:
    """Per-class gradients of a row loss as expressions in z[j], sums over k written out."""
    from ..spec.rowexpr import RowMax, RowSum

    G, calc = d.naive_calculus
    spec, k = d.spec, d.index
    j = sp.Symbol("j", integer=True)
    bases = spec.row.symbols["bases"]
    to_k = {spec.symbols[n]: b[k] for n, b in bases.items()}
    to_j = {spec.symbols[n]: b[j] for n, b in bases.items()}
    back = {}
    for s in calc.reductions:
        red = calc.reductions[s]
        body = red.expr.xreplace(back).xreplace(to_k)
        back[s] = RowSum(body, k) if red.kind == "sum" else RowMax(body, k)
    for sel in calc.sel.values():
        back[sel] = ARGMAX
    return {x.name: calc.total(G, x, explicit=False).xreplace(to_j).xreplace(back) for x in d.preds}


def _block(*parts: str) -> Markup:
    """A displayed equation, marked as HTML: MathML that mathml.py built through a DOM."""
    return Markup(M.block(*parts))


def _formula(label_latex: str, label_mathml: str, latex: str, expr: sp.Basic, index=None) -> dict:
    """One displayed equation; a long one as a short form plus "where t_i = ..." lines (split.py)."""
    main, parts = split(expr, index=index)
    if not parts:
        return {"label_latex": label_latex, "latex": latex, "mathml": _block(label_mathml, M.EQ, M.inline(expr)),
                "parts": []}

    def tex(e):
        return sp.latex(e.xreplace({ARGMAX: sp.Symbol(r"[j = \arg\max]")}))

    return {"label_latex": label_latex, "latex": tex(main), "mathml": _block(label_mathml, M.EQ, M.inline(main)),
            "parts": [{"latex": f"{sp.latex(s)} = {tex(e)}", "mathml": _block(M.inline(s), M.EQ, M.inline(e))}
                      for s, e in parts]}


def _formulas(spec: LossSpec, d) -> list[dict]:
    if spec.kind != "elementwise":
        k = spec.row.symbols["index"]
        out = [_formula("L", "<mi>L</mi>", d.latex["loss"], spec.loss, k)]
        for name, g in _row_gradients(d).items():
            key = f"grad_{name}"
            label = f"<mfrac><mrow><mo>∂</mo><mi>L</mi></mrow><mrow><mo>∂</mo><msub>{M.symbol(name)}<mi>j</mi></msub></mrow></mfrac>"
            out.append(_formula(d.latex_labels[key], label, d.latex[key], g, k))
        return out
    names = [i.name for i in spec.predictions]
    out = [_formula(d.latex_labels["loss"], "<mi>L</mi>", d.latex["loss"], spec.loss)]
    for k, n in enumerate(names):
        key = f"grad_{n}"
        out.append(_formula(d.latex_labels[key], M.partial(1, [n]), d.latex[key], d.stable.grads[k]))
    for (i, j), h in d.stable.hessian.items():
        key = f"hessian_{names[i]}_{names[j]}"
        out.append(_formula(d.latex_labels[key], M.partial(2, [names[i], names[j]]), d.latex[key], h))
    for p, e in zip(d.param_wrt, d.stable.params):
        key = f"param_{p.name}"
        out.append(_formula(d.latex_labels[key], M.partial(1, [p.name]), d.latex[key], e))
    return out


def _usage(spec: LossSpec) -> str:
    lines = ["import numpy as np", "import symloss", "", f'loss = symloss.load("{spec.name}")']
    if spec.kind != "elementwise":
        lines.append("print(loss)")
        return "\n".join(lines) + "\n"
    for i in spec.inputs:
        table = EXAMPLE_TARGET if i.role == "target" else EXAMPLE_PREDICTION
        lines.append(f"{i.name} = np.array({table.get(i.domain, EXAMPLE_TARGET[i.domain])})")
    args = ", ".join(i.name for i in spec.inputs)
    kw = "".join(f", {p.name}={p.default!r}" for p in spec.params)
    preds = [i.name for i in spec.predictions]
    wrt = preds[0] if len(preds) == 1 else "(" + ", ".join(preds) + ")"
    grad_name = "grad" if len(preds) == 1 else "grads"
    first = {i.name: (EXAMPLE_TARGET if i.role == "target" else EXAMPLE_PREDICTION).get(
        i.domain, EXAMPLE_TARGET[i.domain]).strip("[]").split(",")[0].strip() for i in spec.inputs}
    scalars = ", ".join([first[i.name] for i in spec.inputs] + [repr(p.default) for p in spec.params])
    lines += [
        f"value = loss.value({args}{kw})  # mean over elements",
        f"{grad_name} = loss.grad({args}{kw})  # d(mean loss) / d{wrt}",
        f"g, h = loss.grad_hessian({args}{kw})  # per element, for Newton steps and gradient boosting",
        "",
        f"# The kernels underneath: generated/{spec.name}.py imports only numpy and numba, so it can be",
        "# vendored as it is.  Scalar kernels take one element, the parameters, then the float type:",
        "kernels = loss.module",
        f"out = kernels.value_and_grad_scalar({scalars}, np.float64)  # (loss, d/d{', d/d'.join(preds)})",
    ]
    return "\n".join(lines) + "\n"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _how(method: str, scope: str | None = None) -> str:
    return method + (f", for {scope}" if scope else "")


def _html_text(text: str) -> str:
    """Plain text escaped for HTML, as str: the rows mix it with MathML and mark the result once.

    (Markup's own + would escape the MathML operand.)"""
    return str(escape(text))


def _property_rows(spec: LossSpec, p: Properties) -> list[dict]:
    """Rows of (property, value, how it was decided) with MathML variants for HTML."""
    preds = ", ".join(i.name for i in spec.predictions)
    kinks_md = "; ".join(f"${k.latex}$ ({k.what_jumps} jumps)" for k in p.kinks) or "none"
    kinks_html = "; ".join(
        ", ".join(M.math_inline(M.inline(w)) for w in k.where) + _html_text(f" ({k.what_jumps} jumps)") for k in p.kinks
    ) or "none"
    zero_md = zero_html = "—"
    if p.hessian_vanishes:
        md, html = [], []
        for name, region, text in p.hessian_zero_where:
            head = f"in {name}: " if name else ""
            if region is not None:
                md.append(head + "where $" + sp.latex(region) + "$")
                html.append(_html_text(head + "where ") + M.math_inline(M.inline(region)))
            else:
                md.append(head + text)
                html.append(_html_text(head + text))
        zero_md, zero_html = "; ".join(md), "; ".join(html)
    growth = "; ".join(f"{g.direction}: {g.rate}" for g in p.growth_by_direction)
    rows = [
        ("Convex in " + preds, _yes(p.convex), p.convex_detail, _how(p.convex_method, p.convex_scope)),
        ("Smoothness", p.smoothness, "", _how(p.smoothness_method, p.smoothness_scope)),
        ("Kinks", None, "", _how(p.smoothness_method, p.smoothness_scope)),
        ("Growth for large residuals", p.growth, growth, "numeric, at the default parameters"),
        ("Bounded gradient", _yes(p.bounded_gradient), p.gradient_detail, "numeric, at the default parameters"),
        ("Hessian = 0 on a set of positive measure", _yes(p.hessian_vanishes), None, p.hessian_method),
    ]
    out = []
    for label, value, detail, how in rows:
        if label == "Kinks":
            out.append({"label": label, "value_md": kinks_md, "value_html": Markup(kinks_html), "detail": "", "how": how})
        elif detail is None:
            out.append({"label": label, "value_md": value + ("; " + zero_md if p.hessian_vanishes else ""),
                        "value_html": Markup(_html_text(value) + ("; " + zero_html if p.hessian_vanishes else "")),
                        "detail": "", "how": how})
        else:
            out.append({"label": label, "value_md": value, "value_html": Markup(_html_text(value)), "detail": detail, "how": how})
    if p.residual_based:
        out.append({"label": "Function of the residual alone", "value_md": "yes", "value_html": "yes",
                    "detail": "symmetric" if p.symmetric else "asymmetric: over- and under-prediction cost differently",
                    "how": "symbolic, checked numerically at several parameter values"})
    return out


def _summary_cells(p: Properties | RowProperties | None) -> dict:
    if p is None:
        return {k: "—" for k in ("family", "convex", "smoothness", "growth", "bounded_gradient", "hessian_zero")}
    return {
        "family": p.family,
        "convex": _yes(p.convex),
        "smoothness": p.smoothness,
        "growth": p.growth,
        "bounded_gradient": _yes(p.bounded_gradient),
        "hessian_zero": _yes(p.hessian_vanishes),
    }


# ---------------------------------------------------------------------------
# the selection guide: pros, cons and "best for", from the properties
# ---------------------------------------------------------------------------
def _smooth_enough(p: Properties) -> bool:
    """C2 or smoother: the Hessian is continuous."""
    return p.smoothness == "C∞" or (p.smoothness[1:].isdigit() and int(p.smoothness[1:]) >= 2)


def _kink_words(p: Properties) -> str:
    return ", ".join(k.text for k in p.kinks)


def advice(spec: LossSpec, p: Properties) -> dict[str, list[str]]:
    pros, cons, best = [], [], []
    if p.convex:
        pros.append("convex: every local minimum is global")
    else:
        cons.append("not convex: the result depends on the starting point")
    if p.smoothness == "C∞":
        pros.append("smooth (C∞): suits L-BFGS and Newton methods")
    elif p.smoothness in ("C1", "C2") or p.smoothness.startswith("C"):
        order = int(p.smoothness[1:]) if p.smoothness[1:].isdigit() else 0
        if order >= 1:
            pros.append(f"{p.smoothness}: continuous gradient" + (" and Hessian" if order >= 2 else ""))
        else:
            cons.append(f"kink at {_kink_words(p)}: only a subgradient there, so step sizes must decay")
    else:
        cons.append("discontinuous: gradients carry no information across the jump")
    rate = p.growth.split()[0]
    if rate in ("quadratic", "polynomial", "exponential", "superlinear"):
        cons.append(f"{p.growth} growth: a few large errors dominate the fit")
    elif rate == "linear":
        pros.append("linear growth: a large error pulls with bounded force")
    elif rate in ("logarithmic", "sublinear"):
        pros.append(f"{p.growth} growth: gross outliers are largely ignored")
    elif rate == "bounded":
        pros.append("bounded: an outlier's influence levels off completely")
    if p.bounded_gradient:
        pros.append("bounded gradient: stable steps")
    else:
        cons.append("unbounded gradient: " + (p.gradient_detail or "large errors give large steps"))
    if p.hessian_vanishes:
        where = "; ".join(t for _, _, t in p.hessian_zero_where)
        cons.append(f"Hessian is 0 ({where}): Newton steps and gradient boosting need a fallback there")
    elif p.convex and _smooth_enough(p):
        pros.append("Hessian never vanishes on an open set: second-order methods work directly")
    if p.residual_based and p.symmetric is False:
        pros.append("asymmetric: over- and under-prediction cost differently")

    fam, smooth = p.family, p.smoothness
    if fam == "regression":
        if p.residual_based and p.symmetric is False:
            best.append("quantiles and asymmetric costs (prediction intervals)")
        elif rate == "quadratic":
            best.append("the conditional mean under light-tailed (Gaussian-like) noise")
        elif rate == "linear" and smooth == "C0":
            best.append("the conditional median; heavy-tailed noise")
        elif rate == "linear":
            best.append("outliers in the targets, with a smooth quadratic bowl near zero")
        elif rate in ("logarithmic", "sublinear"):
            best.append("heavy outliers (Cauchy-like noise), from a reasonable starting point")
        elif rate == "bounded":
            best.append("gross outliers, from a good starting point (e.g. after an MAE or Huber fit)")
    elif fam == "classification":
        kind = p.axis.kind
        if kind == "probability":
            best.append("models that already output probabilities; clip them away from 0 and 1")
        elif rate == "exponential":
            best.append("boosting (AdaBoost's loss), with clean labels")
        elif not p.convex:
            best.append("class imbalance and many easy examples: down-weights confident predictions")
        elif smooth == "C0" or p.hessian_vanishes:
            best.append("max-margin classifiers (SVM-style); no calibrated probabilities")
        elif p.convex and smooth == "C∞":
            best.append("calibrated probabilities (logistic / log-loss)")
        else:
            best.append("margin-based classification with a smooth loss")
    elif fam == "probabilistic":
        if len(spec.predictions) > 1:
            best.append("predicting a distribution (mean and spread) rather than a point")
        else:
            best.append("targets that are counts or positive amounts, with a log link")
    if not best:
        best.append(_first_sentence(spec.description) or spec.title)
    return {"pros": pros, "cons": cons, "best": best}


def row_advice(spec: LossSpec, d, rp: RowProperties | None = None) -> dict[str, list[str]]:
    """Row losses: from their derived properties when analysed, else from the expression alone."""
    pros, cons = [], []
    if d is not None and d.rewrites:
        pros.append("stable evaluation: " + ", ".join(d.rewrites))
    if rp is None:
        if spec.loss.atoms(sp.Max, sp.Min, sp.Abs, sp.Piecewise):
            cons.append("contains max/min/|x|: not smooth everywhere")
        return {"pros": pros, "cons": cons, "best": [_first_sentence(spec.description) or spec.title]}
    if rp.convex:
        pros.append("convex in the prediction vector: every local minimum is global")
    else:
        cons.append("not convex in the prediction vector: the result depends on the starting point")
    if rp.smoothness == "C∞":
        pros.append("smooth (C∞): suits L-BFGS and Newton methods")
    else:
        jumps = sorted({k.what_jumps for k in rp.kinks})
        verb = "jump" if len(jumps) > 1 else "jumps"
        cons.append(f"{rp.smoothness}: the {' and '.join(jumps)} {verb} at kinks (listed on the page)")
    if rp.bounded_gradient:
        pros.append("bounded gradient: stable steps")
    else:
        cons.append("unbounded gradient: " + rp.gradient_detail)
    if rp.hessian_vanishes:
        cons.append(f"Hessian is 0 ({rp.hessian_detail}): Newton steps need a fallback there")
    return {"pros": pros, "cons": cons, "best": [_first_sentence(spec.description) or spec.title]}


def _row_property_rows(spec: LossSpec, p: RowProperties) -> list[dict]:
    """The derived properties of a row loss, as (property, value, details, how) rows."""
    preds = ", ".join(i.name for i in spec.predictions)
    kinks_md = "; ".join(f"${k.latex}$ ({k.what_jumps} jumps)" for k in p.kinks) or "none"
    kinks_html = "; ".join(
        (M.math_inline(M.inline(k.where)) if k.where is not None else _html_text(k.text))
        + _html_text(f" ({k.what_jumps} jumps)") for k in p.kinks) or "none"
    rows = [
        ("Convex in the vector " + preds, _yes(p.convex), p.convex_detail, _how(p.convex_method, p.convex_scope)),
        ("Smoothness", p.smoothness, "", p.smoothness_method),
        ("Kinks", None, "", p.smoothness_method),
        ("Growth", p.growth, p.growth_detail, "numeric, at the default parameters"),
        ("Bounded gradient", _yes(p.bounded_gradient), p.gradient_detail, "numeric, at the default parameters"),
        ("Hessian = 0 on a set of positive measure", _yes(p.hessian_vanishes), p.hessian_detail,
         p.hessian_method + ", at the default parameters"),
    ]
    out = []
    for label, value, detail, how in rows:
        if value is None:
            out.append({"label": label, "value_md": kinks_md, "value_html": Markup(kinks_html), "detail": detail,
                        "how": how})
        else:
            out.append({"label": label, "value_md": value, "value_html": Markup(_html_text(value)), "detail": detail,
                        "how": how})
    return out


def _picks(entries: list[_Entry]) -> list[dict]:
    """One-line recommendations derived from the properties across the catalog."""
    el = [e for e in entries if e.props]
    reg = [e for e in el if e.props.family == "regression"]

    def names(es):
        return [e.spec.name for e in es]

    picks = [
        ("Outliers in the targets (bounded gradient)", names(e for e in reg if e.props.bounded_gradient)),
        ("Outliers, and you need convexity", names(e for e in reg if e.props.bounded_gradient and e.props.convex)),
        ("Newton steps or gradient boosting (convex, C2 or smoother, Hessian never 0 on an open set)",
         names(e for e in el if e.props.convex and not e.props.hessian_vanishes and _smooth_enough(e.props))),
        ("Avoid with second-order methods (Hessian 0 on an open set)", names(e for e in el if e.props.hessian_vanishes)),
        ("Non-convex: start from a good initial fit", names(e for e in el if not e.props.convex)),
    ]
    return [{"title": t, "names": n} for t, n in picks if n]


# ---------------------------------------------------------------------------
# the catalog
# ---------------------------------------------------------------------------
def _entry(spec: LossSpec, analyse: bool = True) -> _Entry:
    if not analyse and spec.kind == "elementwise":  # formulas only: no kernels compiled, no plots
        return _Entry(spec, None, Derivation(spec), None)
    if spec.kind != "elementwise":
        from ..derive.row import RowDerivation

        return _Entry(spec, None, RowDerivation(spec), None, row_properties(spec) if analyse else None)
    from .properties import _loss_object

    loss = _loss_object(spec)
    return _Entry(spec, properties(spec, loss), Derivation(spec), Kernels(spec, loss))


# Rewrites applied outside the rule table (row losses shift their log-sum-exp).
OTHER_REWRITES = {
    "logsumexp_shift": "log(sum_k e^(z_k)) -> m + log(sum_k e^(z_k - m)) with m = max_k z_k: no overflow for any logit",
}


def _describe(name: str) -> str:
    if name in OTHER_REWRITES:
        return OTHER_REWRITES[name]
    return describe(name)


def _loss_page(e: _Entry) -> dict:
    spec, d, p = e.spec, e.derivation, e.props
    rewrites = [{"name": r, "description": _describe(r)} for r in (d.rewrites if d else [])]
    inputs = [{"name": i.name, "mathml": Markup(M.math_inline(M.symbol(i.name))), "latex": sp.latex(spec.symbols[i.name]),
               "role": i.role, "domain": i.domain} for i in spec.inputs]
    params = [{"name": q.name, "mathml": Markup(M.math_inline(M.symbol(q.name))), "latex": sp.latex(spec.symbols[q.name]),
               "default": f"{q.default:g}", "constraint": _constraint(q)} for q in spec.params]
    return {
        "name": spec.name,
        "title": spec.title,
        "kind": spec.kind,
        "family": p.family if p else family(spec),
        "mark": _mark(f"specs/{spec.name}.toml"),
        "description": " ".join(spec.description.split()),
        "formulas": _formulas(spec, d),
        "inputs": inputs,
        "params": params,
        "rewrites": rewrites,
        "properties": _property_rows(spec, p) if p else _row_property_rows(spec, e.row_props) if e.row_props else [],
        "advice": advice(spec, p) if p else row_advice(spec, d, e.row_props),
        "plot": f"{spec.name}.png" if p else None,
        "axis_text": p.axis.text if p else "",
        "varied": spec.params[0].name if spec.params else "",
        "usage": _usage(spec),
        "references": list(spec.references),
    }


def md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no bare pipes (|x| in LaTeX becomes \\lvert x\\rvert)."""
    text = str(text).replace("\\left|", "\\left\\lvert ").replace("\\right|", "\\right\\rvert ")
    return text.replace("|", "\\|")


def _environment():
    env = docs_environment()
    env.filters["mdcell"] = md_cell
    return env


def render_docs(specs_dir: Path | None = None, progress: Callable[[str], None] = lambda s: None,
                analyse: bool = True) -> dict[str, str | bytes]:
    """Every docs file in memory, relative path -> content; any error aborts before writing.

    ``analyse=False`` skips the derived properties and plots (which compile and
    run kernels): pages then show formulas, inputs, parameters and the spec's text.
    """
    env = _environment()
    paths = catalog.spec_paths(specs_dir)
    entries = []
    for k, path in enumerate(paths, 1):
        progress(f"[{k}/{len(paths)}] {path.stem}")
        entries.append(_entry(load_spec(path), analyse))
    files: dict[str, str | bytes] = {}
    pages = []
    for e in entries:
        page = _loss_page(e)
        pages.append(page)
        for ext in ("md", "html"):
            files[f"losses/{e.spec.name}.{ext}"] = env.get_template(f"docs/loss.{ext}.j2").render(
                page=page, mark=page["mark"])
        if e.props:
            files[f"losses/{e.spec.name}.png"] = loss_plot(e.spec, e.props, e.kernels)
    rows = [{"name": e.spec.name, "title": e.spec.title, "kind": e.spec.kind,
             "summary": _first_sentence(e.spec.description) or e.spec.title,
             **_summary_cells(e.props or e.row_props),
             "family": family(e.spec)}
            for e in entries]
    groups = []
    for fam in FAMILIES:
        members = [pg for pg in pages if pg["family"] == fam and pg["advice"]]
        if members:
            groups.append({"family": fam, "intro": FAMILY_INTRO[fam], "losses": members})
    figures = comparison_plots(entries)
    for f in figures:
        files[f["file"]] = f.pop("png")
    context = {
        "mark": _mark("specs/"),
        "rows": rows,
        "groups": groups,
        "picks": _picks(entries),
        "figures": figures,
        "unsupported": [e.spec.name for e in entries if e.spec.kind != "elementwise" and e.row_props is None],
        "rows_analysed": [e.spec.name for e in entries if e.row_props is not None],
    }
    for page in ("index", "guide", "compare"):
        for ext in ("md", "html"):
            files[f"{page}.{ext}"] = env.get_template(f"docs/{page}.{ext}.j2").render(**context)
    return files


def write_docs(out_dir: Path, specs_dir: Path | None = None,
               progress: Callable[[str], None] = lambda s: None) -> list[str]:
    """Render, then write atomically; files this tool wrote before and no longer makes are removed."""
    files = render_docs(specs_dir, progress)
    return write_tree(Path(out_dir), files, owned_suffixes=OWNED)
