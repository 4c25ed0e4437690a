"""Copy the report's headline sentence and table (``results/val_loss.md``) into README.md, between
the markers ``<!-- results:begin -->`` and ``<!-- results:end -->``, so the README says exactly what
the last ``make reproduce`` wrote. ``--check`` only compares, exiting 1 when they differ.

    python scripts/readme_results.py [--results results/val_loss.md] [--readme README.md] [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def block(results_md: str) -> str:
    """The headline and the table of a val_loss.md (its title and provenance lines are left out)."""
    lines = results_md.splitlines()
    headline = next(ln for ln in lines if ln.startswith("The minimal loss of the validation set"))
    table = [ln for ln in lines if ln.startswith("|")]
    notes = [ln for ln in lines if ln.startswith("¹")]
    return "\n".join([headline, "", *table, *([""] + notes if notes else [])])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", type=Path, default=REPO / "results" / "val_loss.md")
    p.add_argument("--readme", type=Path, default=REPO / "README.md")
    p.add_argument("--check", action="store_true", help="compare only; exit 1 when the README differs")
    args = p.parse_args()
    readme = args.readme.read_text()
    if BEGIN not in readme or END not in readme:
        sys.exit(f"error: {args.readme} has no {BEGIN} ... {END} markers: add them where the results go")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{block(args.results.read_text())}\n{END}{tail}"
    if args.check:
        if new != readme:
            sys.exit(f"error: the results in {args.readme} differ from {args.results}: run python scripts/readme_results.py")
        print(f"{args.readme} matches {args.results}")
        return
    args.readme.write_text(new)
    print(f"wrote the headline and table of {args.results} into {args.readme}")


if __name__ == "__main__":
    main()
