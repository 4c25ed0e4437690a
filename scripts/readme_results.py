"""Copy the report's headline sentence and table (``results/val_loss.md``) into README.md, between
the markers ``<!-- results:begin -->`` and ``<!-- results:end -->``, and the literature comparison of
``results/literature/val_loss.md`` (its "Beside the published rows" sentence and table) between
``<!-- literature:begin -->`` and ``<!-- literature:end -->`` where the README has those markers, so
the README says exactly what the last reproduction wrote. ``--check`` only compares, exiting 1 when
they differ.

    python scripts/readme_results.py [--results results/val_loss.md] [--literature results/literature/val_loss.md]
                                     [--readme README.md] [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
LIT_BEGIN, LIT_END = "<!-- literature:begin -->", "<!-- literature:end -->"
# the literature section's heading in a report's val_loss.md (vaelab.report.reference.HEADING)
PUBLISHED = "## Beside the published rows"


def published_block(results_md: str) -> str:
    """The sentence and table under the "Beside the published rows" heading of a val_loss.md."""
    lines = results_md.splitlines()
    if PUBLISHED not in lines:
        sys.exit(f"error: the literature report has no '{PUBLISHED}' section: run scripts/reproduce.sh literature")
    section = lines[lines.index(PUBLISHED) + 1 :]
    sentence = next(ln for ln in section if ln.startswith("Test log p(x)"))
    start = next(i for i, ln in enumerate(section) if ln.startswith("|"))
    table = []
    for ln in section[start:]:
        if not ln.startswith("|"):
            break
        table.append(ln)
    return "\n".join([sentence, "", *table])


def _replace(readme: str, begin: str, end: str, text: str) -> str:
    head, rest = readme.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{text}\n{end}{tail}"


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
    p.add_argument("--literature", type=Path, default=REPO / "results" / "literature" / "val_loss.md")
    p.add_argument("--readme", type=Path, default=REPO / "README.md")
    p.add_argument("--check", action="store_true", help="compare only; exit 1 when the README differs")
    args = p.parse_args()
    readme = args.readme.read_text()
    if BEGIN not in readme or END not in readme:
        sys.exit(f"error: {args.readme} has no {BEGIN} ... {END} markers: add them where the results go")
    new = _replace(readme, BEGIN, END, block(args.results.read_text()))
    if LIT_BEGIN in new and LIT_END in new:
        new = _replace(new, LIT_BEGIN, LIT_END, published_block(args.literature.read_text()))
    if args.check:
        if new != readme:
            sys.exit(f"error: the results in {args.readme} differ from {args.results}: run python scripts/readme_results.py")
        print(f"{args.readme} matches {args.results}")
        return
    args.readme.write_text(new)
    print(f"wrote the results of {args.results} (and {args.literature} where marked) into {args.readme}")


if __name__ == "__main__":
    main()
