"""vaelab's Hydra launcher plugin (see slurm.py)."""
