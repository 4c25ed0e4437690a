"""The layers of the package, kept by a test: who may import whom, no cycles, small modules.

vae/       model, loss, likelihood           torch only: no Lightning, no Hydra, no other layer
data/      idx files, data module            no model, no training, no Hydra
training/  LightningModule, callbacks, ...   uses vae/ and data/; no Hydra, no run dir
runs/      run dir files, provenance, W&B    on top of training
report/    tables, figures, W&B              on top of runs
config/    config location, resolvers, checks
train.py, evaluate.py, sample.py, report/__main__.py    entry points: never import each other
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "vaelab"
ENTRY_POINTS = {"vaelab.train", "vaelab.evaluate", "vaelab.sample", "vaelab.report.__main__"}
FRAMEWORKS = ("pytorch_lightning", "lightning", "torchmetrics", "hydra", "omegaconf", "wandb")
# layer -> modules/packages it must not import (prefix match)
FORBIDDEN = {
    "vaelab.vae": (*FRAMEWORKS, "vaelab.data", "vaelab.training", "vaelab.runs", "vaelab.report", "vaelab.config", *ENTRY_POINTS),
    "vaelab.data": ("hydra", "omegaconf", "wandb", "vaelab.vae", "vaelab.training", "vaelab.runs", "vaelab.report", "vaelab.config", *ENTRY_POINTS),
    "vaelab.training": ("hydra", "omegaconf", "wandb", "vaelab.runs", "vaelab.report", "vaelab.config", *ENTRY_POINTS),
    "vaelab.runs": ("vaelab.report", *ENTRY_POINTS),
    "vaelab.report": ("vaelab.train", "vaelab.evaluate"),
    "vaelab.config": ("vaelab.training", "vaelab.runs", "vaelab.report", *ENTRY_POINTS),
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at top level or inside functions (absolute names)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


def _resolve(name: str) -> str | None:
    """The vaelab module an imported name belongs to (``vaelab.runs.layout.write_json`` -> ``vaelab.runs.layout``)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def test_layers_import_only_what_they_may():
    bad = []
    for mod, path in MODULES.items():
        for layer, forbidden in FORBIDDEN.items():
            if mod == layer or mod.startswith(layer + "."):
                bad += [f"{mod} imports {imp}" for imp in sorted(imports(path)) if any(imp == f or imp.startswith(f + ".") for f in forbidden)]
    assert bad == []


def test_entry_points_do_not_import_each_other():
    for entry in ENTRY_POINTS:
        others = ENTRY_POINTS - {entry}
        assert not {_resolve(i) for i in imports(MODULES[entry])} & others, entry


def test_no_import_cycle():
    graph = {m: {r for i in imports(p) if (r := _resolve(i)) and r != m and not m.startswith(r + ".") and r != "vaelab"} for m, p in MODULES.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return [*path, m, n]
            if n not in state and (cycle := visit(n, [*path, m])):
                return cycle
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            assert visit(m, []) is None


def test_at_least_three_subpackages_and_no_module_over_300_lines():
    subpackages = [p.parent.name for p in PKG.glob("*/__init__.py") if p.parent.name != "conf"]
    assert len(subpackages) >= 3, subpackages
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 300}
    assert long == {}
