"""Published numbers beside ours: an experiment may name the rows of a paper's table it follows
(``reference`` in ``conf/experiment/<name>.yaml``: test log p(x), nats per image, by latent dim).
The report sets our test log p(x) (the IW NLL, sign flipped) beside them, with the difference in
nats, and a headline sentence that ``scripts/readme_results.py`` copies into the README.

The rows are read from the experiment's YAML in the installed config, by the name the jobs'
Hydra record gives (``hydra.runtime.choices.experiment``): one definition, whatever the jobs
recorded of their own config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vaelab.errors import warn
from vaelab.paths import CONF_DIR
from vaelab.report.collect import Job
from vaelab.runs.layout import HYDRA_RECORD, HYDRA_SETTINGS

HEADING = "## Beside the published rows"


def experiment_references(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """The ``reference`` rows of the experiment the completed jobs ran ([] when they ran none, or
    one without published rows): ``[{"name": str, "log_px": {latent dim: nats}}, ...]``."""
    from omegaconf import OmegaConf

    names = set()
    for job in jobs:
        record = job.dir / HYDRA_RECORD / HYDRA_SETTINGS
        if job.ok and record.is_file():
            names.add(OmegaConf.select(OmegaConf.load(record), "hydra.runtime.choices.experiment"))
    names.discard(None)
    if len(names) != 1:
        if len(names) > 1:
            warn(f"the jobs ran {len(names)} experiments ({', '.join(sorted(map(str, names)))}): no published rows set beside them")
        return []
    path = CONF_DIR / "experiment" / f"{names.pop()}.yaml"
    rows = OmegaConf.to_container(OmegaConf.load(path)).get("reference") if path.is_file() else None
    return [{"name": str(r["name"]), "log_px": {int(d): float(v) for d, v in r["log_px"].items()}} for r in rows or []]


def _nats(value: float, signed: bool = False) -> str:
    """Nats to 2 decimals with a typographic minus (and a plus sign when ``signed``)."""
    return f"{value:{'+' if signed else ''}.2f}".replace("-", "−")


def beside(rows: Sequence[dict[str, Any]], references: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown lines: the heading, a headline sentence and the table of our test log p(x) per
    latent dim beside each published row, with our difference in nats (positive: ours is higher,
    i.e. better). [] without published rows or without an evaluated row of ours."""
    ours = [r for r in rows if r["n_iw"] and r["latent_dim"] in {d for ref in references for d in ref["log_px"]}]
    if not references or not ours:
        return []
    dims = sorted({r["latent_dim"] for r in ours})
    by_dim = {r["latent_dim"]: r for r in ours}  # the table's rows of these dims (one kl form in such an experiment)
    k = ",".join(sorted({str(r["iw_k"]) for r in ours}))

    def ours_cell(dim: int) -> str:
        r = by_dim[dim]
        std = r["test_iw_nll_std"]
        return f"**{_nats(-r['test_iw_nll_mean'])}" + (f" ± {std:.2f}" if std == std else "") + "**"

    seeds = "/".join(
        str(by_dim[d]["n_iw"]) if by_dim[d]["n_iw"] == by_dim[d]["n_seeds"] else f"{by_dim[d]['n_iw']} of {by_dim[d]['n_seeds']}" for d in dims
    )
    values = " and ".join(f"{ours_cell(d)} at latent dim {d}" for d in dims)
    gaps = "; ".join(
        f"{ref['name']}: " + ", ".join(_nats(-by_dim[d]["test_iw_nll_mean"] - ref["log_px"][d], signed=True) for d in dims if d in ref["log_px"])
        for ref in references
    )
    header = ["test log p(x), nats per image", *(f"latent dim {d}" for d in dims)]
    lines = [
        HEADING,
        "",
        f"Test log p(x) is {values} (IW estimate, k={k}, mean ± std over {seeds} seeds); ours minus the published row, in nats: {gaps}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        "| ours | " + " | ".join(ours_cell(d) for d in dims) + " |",
    ]
    for ref in references:
        cells = [
            f"{_nats(ref['log_px'][d])} (ours {_nats(-by_dim[d]['test_iw_nll_mean'] - ref['log_px'][d], signed=True)})" if d in ref["log_px"] else "–"
            for d in dims
        ]
        lines.append(f"| {ref['name']} | " + " | ".join(cells) + " |")
    return [*lines, ""]
