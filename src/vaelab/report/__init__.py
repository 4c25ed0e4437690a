"""``python -m vaelab.report``: tables and figures from finished sweeps (collect jobs, compute
statistics, write Markdown/CSV, draw figures, log to W&B)."""
