"""The CUDA backend on a GPU: build, check against PyTorch in float64, time against PyTorch.

    python bench/gpu.py [--out DIR] [--log2n 28] [--reps 15] [--inner 10] [--no-compile] [--quick]

DIR (default: $OUT, else bench/) receives gpu_bench.json, rewritten after every
section so a run cut short still leaves its numbers.  Sections, in order, each
printed as it finishes; one that fails is reported with its traceback and the
rest still run:

  environment  GPU, driver-side versions, SM count
  checks       every method, reduction and weighting on small inputs (torch
               tensors, float32 and float64, and numba device arrays) against
               the CPU kernels: compiles the kernels and proves the device path
  copy         device copy bandwidth: torch copy_ of 2^log2n float32 (read + write)
  elementwise  huber and bce_logits value_and_grad (mean) on 2^log2n float32:
               symloss (the launch geometry swept, then the default), PyTorch
               eager forward + backward, torch.compile of forward + autograd
               backward, and torch.compile of the explicit loss + gradient
               formulas; value and gradient errors against float64 PyTorch
  rows         cross_entropy value_and_grad (mean, class indices) at (65536, 1024),
               (16384, 8192), (4096, 131072) float32: checks of every layout against
               the CPU kernels, then symloss (and its other layouts), PyTorch eager
               forward + backward and torch.compile (dynamic=False) of forward +
               autograd backward; errors against float64 PyTorch

Times are medians over `reps` CUDA-event measurements of `inner` back-to-back
calls each (so host launch overhead overlaps device work, as in training).
The table of ratios is printed last.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import symloss  # noqa: E402
from symloss.backends.numba_cuda import runtime as C  # noqa: E402

RESULTS: dict = {"date": datetime.date.today().isoformat(), "sections": {}}
OUT_FILE: Path | None = None
DEVICE = "cuda"
START = time.perf_counter()
BUDGET_S = 400.0  # --budget-s: the slow torch.compile baselines are dropped when time runs short
QUICK = False  # --quick: no grid sweep or ITEMS variants, fewer checks, no overhead section


def time_left() -> float:
    return BUDGET_S - (time.perf_counter() - START)


def save() -> None:
    if OUT_FILE is not None:
        tmp = OUT_FILE.with_suffix(".tmp")
        tmp.write_text(json.dumps(RESULTS, indent=2, default=str))
        tmp.replace(OUT_FILE)


def section(name):
    def wrap(fn):
        def run(*args, **kwargs):
            print(f"\n== {name} ==", flush=True)
            t0 = time.perf_counter()
            try:
                RESULTS["sections"][name] = fn(*args, **kwargs)
            except Exception as exc:  # report and go on: one run must give as much as it can
                traceback.print_exc()
                RESULTS["sections"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            RESULTS["sections"].setdefault(name, {})
            if isinstance(RESULTS["sections"][name], dict):
                RESULTS["sections"][name]["seconds"] = round(time.perf_counter() - t0, 1)
            print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)
            save()
            return RESULTS["sections"][name]
        return run
    return wrap


def cuda_time_ms(torch, fn, reps: int, inner: int) -> float:
    """Median per-call milliseconds of `fn`, by CUDA events around `inner` calls."""
    fn()
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / inner)
    return statistics.median(times)


# --- sections -------------------------------------------------------------------------------------
@section("environment")
def environment(torch):
    import numba

    cuda = C._cuda()
    dev = cuda.get_current_device()
    info = {
        "gpu": torch.cuda.get_device_name(),
        "sm_count": dev.MULTIPROCESSOR_COUNT,
        "compute_capability": list(dev.compute_capability),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "numba": numba.__version__,
        "numba_cuda": getattr(cuda, "implementation", "?"),
        "numpy": np.__version__,
    }
    try:
        from importlib.metadata import version

        info["numba_cuda"] = version("numba-cuda")
    except Exception:
        pass
    for k, v in info.items():
        print(f"   {k}: {v}")
    return info


def _close(got, want, rtol) -> float:
    """Normwise relative error max|got - want| / max|want| (0 for two zero arrays)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != {want.shape}")
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-300)
    err = float(np.max(np.abs(got - want))) / scale if want.size else 0.0
    return err


