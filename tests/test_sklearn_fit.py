"""Fitting with any loss: the field's example, from_expr losses, multi-task, history, scikit-learn conventions."""
import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import check_estimator

import symloss
from symloss.errors import InputError
from symloss.multitask import combine
from symloss.plotting import plot_history
from symloss.sklearn import LossClassifier, LossRegressor

TRUE_W = np.array([1.5, -2.0, 0.5, 3.0, -1.0])


@pytest.fixture(scope="module")
def field():
    """The textbook example: X 100x5, true_w, noise 0.5."""
    rng = np.random.default_rng(42)
    X = rng.normal(size=(100, 5))
    return X, X @ TRUE_W + 0.5 * rng.normal(size=100)


def test_field_example_gd_newton_and_plot(field, tmp_path):
    X, y = field
    gd_mse = LossRegressor("mse", solver="gd", learning_rate=0.1, max_iter=500, tol=1e-8).fit(X, y)
    with warnings.catch_warnings():  # a fixed-step subgradient method hovers within O(lr) of the optimum
        warnings.simplefilter("ignore", ConvergenceWarning)
        gd_mae = LossRegressor("mae", solver="gd", learning_rate=0.01, max_iter=3000).fit(X, y)
    newton = LossRegressor("mse", solver="newton", tol=1e-10).fit(X, y)
    noise_level = 4 * 0.5 / np.sqrt(100)
    for model in (gd_mse, gd_mae, newton):
        assert np.max(np.abs(model.coef_ - TRUE_W)) < noise_level
    assert newton.n_iter_ <= 2  # a quadratic: one Newton step, then the check
    ols = np.linalg.lstsq(np.column_stack([X, np.ones(100)]), y, rcond=None)[0]
    np.testing.assert_allclose(newton.coef_, ols[:5], rtol=1e-9)
    np.testing.assert_allclose(gd_mse.coef_, ols[:5], rtol=1e-6)
    # GD's objective never increases on a smooth loss with a stable step
    assert np.all(np.diff(gd_mse.history_["objective"]) <= 1e-12)
    assert len(newton.history_["objective"]) == newton.n_iter_ + 1
    mae_lp = LossRegressor("mae").fit(X, y)  # the exact optimum (HiGHS) bounds GD's mae objective
    mae_obj = lambda m: np.mean(np.abs(y - m.predict(X)))  # noqa: E731
    assert mae_lp.solver_ == "lp" and mae_obj(mae_lp) <= mae_obj(gd_mae) < mae_obj(mae_lp) * 1.01
    out = tmp_path / "history.png"
    ax = plot_history({"GD (mse)": gd_mse, "Newton (mse)": newton, "GD (mae)": gd_mae}, path=out)
    assert out.stat().st_size > 1000 and len(ax.get_lines()) == 3
    plot_history([gd_mse, newton], key="grad_norm", path=tmp_path / "g.svg")
    assert (tmp_path / "g.svg").stat().st_size > 1000


def _first_order(L, X, y, model, **params):
    g = L.grad(y, model.predict(X), **params)  # d mean loss / d yhat
    return np.max(np.abs(np.append(X.T @ g, g.sum())))


def test_from_expr_and_general_robust_first_order(field):
    X, y = field
    y = y + np.where(np.arange(100) % 10 == 0, 15.0, 0.0)  # outliers: robust losses ignore them
    L = symloss.Loss.from_expr("log(1 + (yhat - y)**2)", name="cauchy_expr")
    m = LossRegressor(L, tol=1e-10).fit(X, y)
    assert _first_order(L, X, y, m) < 1e-9
    assert np.max(np.abs(m.coef_ - TRUE_W)) < 0.4
    B = symloss.load("general_robust")
    r = LossRegressor("general_robust", loss_alpha=0.5, c=2.0, solver="lbfgs", tol=1e-10).fit(X, y)
    assert r.get_params()["loss_alpha"] == 0.5 and r.get_params()["alpha"] == 0.0
    assert _first_order(B, X, y, r, alpha=0.5, c=2.0) < 1e-8
    with pytest.raises(ValueError, match="unknown parameter"):
        LossRegressor("mse", delta=1.0).fit(X, y)


