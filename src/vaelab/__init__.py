"""vaelab: reproducible VAE experiments on MNIST."""

from importlib import metadata

try:
    # one definition of the version: pyproject.toml, read back from the installed package's metadata
    __version__ = metadata.version("vaelab")
except metadata.PackageNotFoundError:  # run from src/ without an install (bench/gpu_reproduce.sh --wheels)
    __version__ = "0+unknown"
