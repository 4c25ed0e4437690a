"""The run dir and what sits on top of training: the files a run writes (names, schema, atomic
writes), provenance, W&B run handling and the multirun summary."""
