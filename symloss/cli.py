"""The `symloss` command line: generate, list, show, check, new."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import catalog
from ._paths import generated_dir, specs_dir
from .errors import SymlossError


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_generate(args) -> int:
    from .render.generate import generate

    changed = generate(Path(args.specs), Path(args.out), _progress)
    print(f"generated {args.out}: {len(changed)} file(s) changed")
    for rel in changed:
        print(f"  {rel}")
    return 0


def cmd_list(args) -> int:
    from .spec import load_spec

    specs = [load_spec(path) for path in catalog.spec_paths(args.specs)]
    width = max((len(s.name) for s in specs), default=0) + 2
    for spec in specs:
        params = ", ".join(f"{p.name}={p.default:g}" + (" (differentiable)" if p.differentiable else "")
                           for p in spec.params)
        sig = ", ".join(i.name for i in spec.inputs) + (f"; {params}" if params else "")
        print(f"{spec.name:<{width}} {spec.kind:<12} ({sig})  {spec.title}")
    return 0


def cmd_show(args) -> int:
    import sympy as sp

    from .derive import Derivation
    from .derive.rewrites import describe
    from .spec import load_spec

    path = Path(args.name) if args.name.endswith(".toml") else catalog.spec_path(args.name)
    spec = load_spec(path)
    if spec.kind == "row":  # one loss per row: derive/row.py describes it
        from .derive.row import describe as describe_row

        print("\n".join(describe_row(spec)))
        return 0
    d = Derivation(spec)
    print(f"{spec.name}: {spec.title} [{spec.kind}]")
    if spec.description:
        print(f"  {spec.description}")
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

    changed = write_docs(Path(args.out), progress=_progress)
    print(f"docs {args.out}: {len(changed)} file(s) changed")
    return 0


def cmd_check(args) -> int:
    from .check import check_loss
    from .runtime import load

    names = args.names or catalog.names()
    for name in names:  # unknown names fail before any work starts
        catalog.spec_path(name)
    failures = 0
    for k, name in enumerate(names, 1):
        _progress(f"[{k}/{len(names)}] checking {name}")
        for result in check_loss(load(name)):
            if not result.ok or args.verbose:
                print(result)
            failures += not result.ok
    print(f"{len(names)} loss(es) checked, {failures} failure(s)")
    return 1 if failures else 0


_SPEC_TEMPLATE = """name = "{name}"
title = "{title}"
kind = "elementwise"
description = ""
loss = {expr}

[inputs]
{inputs}
"""


def cmd_new(args) -> int:
    from .spec import load_spec
    from .render.write import write_atomic

    out = Path(args.specs) / f"{args.name}.toml"
    if out.exists() and not args.force:
        raise SymlossError(f"{out} already exists (use --force to overwrite)")
    inputs = "\n".join(f'{n} = "{r}"' for n, r in (("y", "target"), ("yhat", "prediction")))
    text = _SPEC_TEMPLATE.format(name=args.name, title=args.title or args.name, expr=_toml_str(args.expr), inputs=inputs)
    tmp = out.with_name(f".{out.name}.check.toml")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(text, encoding="utf-8")
    try:  # validate before the real file appears
        from .spec import spec_from_table
        import tomllib

        spec_from_table(tomllib.loads(text), source=str(out))
    finally:
        tmp.unlink(missing_ok=True)
    write_atomic(out, text)
    load_spec(out)
    print(f"wrote {out}; run `symloss generate` to build its kernels")
    return 0


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="symloss", description="Symbolic loss derivation and code generation")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="render kernel modules for every spec")
    p.add_argument("--specs", default=str(specs_dir()), help="spec folder (default: the built-in catalog)")
    p.add_argument("--out", default=str(generated_dir()), help="output folder (default: the built-in generated/)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("list", help="list the losses in the catalog")
    p.add_argument("--specs", default=str(specs_dir()))
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="formulas, gradient, Hessian and rewrites of a loss")
    p.add_argument("name", help="a built-in name or a path to a spec file")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("docs", help="render formula docs, properties and plots for every spec")
    p.add_argument("--out", default=str(generated_dir() / "docs"), help="output folder (default: generated/docs)")
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("check", help="verify kernels against finite differences and mpmath")
    p.add_argument("names", nargs="*", help="losses to check (default: all built-in)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every check, not only failures")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("new", help="write a spec file for a new loss from one expression")
    p.add_argument("name")
    p.add_argument("--expr", required=True, help='the loss in y (target) and yhat (prediction), e.g. "abs(yhat - y)**1.5"')
    p.add_argument("--title", default="")
    p.add_argument("--specs", default=str(specs_dir()))
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_new)
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


if __name__ == "__main__":
    sys.exit(main())