def _inputs(spec, n, dtype, rng):
    draws = {
        "real": lambda: rng.uniform(-3, 3, n),
        "positive": lambda: rng.uniform(0.1, 3, n),
        "unit": lambda: rng.uniform(0.02, 0.98, n),
        "unit_closed": lambda: np.where(rng.random(n) < 0.3, rng.integers(0, 2, n), rng.uniform(0, 1, n)),
        "binary": lambda: rng.integers(0, 2, n).astype(float),
        "sign": lambda: rng.choice([-1.0, 1.0], n),
    }
    return [draws[i.domain]().astype(dtype) for i in spec.inputs]


CASES = [
    ("value", "mean", False), ("value", "sum", True), ("value", "none", True), ("value", "mean", True),
    ("grad", "mean", True), ("grad", "sum", False), ("grad", "none", False),
    ("value_and_grad", "mean", False), ("value_and_grad", "mean", True), ("value_and_grad", "none", False),
    ("hessian", "none", False), ("hessian", "mean", True),
    ("grad_hessian", "none", False), ("grad_hessian", "sum", True),
]
# d loss / d alpha of general_robust: barron_dalpha's constant tuples indexed in loops, never
# compiled by numba-cuda on a GPU before
PARAM_CASES = [("param_grad", "mean", False), ("param_grad", "sum", True), ("param_grad", "none", False)]


def _outputs(result) -> tuple:
    """A method's result as a tuple of its outputs (param_grad's {name: value} by name order)."""
    if isinstance(result, dict):
        return tuple(result.values())
    return result if isinstance(result, tuple) else (result,)


@section("checks")
def checks(torch, n: int):
    """Device results against the CPU kernels; float32 allows 1e-5 (normwise), float64 1e-10."""
    rng = np.random.default_rng(0)
    out, worst, failures = {}, {}, []
    # general_robust (boxcox1p, barron_dalpha) and focal_binary (powdiv): helpers added since run 4
    helpers = [("general_robust", np.float32, CASES[7:8] + CASES[12:13] + PARAM_CASES),
               ("general_robust", np.float64, CASES[7:8] + PARAM_CASES),
               ("focal_binary", np.float32, CASES[7:8] + CASES[12:13])]
    plan = [("huber", np.float32, CASES), ("huber", np.float64, CASES),
            ("bce_logits", np.float32, CASES[7:10]), ("gaussian_nll", np.float64, CASES[7:8] + CASES[12:]),
            *helpers]
    if QUICK:  # runs 1-4 passed the full plan; the kernels timed below
        plan = [("huber", np.float32, CASES[7:8]), ("bce_logits", np.float32, CASES[7:10]), *helpers]
    for name, dtype, cases in plan:
        loss = symloss.load(name)
        dev = C.device_loss(loss)
        arrays = _inputs(loss.spec, n, dtype, rng)
        weights = rng.uniform(0.2, 2.0, n).astype(dtype)
        t_arrays = [torch.from_numpy(a).cuda() for a in arrays]
        t_weights = torch.from_numpy(weights).cuda()
        tol = 1e-5 if dtype == np.float32 else 1e-10
        key = f"{name}/{np.dtype(dtype).name}"
        worst[key] = 0.0
        for method, reduction, weighted in cases:
            want = getattr(loss, method)(*arrays, reduction=reduction, sample_weight=weights if weighted else None)
            got = getattr(dev, method)(*t_arrays, reduction=reduction,
                                       sample_weight=t_weights if weighted else None)
            want, got = _outputs(want), _outputs(got)
            flat_w = [w for item in want for w in (item if isinstance(item, tuple) else (item,))]
            flat_g = [g for item in got for g in (item if isinstance(item, tuple) else (item,))]
            for g, w in zip(flat_g, flat_w):
                assert isinstance(g, torch.Tensor) and g.device.type == DEVICE, f"{key} {method}: result {type(g)}"
                assert g.dtype == torch.from_numpy(np.zeros(1, dtype)).dtype, f"{key} {method}: dtype {g.dtype}"
                err = _close(g.cpu().numpy(), w, tol)
                worst[key] = max(worst[key], err)
                if not err <= tol:
                    failures.append(f"{key} {method}({reduction}, weighted={weighted}): error {err:.2e}")
        print(f"   {key}: {len(cases)} cases, worst normwise error {worst[key]:.2e}", flush=True)
    # numba device arrays, and torch's current stream when it is not the default one
    cuda = C._cuda()
    loss = symloss.load("huber")
    y, yhat = _inputs(loss.spec, n, np.float32, rng)
    v, g = C.device_loss(loss).value_and_grad(cuda.to_device(y), cuda.to_device(yhat))
    want_v, want_g = loss.value_and_grad(y, yhat)
    err = max(_close(v.copy_to_host(), want_v, 1e-5), _close(g.copy_to_host(), want_g, 1e-5))
    worst["huber/float32/numba-arrays"] = err
    if not err <= 1e-5:
        failures.append(f"numba device arrays: error {err:.2e}")
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        ty, tyhat = torch.from_numpy(y).cuda(), torch.from_numpy(yhat).cuda()
        v, g = C.device_loss(loss).value_and_grad(ty, tyhat)
    side.synchronize()
    err = max(_close(v.cpu().numpy(), want_v, 1e-5), _close(g.cpu().numpy(), want_g, 1e-5))
    worst["huber/float32/side-stream"] = err
    if not err <= 1e-5:
        failures.append(f"side stream: error {err:.2e}")
    print(f"   numba device arrays and a side stream: worst error {max(worst['huber/float32/numba-arrays'], err):.2e}")
    for f in failures:
        print("   FAIL", f)
    print(f"   {'all checks passed' if not failures else f'{len(failures)} checks FAILED'}", flush=True)
    out.update(worst=worst, failures=failures, n=n)
    return out


