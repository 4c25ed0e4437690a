"""The VAE itself: model, loss terms, the likelihood estimate and what a trained model shows
(``views``: codes, decoded images, grids). Plain PyTorch (torchvision draws the grids): no
Lightning, no Hydra, no files, so it reads like the derivation report and can be reused anywhere."""
