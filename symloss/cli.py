"""The `symloss` command line: generate, list, show, check, new."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import catalog
from ._paths import generated_dir, specs_dir
from .errors import SymlossError


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _project():
    from .project import load_project

    return load_project()


def _specs_dir(args) -> Path:
    """--specs, else [tool.symloss] specs, else the built-in catalog."""
    if getattr(args, "specs", None):
        return Path(args.specs)
    project = _project()
    return project.specs if project.specs is not None else specs_dir()


def _user_specs(args) -> Path | None:
    folder = _specs_dir(args)
    return None if catalog.is_builtin_dir(folder) else folder


def _folder_specs(args) -> list[Path]:
    paths = catalog.spec_paths(_specs_dir(args))
    catalog.check_shadowing(paths, args.shadow)
    return paths


def _named_specs(args, items: list[str]) -> list[Path]:
    """Spec paths for names or paths given on the command line; the whole folder if none."""
    if not items:
        return _folder_specs(args)
    paths = [catalog.resolve(item, _user_specs(args)) for item in items]
    catalog.check_shadowing(paths, args.shadow)
    return paths


def _plain(text: str) -> str:
    """Spec text for the terminal: non-printable characters (escape sequences, line breaks) as escapes."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _took(start: float) -> str:
    return f"in {time.perf_counter() - start:.1f} s"


def cmd_generate(args) -> int:
    from . import backends
    from .generate import generate

    start = time.perf_counter()
    specs = _named_specs(args, args.names) if args.names else _specs_dir(args)
    if not args.names:
        catalog.check_shadowing(catalog.spec_paths(specs), args.shadow)
    names = None
    if args.backend:
        unknown = sorted(set(args.backend) - set(backends.names()))
        if unknown:
            raise SymlossError(f"unknown backend(s) {', '.join(unknown)}; backends: {', '.join(backends.names())}")
        names = args.backend
    out = Path(args.out) if args.out else (_project().out or generated_dir())
    changed = generate(specs, out, _progress, names)
    print(f"generated {out}: {len(changed)} file(s) changed {_took(start)}")
    for rel in changed:
        print(f"  {rel}")
    return 0


def cmd_list(args) -> int:
    from .spec import load_spec

    specs = [load_spec(path) for path in _folder_specs(args)]
    width = max((len(s.name) for s in specs), default=0) + 2
    for spec in specs:
        params = ", ".join(f"{p.name}={p.default:g}" + (" (differentiable)" if p.differentiable else "")
                           for p in spec.params)
        sig = ", ".join(i.name for i in spec.inputs) + (f"; {params}" if params else "")
        print(f"{spec.name:<{width}} {spec.kind:<12} ({sig})  {_plain(spec.title)}")
    return 0


def cmd_show(args) -> int:
    import sympy as sp

    from .derive import Derivation
    from .derive.rewrites import describe
    from .spec import load_spec

    (path,) = _named_specs(args, [args.name])
    spec = load_spec(path)
    if spec.kind == "row":  # one loss per row: derive/row.py describes it
        from .derive.row import describe as describe_row

        print("\n".join(_plain(line) for line in describe_row(spec)))
        from .docs.row_properties import row_properties

        print("properties:")
        for label, value in row_properties(spec).lines():
            print(f"  {label}: {value}")
        return 0
    d = Derivation(spec)
    print(f"{spec.name}: {_plain(spec.title)} [{spec.kind}]")
    if spec.description:
        print(f"  {_plain(spec.description)}")
    print("inputs:         " + ", ".join(f"{i.name} ({i.role}, {i.domain})" for i in spec.inputs))
    if spec.params:
        print("params:         " + ", ".join(f"{p.name} = {p.default:g}" + (" (differentiable)" if p.differentiable else "")
                                             for p in spec.params))
    print(f"loss:           {sp.sstr(spec.loss)}")
    for name, g in zip((i.name for i in spec.predictions), d.stable.grads):
        print(f"d/d{name}:".ljust(16) + sp.sstr(g))
    for (i, j), h in d.stable.hessian.items():
        a, b = spec.predictions[i].name, spec.predictions[j].name
        print(f"d2/d{a}d{b}:".ljust(16) + sp.sstr(h))
    for p, e in zip(d.param_wrt, d.stable.params):
        given = " (closed form from [derivatives])" if p.name in spec.param_derivatives else ""
        print(f"d/d{p.name}:".ljust(16) + sp.sstr(e) + given)
    print("rewrites:       " + ("; ".join(f"{r} ({describe(r)})" for r in d.rewrites) or "none"))
    print("latex:")
    for key, tex in d.latex.items():
        print(f"  {d.latex_labels[key]} = {tex}")
    if spec.kind == "elementwise":
        from .docs.properties import properties

        print("properties:")
        for label, value in properties(spec).lines():
            print(f"  {label}: {value}")
    return 0


def cmd_docs(args) -> int:
    from .docs.render import write_docs

    start = time.perf_counter()
    paths = _folder_specs(args)
    if args.with_catalog and _user_specs(args) is not None:
        paths = catalog.spec_paths() + paths
    out = Path(args.out) if args.out else (_project().docs or generated_dir() / "docs")
    changed = write_docs(out, paths, progress=_progress)
    print(f"docs {out}: {len(paths)} loss(es), {len(changed)} file(s) changed {_took(start)}")
    return 0


def _check_one(path: str, builtin: bool) -> list[tuple[bool, str]]:
    """Every check of one loss as (ok, line); a top-level function so a worker process can run it."""
    from .check import check_loss
    from .runtime import load

    loss = load(Path(path).stem) if builtin else load(Path(path))
    return [(result.ok, str(result)) for result in check_loss(loss)]


