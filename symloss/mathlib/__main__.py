"""python -m symloss.mathlib [--check]: (re)write symloss/mathlib/kernels.py."""
import argparse
import sys
from pathlib import Path

from . import module_text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="fail if kernels.py is out of date")
    args = ap.parse_args(argv)
    path = Path(__file__).with_name("kernels.py")
    text = module_text()
    if args.check:
        if not path.exists() or path.read_text() != text:
            print(f"{path} is out of date: run python -m symloss.mathlib", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
