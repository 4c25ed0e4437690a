"""The network of a run, named by its import path (``model.net``): no list of names to keep in step.

A network is any :class:`~vaelab.vae.model.GaussianVAE` subclass whose constructor takes
``(latent_dim, hidden, log_scale_max)``; the package ships :class:`~vaelab.vae.model.VAE` (the
report's MLP, ``conf/model/vae_mlp.yaml``) and :class:`~vaelab.vae.conv.ConvVAE`
(``conf/model/vae_conv.yaml``). A class outside the package works the same way (docs/architecture.md).

Kept free of torch at import time: the config check resolves ``model.net`` before the heavy imports.
"""

from __future__ import annotations

import importlib
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


def short_name(path: str) -> str:
    """How tables and file names show a network: its class name (``VAE``, ``ConvVAE``)."""
    return str(path).rpartition(".")[2]