@section("copy")
def copy_bandwidth(torch, n: int, reps: int, inner: int):
    src = torch.randn(n, device=DEVICE, dtype=torch.float32)
    dst = torch.empty_like(src)
    ms = cuda_time_ms(torch, lambda: dst.copy_(src), reps, inner)
    tbps = 2 * 4 * n / (ms * 1e-3) / 1e12
    print(f"   copy of {n} float32: {ms:.3f} ms, {tbps:.2f} TB/s (read + write)")
    return {"ms": ms, "tb_per_s": tbps, "n": n}


def _torch_math(torch, name):
    F = torch.nn.functional
    if name == "huber":
        def forward(y, yhat):
            return F.huber_loss(yhat, y, delta=1.0)

        def explicit(y, yhat):
            r = yhat - y
            a = r.abs()
            quad = a <= 1.0
            loss = torch.where(quad, 0.5 * r * r, a - 0.5).mean()
            grad = torch.where(quad, r, torch.sign(r)) / r.numel()
            return loss, grad
    else:  # bce_logits: (y, z)
        def forward(y, z):
            return F.binary_cross_entropy_with_logits(z, y)

        def explicit(y, z):
            loss = (torch.clamp(z, min=0) - z * y + torch.log1p(torch.exp(-z.abs()))).mean()
            grad = (torch.sigmoid(z) - y) / z.numel()
            return loss, grad
    return forward, explicit


def _data(torch, name, n):
    g = torch.Generator(device=DEVICE).manual_seed(1)
    if name == "huber":
        y = torch.randn(n, device=DEVICE, generator=g)
        yhat = y + 1.5 * torch.randn(n, device=DEVICE, generator=g)
        return y, yhat
    z = 3 * torch.randn(n, device=DEVICE, generator=g)
    y = torch.bernoulli(torch.sigmoid(z), generator=g)
    return y, z


def _const_variant(module, **consts):
    """The same generated module with other module constants (``NAME = value  #`` or ``NAME = value``)."""
    import tempfile

    from symloss.modules import import_path

    text = Path(module.__file__).read_text()
    for name, value in consts.items():
        old = f"{name} = {getattr(module, name)!r}\n"
        assert old in text, f"generated module without a {name} constant"
        text = text.replace(old, f"{name} = {value!r}\n")
    tag = "_".join(f"{k}{v}" for k, v in consts.items())
    path = Path(tempfile.mkdtemp(prefix="symloss-const-")) / f"{module.NAME}_{tag}.py"
    path.write_text(text)
    return import_path(path)


