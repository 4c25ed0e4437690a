"""The VAE itself: model, loss terms and the likelihood estimate. Plain PyTorch: no Lightning, no
Hydra, no files, so it reads like the derivation report and can be reused anywhere."""
