"""The network of a run, named by its import path (``model.net``): no list of names to keep in step.

A network is any :class:`~vaelab.vae.model.GaussianVAE` subclass whose constructor takes
``(latent_dim, hidden, log_scale_max)`` (``model.latent_dim``, ``model.hidden``,
``model.log_scale_max``), then keyword arguments of its own, set by ``model.net_args`` (e.g.
:class:`~vaelab.vae.conv.ConvVAE`'s ``channels``): a new setting of a network is an argument of
its class and a line of its YAML, recorded in the checkpoint with the rest. The package ships
:class:`~vaelab.vae.model.VAE` (the report's MLP, ``conf/model/vae_mlp.yaml``) and
:class:`~vaelab.vae.conv.ConvVAE` (``conf/model/vae_conv.yaml``). A class outside the package
works the same way (docs/architecture.md).

Kept free of torch at import time: the config check resolves ``model.net`` before the heavy imports.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any


def net_class(path: str) -> type:
    """The class ``path`` names (``package.module.Class``); ``ValueError`` with the reason when it
    cannot be imported or is not a :class:`~vaelab.vae.model.GaussianVAE`."""
    module_name, _, name = str(path).rpartition(".")
    if not module_name:
        raise ValueError(f"{path!r} is not an import path: write package.module.Class, e.g. vaelab.vae.model.VAE")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{path!r} cannot be imported ({type(exc).__name__}: {exc})") from None
    from vaelab.vae.model import GaussianVAE

    if not (isinstance(cls, type) and issubclass(cls, GaussianVAE)):
        raise ValueError(f"{path!r} is not a subclass of vaelab.vae.model.GaussianVAE")
    return cls


def build_net(path: str, latent_dim: int, hidden: Sequence[int], log_scale_max: float, net_args: Mapping[str, Any] | None = None) -> Any:
    """An instance of the network class ``path`` (see :func:`net_class`), given the class's own
    keyword arguments ``net_args`` (``model.net_args``; None: none)."""
    return net_class(path)(latent_dim, list(hidden), log_scale_max, **dict(net_args or {}))


# the constructor's first arguments, which build_net passes by position from model.latent_dim,
# model.hidden and model.log_scale_max; what follows them is the class's own (model.net_args)
SHARED_ARGS = ("latent_dim", "hidden", "log_scale_max")


def own_arguments(cls: type) -> tuple[dict[str, Any], bool]:
    """The keyword arguments of network class ``cls``'s own (those after :data:`SHARED_ARGS`),
    each with its default (``inspect.Parameter.empty``: none), and whether it takes any keyword
    (``**kwargs``)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1 + len(SHARED_ARGS) :]
    named = {p.name: p.default for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


def unknown_arguments(cls: type, net_args: Mapping[str, Any]) -> list[str]:
    """The names in ``net_args`` that ``cls`` does not take as arguments of its own (the shared
    ones included: they come from their own keys)."""
    named, any_keyword = own_arguments(cls)
    return [k for k in net_args if k in SHARED_ARGS or (k not in named and not any_keyword)]


def check_net_args(net: str, latent_dim: int, hidden: Sequence[int], log_scale_max: float, net_args: Mapping[str, Any]) -> None:
    """``ValueError``, one line naming ``model.net_args.<name>``, when ``net_args`` holds an argument
    the network class ``net`` (:func:`net_class`) does not take as its own, an object to build (``_target_``: a checkpoint records plain
    values only), or a value the class refuses when built: its ``ValueError`` or ``TypeError``, or
    torch's ``RuntimeError`` for a layer it cannot make (a negative width). Built on the CPU
    (~30 ms for ConvVAE) with the random state kept, so a run's own initialisation is unchanged."""
    cls = net_class(net)
    for name in unknown_arguments(cls, net_args):
        if name in SHARED_ARGS:
            raise ValueError(f"model.net_args.{name} is set by model.{name}, not in model.net_args: remove it there and set model.{name}")
        own = ", ".join(own_arguments(cls)[0])
        takes = f"the arguments of its own are {own}" if own else "it takes no argument of its own"
        raise ValueError(f"model.net_args.{name} is not an argument of {net}: {takes}; remove it, or pick the model= it belongs to")
    target = _first_target(net_args, "model.net_args")
    if target:
        raise ValueError(
            f"{target} is an object to build (_target_): a network's own arguments are plain values (numbers, strings, lists) that its "
            "checkpoint records; pass a plain value and build the object in the class"
        )
    import torch

    with torch.random.fork_rng(devices=[]):
        try:
            cls(latent_dim, list(hidden), log_scale_max, **net_args)
        except (ValueError, TypeError, RuntimeError) as exc:
            shown = " ".join(f"model.net_args.{k}={v}" for k, v in net_args.items()) or "model.net_args={}"
            first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
            raise ValueError(f"{net} refuses {shown} (with model.hidden={list(hidden)}): {first}") from None


def _first_target(value: Any, key: str) -> str | None:
    """The key of the first node under ``value`` that holds a ``_target_`` (Hydra would build it)."""
    if isinstance(value, Mapping):
        if "_target_" in value:
            return key
        found = (_first_target(v, f"{key}.{k}") for k, v in value.items())
    elif isinstance(value, list):
        found = (_first_target(v, f"{key}.{i}") for i, v in enumerate(value))
    else:
        return None
    return next((f for f in found if f), None)


def _plain(value: Any) -> Any:
    # tuples (and OmegaConf's lists) as lists: a default (32, 64) and a recorded [32, 64] are the same setting
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def net_arguments(path: str, net_args: Mapping[str, Any] | None) -> dict[str, Any]:
    """The own arguments the network class ``path`` is built with: its defaults, overridden by
    ``net_args``. Two runs whose ``model.net_args`` are written differently (one leaving a default
    unset, a run recorded before the key existed) build the same network when these are equal."""
    named, _ = own_arguments(net_class(path))
    defaults = {k: v for k, v in named.items() if v is not inspect.Parameter.empty}
    return _plain({**defaults, **dict(net_args or {})})


def short_name(path: str) -> str:
    """How tables and file names show a network: its class name (``VAE``, ``ConvVAE``)."""
    return str(path).rpartition(".")[2]