def _items_variant(module, items: int):
    """The same generated module with another ITEMS, imported from a temporary file."""
    import tempfile

    from symloss.modules import import_path

    text = Path(module.__file__).read_text()
    line = f"ITEMS = {module.ITEMS}  #"
    assert line in text, "generated module without an ITEMS constant"
    path = Path(tempfile.mkdtemp(prefix="symloss-items-")) / f"{module.NAME}_items{items}.py"
    path.write_text(text.replace(line, f"ITEMS = {items}  #"))
    return import_path(path)


@section("elementwise")
def elementwise(torch, n: int, reps: int, inner: int, compile_: bool, copy_tbps: float | None):
    results = {}
    for name in (("bce_logits",) if QUICK else ("huber", "bce_logits")):  # quick: huber tied in runs 2-4
        r = results[name] = {"n": n}
        loss = symloss.load(name)
        dev = C.device_loss(loss)
        y, x = _data(torch, name, n)
        forward, explicit = _torch_math(torch, name)

        # accuracy against float64 PyTorch
        v, g = dev.value_and_grad(y, x)
        y64, x64 = y.double(), x.double().requires_grad_()
        ref = forward(y64, x64)
        (gref,) = torch.autograd.grad(ref, x64)
        ref = ref.detach()
        ref_v = float(ref)
        r["value_rel_err"] = abs(float(v) - float(ref)) / abs(float(ref))
        r["grad_rel_err"] = float((g.double() - gref).abs().max() / gref.abs().max())
        xr = x.detach().requires_grad_()
        ev = forward(y, xr)
        (eg,) = torch.autograd.grad(ev, xr)
        ev = ev.detach()
        r["eager_value_rel_err"] = abs(float(ev) - float(ref)) / abs(float(ref))
        r["eager_grad_rel_err"] = float((eg.double() - gref).abs().max() / gref.abs().max())
        del y64, x64, ref, ev, eg
        print(f"   {name}: value error {r['value_rel_err']:.1e}, gradient error {r['grad_rel_err']:.1e} "
              f"(eager: {r['eager_value_rel_err']:.1e}, {r['eager_grad_rel_err']:.1e})", flush=True)

        # FAST_F32 / TILE_SUMS module switches (float32 only), each checked against float64 PyTorch
        switches = {}
        for label, consts in (("FAST_F32", {"FAST_F32": True}), ("TILE_SUMS", {"TILE_SUMS": True}),
                              ("FAST_F32+TILE_SUMS", {"FAST_F32": True, "TILE_SUMS": True})):
            try:
                d = C.DeviceLoss(loss.spec, _const_variant(dev.module, **consts))
                sv, sg = d.value_and_grad(y, x)
                ms = cuda_time_ms(torch, lambda: d.value_and_grad(y, x), reps, inner)
                switches[label] = {"ms": ms, "value_rel_err": abs(float(sv) - ref_v) / abs(ref_v),
                                   "grad_rel_err": float((sg.double() - gref).abs().max() / gref.abs().max())}
            except Exception as exc:
                switches[label] = {"error": f"{type(exc).__name__}: {exc}"}
            sw_ = switches[label]
            print(f"   {name}: {label}: " + (f"{sw_['ms']:.3f} ms, value error {sw_['value_rel_err']:.1e}, "
                                             f"gradient error {sw_['grad_rel_err']:.1e}" if "ms" in sw_
                                             else sw_["error"]), flush=True)
        r["switches"] = switches
        del gref
        if QUICK:
            r["symloss_ms"] = cuda_time_ms(torch, lambda: dev.value_and_grad(y, x), reps, inner)
        # the launch geometry: the default grid is one wave of resident blocks
        sms = C._cuda().get_current_device().MULTIPROCESSOR_COUNT
        resident = {k[2]: b for k, b in C._RESIDENT.items() if k[0] is dev.module.value_and_grad}
        r["resident_blocks"] = resident
        regs = dev.module.value_and_grad.get_regs_per_thread()
        r["registers"] = sorted(set(regs.values())) if isinstance(regs, dict) else regs
        sweep = {}
        wave = resident.get(C.THREADS, 8 * sms)
        if QUICK:
            grids = {}
        else:
            grids = {f"{k}/SM": k * sms for k in (4, 16, 64)}
            grids.update({"1 wave": wave, "4 waves": 4 * wave, "one element per thread": -(-n // C.THREADS)})
        for label, blocks in grids.items():
            d = C.DeviceLoss(loss.spec, dev.module, C.Launch(max_blocks=blocks))
            sweep[label] = cuda_time_ms(torch, lambda: d.value_and_grad(y, x), max(3, reps // 3), inner)
        r["sweep_ms_by_grid"] = sweep
        print(f"   {name}: registers {r['registers']}, resident blocks {resident}, default grid "
              f"{C.WAVES} waves; ms by grid {', '.join(f'{k}: {t:.3f}' for k, t in sweep.items())}", flush=True)

        # the kernel shape: elements per thread and step (ITEMS, a module constant), threads per block
        variants = {}
        for items in (() if QUICK else (1, 2, 8)):
            d = C.DeviceLoss(loss.spec, _items_variant(dev.module, items))
            variants[f"ITEMS={items}"] = cuda_time_ms(torch, lambda: d.value_and_grad(y, x), max(3, reps // 3), inner)
        if not QUICK:
            d = C.DeviceLoss(loss.spec, dev.module, C.Launch(threads=128))
            variants["threads=128"] = cuda_time_ms(torch, lambda: d.value_and_grad(y, x), max(3, reps // 3), inner)
        r["variants_ms"] = variants
        print(f"   {name}: variants (default ITEMS={dev.module.ITEMS}, 256 threads): "
              f"{', '.join(f'{k}: {t:.3f}' for k, t in variants.items())}", flush=True)

        if not QUICK:
            r["symloss_ms"] = cuda_time_ms(torch, lambda: dev.value_and_grad(y, x), reps, inner)
        xr = x.detach().requires_grad_()

        def eager():
            out = forward(y, xr)
            return out, torch.autograd.grad(out, xr)[0]

        r["eager_ms"] = cuda_time_ms(torch, eager, reps, inner)
        print(f"   {name}: symloss {r['symloss_ms']:.3f} ms, eager {r['eager_ms']:.3f} ms", flush=True)
        if compile_ and time_left() < (40 if QUICK else 150):
            print(f"   {name}: torch.compile skipped, {time_left():.0f} s of the budget left", flush=True)
            r["compile_skipped"] = f"{time_left():.0f} s of the budget left"
        elif compile_:
            t0 = time.perf_counter()
            if QUICK:  # runs 1-4: torch.compile of the explicit formulas was always the faster one
                r["compile_s_autograd"], r["compile_autograd_ms"] = 0.0, float("inf")
            else:
                cf = torch.compile(forward)

                def compiled_autograd():
                    out = cf(y, xr)
                    return out, torch.autograd.grad(out, xr)[0]

                compiled_autograd()
                r["compile_s_autograd"] = time.perf_counter() - t0
                r["compile_autograd_ms"] = cuda_time_ms(torch, compiled_autograd, reps, inner)
            t0 = time.perf_counter()
            ce = torch.compile(explicit)
            ce(y, x)
            r["compile_s_explicit"] = time.perf_counter() - t0
            r["compile_explicit_ms"] = cuda_time_ms(torch, lambda: ce(y, x), reps, inner)
            r["compile_ms"] = min(r["compile_autograd_ms"], r["compile_explicit_ms"])
            print(f"   {name}: torch.compile fwd+autograd {r['compile_autograd_ms']:.3f} ms "
                  f"(compiled in {r['compile_s_autograd']:.0f} s), explicit loss+grad "
                  f"{r['compile_explicit_ms']:.3f} ms ({r['compile_s_explicit']:.0f} s)", flush=True)
        if copy_tbps:
            r["fraction_of_copy"] = 3 * 4 * n / (r["symloss_ms"] * 1e-3) / 1e12 / copy_tbps
        del y, x, xr
        torch.cuda.empty_cache()
        save()
    return results


@section("overhead")
def overhead(torch, reps: int):
    """Per-call cost at 4096 elements, where the host's launch work is all there is to time."""
    loss = symloss.load("huber")
    dev = C.device_loss(loss)
    y, x = _data(torch, "huber", 4096)
    xr = x.detach().requires_grad_()
    F = torch.nn.functional

    def eager():
        out = F.huber_loss(xr, y)
        return out, torch.autograd.grad(out, xr)[0]

    r = {"symloss_us": 1e3 * cuda_time_ms(torch, lambda: dev.value_and_grad(y, x), reps, 50),
         "eager_us": 1e3 * cuda_time_ms(torch, eager, reps, 50)}
    print(f"   huber value_and_grad on 4096 elements: symloss {r['symloss_us']:.0f} us/call, "
          f"eager {r['eager_us']:.0f} us/call", flush=True)
    return r


ROW_SHAPES = ((65536, 1024), (16384, 8192), (4096, 131072))


@section("rows")
def rows(torch, reps: int, inner: int, compile_: bool):
    """cross_entropy value_and_grad (mean, class indices, float32): checks against the CPU
    kernels on small inputs (every layout), then the three shapes against PyTorch."""
    from symloss.backends.numba_cuda import runtime_row as R

    F = torch.nn.functional
    loss = symloss.load("cross_entropy")
    dev = R.device_row_loss(loss)
    out = {"checks": {}, "shapes": {}}
    rng = np.random.default_rng(5)
    failures = []
    # (K, dtype, targets, method): K = 37 one warp per row, 1500 one block per row in shared
    # memory, 20000 (float32: 80 KB a row) one streaming block per row
    plan = [(37, np.float32, "idx", "value_and_grad"), (1500, np.float32, "idx", "value_and_grad"),
            (20000, np.float32, "idx", "value_and_grad"), (37, np.float32, "prob", "value_and_grad"),
            (1500, np.float64, "idx", "value_and_grad")]
    if not QUICK:
        plan += [(37, np.float32, "idx", "value"), (37, np.float32, "idx", "grad")]
    for k, dtype, targets, method in plan:
        nrows = 64
        z = rng.normal(scale=2.0, size=(nrows, k)).astype(dtype)
        if targets == "idx":
            y = rng.integers(0, k, nrows)
            y[3] = -100
        else:
            y = rng.dirichlet(np.ones(k), size=nrows).astype(dtype)
        kw = {"label_smoothing": 0.1, "reduction": "mean"}
        key = f"K={k} {np.dtype(dtype).name} {targets} {method}"
        try:
            want = getattr(loss, method)(y, z, **kw)
            got = getattr(dev, method)(torch.from_numpy(y).cuda(), torch.from_numpy(z).cuda(), **kw)
            want, got = _outputs(want), _outputs(got)
            err = max(_close(g.cpu().numpy(), w, 0) for g, w in zip(got, want))
        except Exception as exc:
            traceback.print_exc()
            err = float("nan")
            failures.append(f"{key}: {type(exc).__name__}: {exc}")
        tol = 1e-5 if dtype == np.float32 else 1e-10
        out["checks"][key] = err
        if not err <= tol and err == err:
            failures.append(f"{key}: error {err:.2e}")
        print(f"   check {key}: error {err:.1e}", flush=True)
    out["failures"] = failures
    print(f"   {'row checks passed' if not failures else f'{len(failures)} row checks FAILED'}", flush=True)
    save()

    for n, k in ROW_SHAPES:
        r = out["shapes"][f"{n}x{k}"] = {"n": n, "k": k}
        try:
            _row_shape(torch, F, loss, dev, R, r, n, k, reps, inner, compile_)
        except Exception as exc:
            traceback.print_exc()
            r["error"] = f"{type(exc).__name__}: {exc}"
        torch.cuda.empty_cache()
        RESULTS["sections"]["rows"] = out
        save()
        print(table(), flush=True)
    return out


def _row_shape(torch, F, loss, dev, R, r, n, k, reps, inner, compile_):
    g = torch.Generator(device=DEVICE).manual_seed(2)
    z = 2.0 * torch.randn(n, k, device=DEVICE, generator=g)
    t = torch.randint(0, k, (n,), device=DEVICE, generator=g)
    p = R.plan(k, dev.module.CACHED["value_and_grad_idx"], 4)
    r["layout"] = f"{p.layout}, {p.threads} threads, {p.shared} B shared"
    v, gz = dev.value_and_grad(t, z)
    z64 = z.double().requires_grad_()
    ref = F.cross_entropy(z64, t)
    (gref,) = torch.autograd.grad(ref, z64)
    r["value_rel_err"] = abs(float(v) - float(ref)) / abs(float(ref))
    r["grad_rel_err"] = float((gz.double() - gref).abs().max() / gref.abs().max())
    del z64, ref, gref, gz
    torch.cuda.empty_cache()
    r["symloss_ms"] = cuda_time_ms(torch, lambda: dev.value_and_grad(t, z), reps, inner)
    # the other layouts where they apply (the kernels are compiled by the checks above)
    others = {}
    for layout in ("block", "stream") if p.layout == "warp" else (("stream",) if p.layout == "block" else ()):
        d = R.DeviceRowLoss(loss.spec, dev.module, layout=layout)
        try:
            others[layout] = cuda_time_ms(torch, lambda: d.value_and_grad(t, z), max(3, reps // 2), inner)
        except Exception as exc:
            others[layout] = f"{type(exc).__name__}: {exc}"
    r["other_layouts_ms"] = others
    zr = z.detach().requires_grad_()

    def eager():
        o = F.cross_entropy(zr, t)
        return o, torch.autograd.grad(o, zr)[0]

    r["eager_ms"] = cuda_time_ms(torch, eager, reps, inner)
    print(f"   cross_entropy {n}x{k}: {r['layout']}: symloss {r['symloss_ms']:.3f} ms "
          f"(other layouts {others}), eager {r['eager_ms']:.3f} ms, value error {r['value_rel_err']:.1e}, "
          f"gradient error {r['grad_rel_err']:.1e}", flush=True)
    save()
    if compile_ and time_left() > 35:
        t0 = time.perf_counter()
        cf = torch.compile(lambda zz, tt: F.cross_entropy(zz, tt), dynamic=False)

        def compiled():
            o = cf(zr, t)
            return o, torch.autograd.grad(o, zr)[0]

        compiled()
        r["compile_s"] = time.perf_counter() - t0
        r["compile_ms"] = cuda_time_ms(torch, compiled, reps, inner)
        print(f"   cross_entropy {n}x{k}: torch.compile fwd+autograd {r['compile_ms']:.3f} ms "
              f"(compiled in {r['compile_s']:.0f} s)", flush=True)
    elif compile_:
        r["compile_skipped"] = f"{time_left():.0f} s of the budget left"
        print(f"   cross_entropy {n}x{k}: torch.compile skipped, {time_left():.0f} s left", flush=True)
    del z, t, zr


# --- the table ------------------------------------------------------------------------------------
def table() -> str:
    sec = RESULTS["sections"]
    lines = [f"GPU benchmark {RESULTS['date']}: {sec.get('environment', {}).get('gpu', '?')}"]
    copy = sec.get("copy", {})
    if "tb_per_s" in copy:
        lines.append(f"device copy: {copy['tb_per_s']:.2f} TB/s (read + write, {copy['ms']:.3f} ms for 2^"
                     f"{int(np.log2(copy['n']))} float32)")
    ovh = sec.get("overhead", {})
    if "symloss_us" in ovh:
        lines.append(f"per-call cost at 4096 elements (host launch work): symloss {ovh['symloss_us']:.0f} us, "
                     f"eager {ovh['eager_us']:.0f} us")
    chk = sec.get("checks", {})
    if "failures" in chk:
        lines.append(f"checks against the CPU kernels: {'all passed' if not chk['failures'] else chk['failures']}")
    head = ("case", "symloss ms", "eager ms", "compile ms", "eager/symloss", "compile/symloss",
            "% of copy", "value err", "grad err")
    rows_ = []
    for name, r in sec.get("elementwise", {}).items():
        if not isinstance(r, dict) or "symloss_ms" not in r:
            continue
        for label, sw in r.get("switches", {}).items():
            if "ms" in sw:
                lines.append(f"{name} with {label}: {sw['ms']:.3f} ms (default {r['symloss_ms']:.3f} ms), "
                             f"value err {sw['value_rel_err']:.1e}, grad err {sw['grad_rel_err']:.1e}")
        comp = r.get("compile_ms")
        rows_.append((
            f"{name} value_and_grad 2^{int(np.log2(r['n']))} f32",
            f"{r['symloss_ms']:.3f}", f"{r['eager_ms']:.3f}", f"{comp:.3f}" if comp else "-",
            f"{r['eager_ms'] / r['symloss_ms']:.2f}x",
            f"{comp / r['symloss_ms']:.2f}x" if comp else "-",
            f"{100 * r['fraction_of_copy']:.0f}%" if "fraction_of_copy" in r else "-",
            f"{r['value_rel_err']:.1e}", f"{r['grad_rel_err']:.1e}",
        ))
    for key, r in sec.get("rows", {}).get("shapes", {}).items():
        if "symloss_ms" not in r:
            continue
        comp = r.get("compile_ms")
        rows_.append((
            f"cross_entropy value_and_grad {key} f32",
            f"{r['symloss_ms']:.3f}", f"{r['eager_ms']:.3f}", f"{comp:.3f}" if comp else "-",
            f"{r['eager_ms'] / r['symloss_ms']:.2f}x",
            f"{comp / r['symloss_ms']:.2f}x" if comp else "-",
            f"{100 * 2 * 4 * r['n'] * r['k'] / (r['symloss_ms'] * 1e-3) / 1e12 / sec['copy']['tb_per_s']:.0f}%"
            if "tb_per_s" in sec.get("copy", {}) else "-",
            f"{r['value_rel_err']:.1e}", f"{r['grad_rel_err']:.1e}",
        ))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows_)]
    fmt = " | ".join(f"{{:{w}}}" for w in widths)
    lines.append(fmt.format(*head))
    lines.append("-+-".join("-" * w for w in widths))
    lines += [fmt.format(*r) for r in rows_]
    lines.append("goals: eager/symloss >= 2.2x, compile/symloss >= 1.0x, >= 78% of copy, errors <= 1e-5")
    return "\n".join(lines)


def main(argv=None) -> int:
    global OUT_FILE, BUDGET_S, QUICK
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.environ.get("OUT") or str(Path(__file__).resolve().parent))
    p.add_argument("--log2n", type=int, default=28)
    p.add_argument("--check-n", type=int, default=50_001)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--inner", type=int, default=10)
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile baselines")
    p.add_argument("--budget-s", type=float, default=BUDGET_S, help="drop torch.compile when this runs short")
    p.add_argument("--quick", action="store_true", help="no grid sweep, ITEMS variants or overhead; fewer checks")
    p.add_argument("--skip-elementwise", action="store_true")
    args = p.parse_args(argv)
    BUDGET_S = args.budget_s
    QUICK = args.quick
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    OUT_FILE = out_dir / "gpu_bench.json"
    RESULTS["args"] = vars(args)

    try:
        import torch
    except ImportError:
        print("bench/gpu.py needs PyTorch with CUDA")
        return 2
    if not torch.cuda.is_available() or C.simulator():
        print("bench/gpu.py needs a CUDA GPU (and NUMBA_ENABLE_CUDASIM unset)")
        return 2
    torch.cuda.init()
    n = 1 << args.log2n
    environment(torch)
    checks(torch, args.check_n)
    copy = copy_bandwidth(torch, n, args.reps, args.inner)
    print(table(), flush=True)
    rows(torch, args.reps, args.inner, not args.no_compile)
    if not args.skip_elementwise:
        elementwise(torch, n, args.reps, args.inner, not args.no_compile, copy.get("tb_per_s"))
    if not QUICK:
        overhead(torch, args.reps)
    text = table()
    RESULTS["table"] = text
    save()
    print("\n" + text)
    print(f"\nnumbers: {OUT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
