"""Open generated HTML docs pages in headless Chromium and save a screenshot of each.

    python scripts/screenshot_docs.py                      # index + a few loss pages
    python scripts/screenshot_docs.py losses/huber.html --out /tmp/shots --height 2600

The pages use MathML, which Chromium typesets natively (no script, no network),
so a screenshot shows whether the formulas render as math rather than raw text.
Exits 2 when no Chromium/Chrome binary is found (install one with
`apt-get install chromium`).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PAGES = ["index.html", "guide.html", "compare.html", "losses/huber.html", "losses/bce_logits.html"]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(browser: str, page: Path, out: Path, width: int = 1280, height: int = 2400, timeout: float = 60) -> Path:
    """Render ``page`` (an HTML file) to the PNG ``out``; raises on failure."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="symloss-chromium-") as profile:
        cmd = [
            browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
            f"--window-size={width},{height}", f"--screenshot={out}", page.resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        raise RuntimeError(f"{browser} failed on {page} (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pages", nargs="*", default=DEFAULT_PAGES, help="pages relative to --docs")
    ap.add_argument("--docs", default=str(ROOT / "generated" / "docs"), help="the rendered docs folder")
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "symloss-docs-shots"))
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2400)
    args = ap.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("no Chromium found; install one, e.g. `apt-get install chromium`", file=sys.stderr)
        return 2
    docs, out = Path(args.docs), Path(args.out)
    for rel in args.pages:
        target = out / (rel.replace("/", "_").removesuffix(".html") + ".png")
        screenshot(browser, docs / rel, target, args.width, args.height)
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
