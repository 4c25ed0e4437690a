"""Checking ``model.optimizer`` and ``model.scheduler`` before a run: the classes they name and
the arguments they pass, so that a mistyped target or argument is one ``error:`` line naming the
key, not a traceback from inside Lightning's ``configure_optimizers`` after the run dir is made.

Both are Hydra ``_partial_`` configs (conf/model/optimizer/, conf/model/scheduler/): the module
calls the optimiser with ``(parameters, lr=model.lr, fused=model.fused or None)`` and the scheduler
with the optimiser, so the learning rate and the fused kernel are not theirs to set.
"""

from __future__ import annotations

import inspect
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vaelab.errors import UserError

# what the module passes to the optimiser itself, from model.lr and model.fused
OWN_KEYS = {"lr": "model.lr", "fused": "model.fused"}


def _spec(cfg: DictConfig, key: str) -> dict[str, Any] | None:
    node = OmegaConf.select(cfg, key)
    if node is None:
        return None
    if not OmegaConf.is_dict(node):
        raise UserError(f"{key}={node!r} is invalid: expected a config group option (e.g. {_example(key)})")
    return OmegaConf.to_container(node, resolve=True)


def _example(key: str) -> str:
    return "model/optimizer=adamw" if key.endswith("optimizer") else "model/scheduler=plateau, or model/scheduler=null for none"


def _class(key: str, spec: dict[str, Any], base: type) -> type:
    """The class ``spec`` names by ``_target_``; it must be a ``base`` and built as a ``_partial_``."""
    from hydra.utils import get_class

    target = spec.get("_target_")
    if not target:
        raise UserError(f"{key} names no class (_target_): choose an option, e.g. {_example(key)}")
    try:
        cls = get_class(str(target))
    except (ImportError, ValueError, AttributeError) as exc:  # Hydra: not importable, or not a class
        raise UserError(f"{key}._target_={target} cannot be imported ({str(exc).splitlines()[0]}); e.g. {_example(key)}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise UserError(f"{key}._target_={target} is not a {base.__module__}.{base.__qualname__}; e.g. {_example(key)}")
    if spec.get("_partial_") is not True:
        raise UserError(f"{key}._partial_ must be true: vaelab builds the {key.rsplit('.', 1)[1]} itself, once the model exists")
    return cls


def _check_arguments(key: str, cls: type, spec: dict[str, Any], given: tuple[str, ...]) -> None:
    """Refuse an argument ``cls`` does not take (``given`` are the ones vaelab passes itself)."""
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for name in spec:
        if name.startswith("_"):
            continue
        if name in given and key.endswith("optimizer"):
            raise UserError(f"{key}.{name} is not set here: vaelab passes {OWN_KEYS[name]} to the optimiser; set {OWN_KEYS[name]}=... instead")
        if name not in params and not takes_any:
            accepted = ", ".join(p for p in params if p not in ("self", "params", "optimizer", *given))
            raise UserError(f"{key}.{name}: {cls.__name__} takes no such argument; it takes: {accepted}")


def check_optimisation(cfg: DictConfig) -> None:
    """Raise :class:`UserError` for an optimiser or scheduler config the module could not build."""
    import torch

    optimizer = _spec(cfg, "model.optimizer")
    if optimizer is not None:
        cls = _class("model.optimizer", optimizer, torch.optim.Optimizer)
        _check_arguments("model.optimizer", cls, optimizer, tuple(OWN_KEYS))
        fused = OmegaConf.select(cfg, "model.fused")
        if fused and "fused" not in inspect.signature(cls).parameters:
            raise UserError(f"model.fused=true but {cls.__name__} has no fused kernel: set model.fused=false")
    scheduler = _spec(cfg, "model.scheduler")
    if scheduler is not None:
        cls = _class("model.scheduler", scheduler, torch.optim.lr_scheduler.LRScheduler)
        _check_arguments("model.scheduler", cls, scheduler, ())
