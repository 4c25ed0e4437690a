"""The usual convolutional VAE for 28x28 images, with the latent interface of :class:`~vaelab.vae.model.VAE`.

Encoder: image ``[batch, 784]`` -> ``[batch, 1, 28, 28]`` -> conv 4x4 stride 2 (1 -> 32 channels,
14x14) -> conv 4x4 stride 2 (32 -> 64, 7x7) -> flatten (3136) -> the fully connected ``hidden``
layers -> ``m`` and ``σ``. The channels are the class's own argument ``channels`` (default
``(32, 64)``), set by ``model.net_args.channels`` (conf/model/vae_conv.yaml). Decoder: the mirror image, ending in a transposed conv that gives one
logit per pixel, flattened back to ``[batch, 784]``. ReLU after every layer but the last of each.

Inputs, outputs, eq. 2, the σ clamp and sampling are those of the MLP (:class:`GaussianVAE`), so
the loss, the metrics, the CUDA-graph step and the likelihood estimate work unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from vaelab.vae.model import IMAGE_PIXELS, GaussianVAE, _mlp

IMAGE_SIDE = 28


class ConvVAE(GaussianVAE):
    """Gaussian-latent VAE with a convolutional encoder and a transposed-convolution decoder.

    Args:
        latent_dim: size of the latent code ``c``.
        hidden: fully connected layers between the flattened conv features and the latent code
            (the decoder mirrors them), e.g. ``[256]``; ``[]`` maps the features to ``m, σ``
            directly. The MLP's ``model.hidden`` overrides (experiment=paper, the Optuna search)
            thus set this width.
        log_scale_max: σ is clamped to ``[-log_scale_max, log_scale_max]``.
        channels: conv channels, each layer halving the side (28 -> 14 -> 7): one or two layers
            (``model.net_args.channels``; a ``ValueError`` otherwise, which the config check shows).
    """

    def __init__(self, latent_dim: int, hidden: Sequence[int] = (256,), log_scale_max: float = 10.0, channels: Sequence[int] = (32, 64)):
        super().__init__(latent_dim, log_scale_max)
        self.hidden = [int(h) for h in hidden]
        self.channels = [int(c) for c in channels]
        if not 1 <= len(self.channels) <= 2:
            raise ValueError(f"channels must list one or two conv layers (28 -> 14 -> 7), got {self.channels}")
        side = IMAGE_SIDE >> len(self.channels)
        self.feature_shape = (self.channels[-1], side, side)
        features = self.channels[-1] * side * side
        widths = [1, *self.channels]

        enc: list[nn.Module] = [nn.Unflatten(1, (1, IMAGE_SIDE, IMAGE_SIDE))]
        for a, b in zip(widths[:-1], widths[1:]):
            enc += [nn.Conv2d(a, b, kernel_size=4, stride=2, padding=1), nn.ReLU()]
        enc += [nn.Flatten(1), _mlp([features, *self.hidden, 2 * self.latent_dim])]
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [_mlp([self.latent_dim, *reversed(self.hidden), features]), nn.ReLU(), nn.Unflatten(1, self.feature_shape)]
        rev = widths[::-1]
        for i, (a, b) in enumerate(zip(rev[:-1], rev[1:])):
            dec.append(nn.ConvTranspose2d(a, b, kernel_size=4, stride=2, padding=1))
            if i < len(rev) - 2:
                dec.append(nn.ReLU())
        dec.append(nn.Flatten(1))
        self.decoder = nn.Sequential(*dec)

    def decode(self, c: Tensor) -> Tensor:
        """Return Bernoulli logits ``[..., 784]`` for latent codes ``c`` (``[..., latent_dim]``)."""
        lead = c.shape[:-1]
        return self.decoder(c.reshape(-1, self.latent_dim)).reshape(*lead, IMAGE_PIXELS)
