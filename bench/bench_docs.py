"""How long `symloss docs` takes to render the catalog, and where the time goes.

Renders in memory (nothing is written) twice in one process: first with
``analyse=False`` (formulas, inputs, parameters: derivation and templates
only), then the full render (derived properties, plots from the kernels,
comparison figures).  The per-loss line is the full render's time for that
loss's entry (derivation, properties, kernel loads), read from the progress
callback; the plots and pages come after the last entry.

Usage: python bench/bench_docs.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from symloss.docs.render import render_docs

    t0 = time.perf_counter()
    render_docs(analyse=False)
    t1 = time.perf_counter()
    print(f"formulas only (analyse=False): {t1 - t0:.1f} s")

    marks: list[tuple[str, float]] = []
    t2 = time.perf_counter()
    files = render_docs(progress=lambda s: marks.append((s, time.perf_counter())))
    t3 = time.perf_counter()
    print(f"full render: {t3 - t2:.1f} s, {len(files)} files")
    ends = [t for _, t in marks[1:]] + [None]
    per = []
    for (label, start), end in zip(marks, ends):
        if end is not None:
            per.append((end - start, label.split()[-1]))
    for seconds, name in sorted(per, reverse=True)[:10]:
        print(f"  {name:<22} {seconds:6.2f} s")
    print(f"  last entry, plots and pages: {t3 - marks[-1][1]:.1f} s")


if __name__ == "__main__":
    main()
