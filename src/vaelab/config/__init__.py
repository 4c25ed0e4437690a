"""The Hydra configuration: where it lives (``vaelab/conf``, shipped in the package), the
resolvers it uses, and the checks that turn a bad value into one ``error:`` line."""
