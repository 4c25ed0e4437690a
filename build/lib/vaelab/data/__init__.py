"""MNIST-format data: the idx files on disk (checks, checksums) and the Lightning data module
that turns them into seeded tensor batches. Knows nothing of the model."""
