"""The Keras loss class and its constructors (see the package docstring)."""
from __future__ import annotations

import keras

from .. import catalog
from ..errors import InputError
from ..spec import load_spec, spec_from_table


def _spec_of(source: str | None, table: dict | None):
    if table is not None:
        return spec_from_table(dict(table), source="<expr>")
    text = str(source)
    if text.endswith(".toml"):
        return load_spec(text)
    return load_spec(catalog.spec_path(text))


@keras.saving.register_keras_serializable(package="symloss")
class SymlossLoss(keras.losses.Loss):
    """A symloss loss as a ``keras.losses.Loss``: ``call(y_true, y_pred)`` gives per-sample values.

    ``source`` is a catalog name or a spec file's path; ``table`` a spec as a
    dict (what :func:`from_expr` builds); ``params`` the loss's parameters.
    """

    def __init__(self, source: str | None = None, params: dict | None = None, table: dict | None = None,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        if (source is None) == (table is None):
            raise InputError("SymlossLoss: give a loss name / spec path, or a spec table, not both")
        self.source, self.table = source, (dict(table) if table is not None else None)
        self.spec = _spec_of(source, table)
        self.params = {k: float(v) for k, v in (params or {}).items()}
        names = {p.name for p in self.spec.params}
        unknown = set(self.params) - names
        if unknown:
            raise InputError(f"{self.spec.name}: unknown parameter(s) {', '.join(sorted(unknown))}; "
                             f"parameters: {', '.join(sorted(names)) or 'none'}")
        for p in self.spec.params:
            if p.name in self.params and p.violation(self.params[p.name]):
                raise InputError(f"{self.spec.name}: parameter {p.name} {p.violation(self.params[p.name])}")
        super().__init__(name=name or f"symloss_{self.spec.name}", reduction=reduction, dtype=dtype)
        self._fn = None

    # Keras API --------------------------------------------------------------------
    def get_config(self):
        return {**super().get_config(), "source": self.source, "table": self.table, "params": dict(self.params),
                "dtype": self._dtype_policy.name if self._dtype_policy is not None else None}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def call(self, y_true, y_pred):
        from .dispatch import per_sample

        if self._fn is None:
            from .dispatch import framework_loss

            self._fn = framework_loss(self.spec, self.source, self.params)
        return per_sample(self.spec, self._fn, y_true, y_pred)

    def __repr__(self):
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"<symloss.keras loss {self.spec.name}({params}) reduction={self.reduction!r}>"


def loss(name_or_spec_path, reduction="sum_over_batch_size", name=None, dtype=None, **params) -> SymlossLoss:
    """A Keras loss for a catalog loss or a spec file: ``loss("huber", delta=1.0)``."""
    return SymlossLoss(str(name_or_spec_path), params=params, reduction=reduction, name=name, dtype=dtype)


def from_expr(expr: str, name: str = "custom", inputs: dict | None = None, params: dict | None = None,
              let: dict | None = None, kind: str = "elementwise", reduction="sum_over_batch_size", dtype=None,
              **values) -> SymlossLoss:
    """A Keras loss from one expression (symbols ``y`` target, ``yhat`` prediction by default);
    the expression travels in the config, so a saved model reloads without it."""
    table = {"name": name, "kind": kind, "inputs": inputs or {"y": "target", "yhat": "prediction"},
             "params": params or {}, "let": let or {}, "loss": expr}
    return SymlossLoss(table=table, params=values, reduction=reduction, dtype=dtype)


__all__ = ["SymlossLoss", "from_expr", "loss"]
