"""vaelab: reproducible VAE experiments on MNIST."""