def _jobs(requested: int | None, n: int) -> int:
    if requested is not None:
        if requested < 1:
            raise SymlossError(f"--jobs must be at least 1, not {requested}")
        return min(requested, n)
    return max(1, min(_usable_cpus(), MAX_DEFAULT_JOBS, n))


MAX_DEFAULT_JOBS = 8  # each worker holds its own Numba and SymPy (about half a GB)


def _usable_cpus() -> int:
    """CPUs this process may run on: its affinity, capped by a container's CPU quota,
    which the affinity does not show."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return cpus if quota is None else min(cpus, quota)


def _cgroup_cpu_quota() -> int | None:
    """The CPU quota of this process's cgroup (v2, else v1), rounded up; None where unlimited or unknown."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text().strip()
            period = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        return max(1, -(-int(quota) // int(period)))
    except ValueError:
        return None


def cmd_check(args) -> int:
    start = time.perf_counter()
    paths = _named_specs(args, args.names)  # unknown names fail before any work starts
    work = [(str(path), catalog.is_builtin_dir(path.parent)) for path in paths]
    jobs = _jobs(args.jobs, len(work))
    failures = 0

    def report(results):
        nonlocal failures
        for ok, line in results:
            if not ok or args.verbose:
                print(line)
            failures += not ok

    if jobs == 1:
        for k, (path, item) in enumerate(zip(paths, work), 1):
            _progress(f"[{k}/{len(paths)}] checking {path.stem}")
            report(_check_one(*item))
    else:
        # Losses are independent and their checks compile-bound (Numba, one core each): one process per
        # core, each writing its own modules' caches.  Spawned, not forked: the parent's threads and
        # Numba state do not carry over.  Reported in the given order, whatever order they finish in.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _progress(f"checking {len(paths)} loss(es) in {jobs} processes")
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_check_one, *item) for item in work]
            for k, (path, future) in enumerate(zip(paths, futures), 1):
                results = future.result()
                _progress(f"[{k}/{len(paths)}] checked {path.stem}")
                report(results)
    print(f"{len(paths)} loss(es) checked, {failures} failure(s) {_took(start)}")
    return 1 if failures else 0


_SPEC_TEMPLATE = """name = {name}
title = {title}
kind = "elementwise"
description = ""
loss = {expr}

[inputs]
y = "target"
yhat = "prediction"
"""


def cmd_new(args) -> int:
    import tomllib

    from .render.write import write_atomic
    from .spec import spec_from_table

    folder = Path(args.specs) if args.specs else (_project().specs or Path("specs"))
    out = folder / f"{args.name}.toml"
    if not catalog.is_builtin_dir(folder):
        catalog.check_shadowing([out], args.shadow)
    if out.exists() and not args.force:
        raise SymlossError(f"{out} already exists (use --force to overwrite)")
    text = _SPEC_TEMPLATE.format(name=_toml_str(args.name), title=_toml_str(args.title or args.name),
                                 expr=_toml_str(args.expr))
    spec_from_table(tomllib.loads(text), source=str(out))  # validate before the file appears
    write_atomic(out, text)
    print(f"wrote {out}; run `symloss generate` to build its kernels")
    return 0


def _toml_str(text: str) -> str:
    """A TOML basic string holding ``text`` exactly (quotes, backslashes and control characters escaped)."""
    escaped = "".join(
        "\\" + ch if ch in '"\\' else f"\\u{ord(ch):04X}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch
        for ch in text
    )
    return f'"{escaped}"'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symloss", description="Symbolic loss derivation and code generation",
        epilog="Defaults come from [tool.symloss] (specs, out, docs) in the nearest pyproject.toml, "
               "else the built-in catalog.")
    sub = parser.add_subparsers(dest="command", required=True)
    specs_help = "spec folder (default: [tool.symloss] specs, else the built-in catalog)"
    shadow_help = "let a spec of yours take a built-in loss's name"

    def command(name, func, help):
        p = sub.add_parser(name, help=help)
        p.add_argument("--specs", default=None, help=specs_help)
        p.add_argument("--shadow", action="store_true", help=shadow_help)
        p.set_defaults(func=func)
        return p

    p = command("generate", cmd_generate, "render kernel modules for every spec")
    p.add_argument("names", nargs="*", help="only these losses (names or spec paths); others' modules are kept")
    p.add_argument("--out", default=None, help="output folder (default: [tool.symloss] out, else the built-in generated/)")
    p.add_argument("--backend", action="append", default=None,
                   help="only this backend (repeatable): numba_cpu, numba_cuda, torch, jax (default: all)")

    command("list", cmd_list, "list the losses of a spec folder")

    p = command("show", cmd_show, "formulas, gradient, Hessian and rewrites of a loss")
    p.add_argument("name", help="a loss name (your spec folder's, else built-in) or a spec file's path")

    p = command("docs", cmd_docs, "render formula docs, properties and plots for every spec")
    p.add_argument("--out", default=None, help="output folder (default: [tool.symloss] docs, else generated/docs)")
    p.add_argument("--with-catalog", action="store_true", help="also render the built-in losses, for comparison")

    p = command("check", cmd_check, "verify kernels against finite differences and mpmath")
    p.add_argument("names", nargs="*", help="loss names or spec paths (default: every spec of the folder)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every check, not only failures")
    p.add_argument("-j", "--jobs", type=int, default=None,
                   help="losses checked at once, one process each (default: the CPUs this process may use)")

    p = command("new", cmd_new, "write a spec file for a new loss from one expression")
    p.add_argument("name")
    p.add_argument("--expr", required=True, help='the loss in y (target) and yhat (prediction), e.g. "abs(yhat - y)**1.5"')
    p.add_argument("--title", default="")
    p.add_argument("--force", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SymlossError as exc:
        print(f"symloss: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `symloss list | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail again
        return 141  # what a shell reports for a process ended by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
