"""symloss.torch against torch's built-in losses: forward + backward time.

Rows (all in one process, so ratios hold on a noisy machine):

  elementwise  mse, huber, bce_logits on N elements (float32, float64): torch eager
               built-in, symloss impl="generated", impl="kernel", impl="auto"
  row          cross_entropy at (N, K) float32: built-in vs symloss (generated)
  compile      (--compile) torch.compile of built-in vs of symloss (generated), fwd + bwd
  step         a small MLP training step (batch 256): built-in loss vs symloss loss, in
               alternating blocks of 50 steps (per-call overhead decides here)

Times are the best of --repeat runs after warm-ups.  --cuda runs the same rows on a
GPU (generated path; the kernel path is CPU only).

Usage: python bench/bench_torch.py [--n 10000000] [--ce 65536x1024] [--repeat 5] [--compile] [--cuda]
       [--threads T] [--json FILE] [--only elementwise|row|step ...] [--cpu-time]
"""
from __future__ import annotations

import argparse
import json
import platform
import time


def best_time(fn, repeat: int, sync=lambda: None) -> float:
    fn()
    fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


CLOCK = time.perf_counter


def interleaved(a, b, blocks: int, sync=lambda: None, steps: int = 50) -> tuple[float, float]:
    """Per-call times of a and b, alternating blocks of ``steps`` calls so that both see the
    same machine load: the best block mean of each (wall time, or with --cpu-time the
    process's CPU time, which a loaded machine disturbs less)."""
    for f in (a, b):
        for _ in range(steps):
            f()
    sync()
    times = ([], [])
    for _ in range(blocks):
        for f, out in zip((a, b), times):
            t0 = CLOCK()
            for _ in range(steps):
                f()
            sync()
            out.append((CLOCK() - t0) / steps)
    return min(times[0]), min(times[1])


def fwd_bwd(loss, x, *rest):
    def run():
        x.grad = None
        loss(x, *rest).backward()
    return run


def elementwise_rows(n, repeat, device, sync, compile_):
    import torch

    import symloss.torch as st

    out = []
    builtins = {"mse": torch.nn.MSELoss(), "huber": torch.nn.HuberLoss(), "bce_logits": torch.nn.BCEWithLogitsLoss()}
    for dtype in (torch.float32, torch.float64):
        g = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(n, dtype=dtype, device=device, generator=g).requires_grad_(True)
        y = torch.rand(n, dtype=dtype, device=device, generator=g)
        for name, ref in builtins.items():
            row = {"case": name, "n": n, "dtype": str(dtype).split(".")[1], "device": device}
            row["torch_eager_s"] = best_time(fwd_bwd(ref, x, y), repeat, sync)
            impls = ("generated",) if device != "cpu" else ("generated", "kernel", "auto")
            for impl in impls:
                row[f"symloss_{impl}_s"] = best_time(fwd_bwd(st.loss(name, impl=impl), x, y), repeat, sync)
            if compile_:
                row["torch_compiled_s"] = best_time(fwd_bwd(torch.compile(ref), x, y), repeat, sync)
                row["symloss_compiled_s"] = best_time(
                    fwd_bwd(torch.compile(st.loss(name, impl="generated")), x, y), repeat, sync)
            out.append(row)
            print(json.dumps(row), flush=True)
    return out


def row_rows(n, k, repeat, device, sync, compile_):
    import torch

    import symloss.torch as st

    g = torch.Generator(device=device).manual_seed(0)
    z = torch.randn(n, k, device=device, generator=g).requires_grad_(True)
    t = torch.randint(0, k, (n,), device=device, generator=g)
    row = {"case": "cross_entropy", "n": n, "k": k, "dtype": "float32", "device": device}
    row["torch_eager_s"] = best_time(fwd_bwd(torch.nn.CrossEntropyLoss(), z, t), repeat, sync)
    row["symloss_generated_s"] = best_time(fwd_bwd(st.loss("cross_entropy", impl="generated"), z, t), repeat, sync)
    row["symloss_auto_s"] = best_time(fwd_bwd(st.loss("cross_entropy"), z, t), repeat, sync)
    if compile_:
        row["torch_compiled_s"] = best_time(fwd_bwd(torch.compile(torch.nn.CrossEntropyLoss()), z, t), repeat, sync)
        row["symloss_compiled_s"] = best_time(fwd_bwd(torch.compile(st.loss("cross_entropy")), z, t), repeat, sync)
    print(json.dumps(row), flush=True)
    return [row]


def step_rows(repeat, device, sync):
    import torch

    import symloss.torch as st

    out = []
    for name, ref, target in (("mse", torch.nn.MSELoss(), "real"), ("cross_entropy", torch.nn.CrossEntropyLoss(),
                                                                      "index")):
        torch.manual_seed(0)
        dim = 1 if target == "real" else 10
        model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, dim)).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        x = torch.randn(256, 64, device=device)
        y = torch.randn(256, device=device) if target == "real" else torch.randint(0, 10, (256,), device=device)

        def step(loss):
            def run():
                opt.zero_grad()
                out_ = model(x)
                loss(out_.squeeze(-1) if dim == 1 else out_, y).backward()
                opt.step()
            return run

        row = {"case": f"step_{name}", "batch": 256, "device": device}
        row["torch_s"], row["symloss_s"] = interleaved(step(ref), step(st.loss(name)), repeat * 4, sync)
        row["overhead"] = round(row["symloss_s"] / row["torch_s"] - 1, 3)
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--ce", default="65536x1024")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--cuda", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--only", choices=("elementwise", "row", "step"), action="append",
                    help="run only these row groups (repeatable; default: all)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time the step rows by process CPU time (use with --threads 1 on a loaded machine)")
    args = ap.parse_args(argv)
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if args.cuda else "cpu"
    sync = torch.cuda.synchronize if args.cuda else (lambda: None)
    n, k = (int(v) for v in args.ce.split("x"))
    only = set(args.only or ("elementwise", "row", "step"))
    rows = elementwise_rows(args.n, args.repeat, device, sync, args.compile) if "elementwise" in only else []
    rows += row_rows(n, k, args.repeat, device, sync, args.compile) if "row" in only else []
    rows += step_rows(args.repeat, device, sync) if "step" in only else []
    meta = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
