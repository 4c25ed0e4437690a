"""The loss-curve figure reads right: a row's seeds are shades of one colour with a marker each, all
drawn solid, and the training curve beside each is a light solid line, so no seed's validation
curve reads as a training curve; the legend says which is which."""

from __future__ import annotations

from pathlib import Path

from vaelab.report.collect import Job
from vaelab.report.figures import loss_curves
from vaelab.report.plots import _curves


def job(seed: int, kl: str) -> Job:
    history = [{"epoch": e, "val/loss": 200.0 - e + (e - 6) ** 2 * 0.5, "train/loss": 210.0 - 2 * e} for e in range(1, 11)]
    return Job(Path("/sweep"), str(seed), "completed", kl=kl, latent_dim=2, seed=seed, metrics={"history": history})


def test_seeds_are_shades_and_markers_and_training_is_light():
    curves = _curves([job(s, kl) for kl in ("paper", "analytic") for s in (0, 1, 2)])
    paper = [c for c in curves if c.label.startswith("paper")]
    assert len({c.color for c in paper}) == 3 and len({c.marker for c in paper}) == 3  # seeds apart by shade and marker
    assert {c.linestyle for c in curves} == {"-"}  # no dashed seed
    assert not {c.color for c in paper} & {c.color for c in curves if c.label.startswith("analytic")}

    fig = loss_curves(curves)
    ax = fig.axes[0]
    val = [ln for ln in ax.get_lines() if ln.get_label().startswith(("paper", "analytic"))]
    light = [ln for ln in ax.get_lines() if (ln.get_alpha() or 1.0) < 0.5]
    assert len(val) == 6 and len(light) == 6  # a light training line beside each validation curve
    assert {ln.get_linestyle() for ln in val + light} == {"-"}
    assert all((ln.get_alpha() or 1.0) == 1.0 for ln in val)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "validation" in legend and "training (light)" in legend and "paper seed 0" in legend