def test_grid_search_tunes_loss_parameters(field):
    X, y = field
    gs = GridSearchCV(LossRegressor("huber"), {"delta": [0.5, 2.0], "alpha": [0.0, 0.1]}, cv=2).fit(X, y)
    assert gs.best_params_["delta"] in (0.5, 2.0)
    assert gs.best_estimator_.get_params()["delta"] == gs.best_params_["delta"]


def test_grid_search_switches_the_loss(field):
    """A loss's defaults are not settings: clone keeps none of huber's delta, so the loss can change."""
    X, y = field
    base = LossRegressor("huber", verbose=0)
    assert "delta" not in base.get_params() and clone(base).get_params() == base.get_params()
    mse = clone(base).set_params(loss="mse").fit(X, y)
    np.testing.assert_allclose(mse.coef_, LossRegressor("mse", verbose=0).fit(X, y).coef_)
    gs = GridSearchCV(base, {"loss": ["huber", "mse"]}, cv=2, error_score="raise").fit(X, y)
    assert set(gs.cv_results_["param_loss"]) == {"huber", "mse"}
    set_delta = LossRegressor("huber", delta=2.0)
    assert clone(set_delta).get_params() == set_delta.get_params() and set_delta.get_params()["delta"] == 2.0
    with pytest.raises(ValueError, match="unknown parameter"):  # a delta that was set does not vanish
        clone(set_delta).set_params(loss="mse").fit(X, y)


def test_labels_outside_the_loss_domain_raise(field):
    """The boosting objectives' domain rule: an InputError naming the loss and the label, not garbage."""
    X, y = field
    with pytest.raises(InputError, match=r"bce_logits: label .* \(0 <= y <= 1\); for class labels use LossClassifier"):
        LossRegressor("bce_logits", verbose=0).fit(X, y)
    with pytest.raises(InputError, match=r"gamma_nll: label -[0-9.]+ is outside .* \(y > 0\)"):
        LossRegressor("gamma_nll", verbose=0).fit(X, y)
    with pytest.raises(InputError, match=r"task 'count' \(poisson_nll\): label -"):
        LossRegressor(combine({"y": ("mse", 1.0), "count": ("poisson_nll", 1.0)}), verbose=0).fit(
            X, np.column_stack([y, y]))
    with pytest.raises(InputError, match=r"gamma_nll \(classes encoded as 0/1\): label 0.0"):
        LossClassifier("gamma_nll", verbose=0).fit(X, y > 0)
    with pytest.raises(InputError, match="categorical_cross_entropy: .* use cross_entropy"):
        LossClassifier("categorical_cross_entropy", verbose=0).fit(X, y > 0)


def test_bce_on_probabilities_fits_through_its_link(field):
    """LossClassifier("bce"): p = sigmoid(x w + b), as boosting composes it; the same fit as bce_logits."""
    X, y = field
    labels = y + 2 * np.random.default_rng(1).normal(size=y.size) > 0  # not separable: a finite optimum
    bce = LossClassifier("bce", verbose=0, tol=1e-10).fit(X, labels)
    logits = LossClassifier("bce_logits", verbose=0, tol=1e-10).fit(X, labels)
    assert bce.loss_.name == "bce_sigmoid" and np.all(np.isfinite(bce.history_["objective"]))
    np.testing.assert_allclose(bce.coef_, logits.coef_, rtol=1e-8)
    np.testing.assert_allclose(bce.predict_proba(X), logits.predict_proba(X), rtol=1e-8, atol=1e-12)


