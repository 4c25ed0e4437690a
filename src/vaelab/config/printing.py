"""The resolved config as a tree at the start of a run (``print_config=true``, the default): what
the run will really do once every default, experiment and override is applied, in its log.

rich draws the tree (a well-kept library: indentation guides, YAML highlighting on a terminal, plain
text in a log file). The groups a reader checks first come first.
"""

from __future__ import annotations

import io
import sys
from typing import TextIO

from omegaconf import DictConfig, ListConfig, OmegaConf

from vaelab.joblog import to_log_file

# groups in the order a reader checks them; any other key follows in the config's own order
ORDER = ("data", "model", "trainer", "callbacks", "logger", "paths")


def print_config_tree(cfg: DictConfig, file: TextIO | None = None) -> None:
    """Print ``cfg`` (resolved) as a tree: one branch per group, its YAML beneath; plain keys
    (seed, tags, ...) as ``key: value`` leaves. The job's log file (train.log) gets it too."""
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config (resolved)", guide_style="dim")
    keys = [k for k in ORDER if k in cfg] + [k for k in cfg if k not in ORDER]
    for key in keys:
        node = cfg[key]
        if isinstance(node, (DictConfig, ListConfig)):
            text = OmegaConf.to_yaml(node, resolve=True).rstrip()
            tree.add(str(key)).add(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
        else:
            tree.add(OmegaConf.to_yaml({str(key): node}).strip())  # YAML spelling: true, null
    Console(file=file or sys.stdout, soft_wrap=True).print(tree)
    plain = io.StringIO()  # the job's log file gets the same tree, without a terminal's colours
    Console(file=plain, soft_wrap=True, no_color=True, force_terminal=False, width=200).print(tree)
    to_log_file(plain.getvalue().rstrip())
