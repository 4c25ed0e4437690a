"""The names of the data choices (``data.binarize``), without torch: the config check reads them
before any heavy import. Data set names live with their files (:mod:`vaelab.data.idx_files`)."""

from __future__ import annotations

from typing import Literal

Binarize = Literal["none", "dynamic", "static"]
# none = grey levels in [0, 1]; dynamic = a fresh Bernoulli draw per epoch; static = one fixed draw
BINARIZE_MODES: tuple[str, ...] = ("none", "dynamic", "static")