def test_predict_proba_depends_on_the_loss_only(field):
    """available_if reads parameters, not fitted state: the same answer before and after fit."""
    X, y = field
    for loss, has in [("hinge", False), ("mse", False), ("bce_logits", True), ("bce", True), ("auto", True)]:
        m = LossClassifier(loss, alpha=0.1, verbose=0)
        assert hasattr(m, "predict_proba") is has and hasattr(m, "predict_log_proba") is has
        assert hasattr(m.fit(X, y > 0), "predict_proba") is has
    assert not hasattr(LossClassifier("bce_logits").set_params(loss="hinge"), "predict_proba")


def test_classifier_losses_and_pickle():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(150, 3))
    y = np.array(["a", "b", "c"])[np.argmax(X @ rng.normal(size=(3, 3)) + 0.3 * rng.normal(size=(150, 3)), 1)]
    hinge = LossClassifier("hinge", alpha=0.01, l1_ratio=1.0).fit(X, y)  # one-vs-rest, solved exactly as an LP
    assert hinge.solver_ == "lp" and hinge.coef_.shape == (3, 3) and hinge.score(X, y) > 0.8
    assert not hasattr(hinge, "predict_proba")
    focal = LossClassifier("focal_binary", gamma=2.0, tol=1e-9).fit(X, y == "a")
    assert focal.classes_.tolist() == [False, True] and focal.score(X, y == "a") > 0.8
    clone = pickle.loads(pickle.dumps(focal))
    np.testing.assert_array_equal(clone.predict_proba(X), focal.predict_proba(X))


def test_combine_numpy_api_and_fit():
    rng = np.random.default_rng(4)
    n = 200
    X = rng.normal(size=(n, 3))
    price = X @ [1.0, -1.0, 2.0] + 0.1 * rng.normal(size=n)
    label = np.argmax(X @ rng.normal(size=(3, 4)), 1)
    L = combine({"price": ("mse", 1.0), "label": ("cross_entropy", 0.5)})
    z = {"price": rng.normal(size=n), "label": rng.normal(size=(n, 4))}
    t = {"price": price, "label": label}
    CE = symloss.load("cross_entropy")
    expected = symloss.load("mse").value(price, z["price"]) + 0.5 * CE.value(label, z["label"])
    assert L.value(t, z) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(L.grad(t, z)["label"], 0.5 * CE.grad(label, z["label"]), rtol=1e-12)
    # the tasks share X but no coefficient: the joint fit equals the separate fits
    Y = np.column_stack([price, label])
    joint = LossRegressor(L, alpha=0.01, tol=1e-10).fit(X, Y)
    assert joint.coef_.shape == (5, 3)
    alone = LossRegressor("mse", alpha=0.01, tol=1e-10).fit(X, price)
    clf = LossClassifier("cross_entropy", alpha=0.02, tol=1e-10).fit(X, label)  # weight 0.5 <=> alpha / 0.5
    np.testing.assert_allclose(joint.coef_[0], alone.coef_, rtol=1e-7)
    np.testing.assert_allclose(joint.coef_[1:], clf.coef_, rtol=1e-6, atol=1e-9)
    assert joint.predict_tasks(X)["label"].shape == (n, 4)


def test_uncertainty_weighting():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 2))
    Y = np.column_stack([X @ [1.0, 2.0] + 0.1 * rng.normal(size=200), X @ [-1.0, 1.0] + 2.0 * rng.normal(size=200)])
    L = combine({"a": ("mse", 1.0), "b": ("mse", 1.0)}, weighting="uncertainty")
    m = LossRegressor(L, alpha=0.01, tol=1e-10).fit(X, Y)
    Z = m.predict(X)
    means = np.mean((Z - Y) ** 2, axis=0)
    np.testing.assert_allclose(m.log_vars_, np.log(means), rtol=1e-6)  # s_t = log L_t at the joint optimum
    assert m.log_vars_[1] > m.log_vars_[0] + 3  # the noisy task gets the larger variance
    s = {"a": Z[:, 0], "b": Z[:, 1]}
    dlog = L.log_var_grad({"a": Y[:, 0], "b": Y[:, 1]}, s, log_vars=m.log_vars_)
    np.testing.assert_allclose(dlog, 0.0, atol=1e-6)


