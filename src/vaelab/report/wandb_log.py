"""The report as a W&B run of its own (job type ``report``) in the sweeps' group: the table as a
W&B Table, the figures as images, each row's mean minimal validation loss in the summary, and the
jobs' best-checkpoint artifacts (when training uploaded them) as its inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaelab.errors import UserError
from vaelab.report.collect import Job, family


def log_wandb(
    jobs: Sequence[Job], rows: Sequence[dict[str, Any]], pngs: dict[str, Path], out: Path, wandb_dir: Path, mode: str, provenance: dict[str, str]
) -> str | None:
    """The table (a W&B Table) and figures in a run of job type ``report`` in the sweeps' group."""
    import wandb

    from vaelab.runs.reading import best_checkpoint
    from vaelab.runs.wandb_run import checkpoint_artifact, resolve_mode, use_artifacts, wandb_settings

    wb = next((settings for j in jobs if (settings := wandb_settings(j.dir))), {})
    group = wb.get("group") or jobs[0].sweep.name
    # the best checkpoints the report's numbers and figures come from, as W&B artifacts: kept in the
    # config, and declared as inputs online (the lineage; wandb refuses use_artifact offline)
    artifacts = []
    for j in jobs:
        if j.ok:
            try:
                name = checkpoint_artifact(best_checkpoint(j.dir))
            except UserError:  # no best checkpoint: nothing was uploaded either
                name = None
            if name:
                artifacts.append(name)
    wandb_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=wb.get("project", "vaelab"),
        group=group,
        job_type="report",
        name=f"report_{group}",
        tags=["report"],
        dir=str(wandb_dir),
        mode=resolve_mode(mode),
        config={"provenance": provenance, "out": str(out), "checkpoint_artifacts": artifacts},
        reinit="finish_previous",
    )
    use_artifacts(run, artifacts)
    columns = list(rows[0])
    table = wandb.Table(columns=columns, data=[[r[c] if not isinstance(r[c], float) or math.isfinite(r[c]) else None for c in columns] for r in rows])
    run.log({"val_loss_table": table, **{f"figures/{k}": wandb.Image(str(p)) for k, p in pngs.items()}})
    for r in rows:
        prefix = f"{fam}_" if (fam := family(r["model"], r["data"])) else ""
        run.summary[f"val_loss_min/{prefix}{r['kl']}_d{r['latent_dim']}"] = r["val_loss_min_mean"]
    run_dir = run.dir
    run.finish()
    return run_dir
