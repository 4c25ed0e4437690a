"""The names of the VAE's choices (``model.kl``, ``model.recon``, ``model.arch``), without torch:
the config check (:mod:`vaelab.config.schema`) reads them before any heavy import, so a wrong value
is reported in a second. The implementations (:mod:`vaelab.vae.loss`, :mod:`vaelab.vae.archs`)
check at import that they implement exactly these."""

from __future__ import annotations

from typing import Literal

KlForm = Literal["paper", "analytic"]
ReconForm = Literal["bce", "mse"]
Arch = Literal["mlp", "conv"]

# latent penalties: paper = eq. 3 of the derivation report, analytic = the exact KL of eq. 2's posterior
KL_FORMS: tuple[str, ...] = ("paper", "analytic")
# reconstruction terms: bce = Bernoulli cross-entropy on grey levels, mse = squared error
RECON_FORMS: tuple[str, ...] = ("bce", "mse")
# networks: mlp = the report's 784-400-d-400-784, conv = a convolutional encoder/decoder
ARCH_NAMES: tuple[str, ...] = ("mlp", "conv")