def test_check_estimator():
    # Regression at alpha=0 with p > n: the minimiser is not unique, and Newton's
    # minimum-norm step picks the same one for weights and repeated rows.
    # Classification there: the 15 samples in 30 dimensions are separable, no
    # minimiser exists at alpha=0 and each fit stops somewhere along a divergent path.
    reason = "separable data at alpha=0: no minimiser exists"
    check_estimator(LossRegressor())
    check_estimator(LossClassifier(), expected_failed_checks={"check_sample_weight_equivalence_on_dense_data": reason})
    for est in (LossRegressor(alpha=0.01), LossClassifier(alpha=0.01)):
        check_estimator(est)


def test_newton_minimum_norm_when_singular():
    """p > n, no penalty: Newton lands on the minimum-norm least-squares solution
    (lstsq's), and rows with zero weight change nothing."""
    rng = np.random.default_rng(11)
    X, y = rng.standard_normal((12, 30)), rng.standard_normal(12)
    m = LossRegressor("mse", fit_intercept=False, solver="newton", tol=1e-10, verbose=0).fit(X, y)
    np.testing.assert_allclose(m.coef_, np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-7, atol=1e-9)
    Xz = np.vstack([X, rng.standard_normal((5, 30))])
    yz = np.concatenate([y, rng.standard_normal(5)])
    w = np.concatenate([np.ones(12), np.zeros(5)])
    mz = LossRegressor("mse", fit_intercept=False, solver="newton", tol=1e-10, verbose=0).fit(Xz, yz, sample_weight=w)
    np.testing.assert_allclose(mz.coef_, m.coef_, rtol=1e-7, atol=1e-9)


def test_combine_in_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    n = 40
    L = combine({"price": ("mse", 1.0), "label": ("cross_entropy", 0.5)}, weighting="uncertainty")
    t = {"price": rng.normal(size=n), "label": rng.integers(0, 4, n)}
    z = {"price": rng.normal(size=n), "label": rng.normal(size=(n, 4))}
    s = np.array([0.3, -0.2])
    module = L.torch()
    with torch.no_grad():
        module.log_vars.copy_(torch.tensor(s))
    zt = {k: torch.tensor(v, requires_grad=True) for k, v in z.items()}
    total = module(zt, {k: torch.tensor(v) for k, v in t.items()})
    total.backward()
    assert total.item() == pytest.approx(L.value(t, z, log_vars=s), rel=1e-12)
    np.testing.assert_allclose(zt["label"].grad.numpy(), L.grad(t, z, log_vars=s)["label"], rtol=1e-10)
    np.testing.assert_allclose(module.log_vars.grad.numpy(), L.log_var_grad(t, z, log_vars=s), rtol=1e-10)


def test_light_modules_import_no_heavy_library():
    """combine, plot_history and the Dask layer are importable without scikit-learn, dask, matplotlib or torch."""
    import subprocess
    import sys

    code = ("import sys, symloss, symloss.multitask, symloss.plotting, symloss.dask_arrays; "
            "print([m for m in ('sklearn', 'dask', 'matplotlib', 'torch', 'scipy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_progress_bar_is_optional(field, capsys):
    """verbose=1 draws a tqdm bar where tqdm is installed (after 3 s) and fits the same either way."""
    X, y = field
    quiet = LossRegressor("mse", verbose=0).fit(X, y)
    loud = LossRegressor("mse", verbose=1).fit(X, y)
    np.testing.assert_array_equal(quiet.coef_, loud.coef_)
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return
    from symloss.sklearn._solvers import History

    hist = History(verbose=1, max_iter=3)
    assert hist.bar is not None
    hist.record(1.0, 0.5, 0.1)
    hist.close()
    assert hist.data["objective"] == [1.0]
