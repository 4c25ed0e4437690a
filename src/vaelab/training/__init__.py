"""Training glue: the LightningModule (the objective, one screen), the CUDA-graph step, our
callbacks (progress, images, early stopping, wall clock), atomic checkpoint files and per-process
torch settings. Uses :mod:`vaelab.vae` and :mod:`vaelab.data`; knows nothing of Hydra."""
