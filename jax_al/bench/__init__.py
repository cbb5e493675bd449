"""Benchmarks: `python -m jax_al.bench <what> [--quick] [--json PATH]`.

what (comma-separated, or `all`):
  train      training throughput (images/s) of the real `jax_al.train.Trainer`,
             per step vs chunked vs whole-epoch `lax.scan`, float32/bfloat16,
             with epoch and extrapolated cycle times at the protocol's sizes
  features   feature-extraction throughput over a pool (`Trainer.predict`)
  protocol   the full active-learning protocol through `jax_al.loop.run`
  selection  selection time of the strategies (`jax_al.bench.selection`)

Every part prints a table and, with --json, (re)writes one JSON file after each
measurement, so a run cut short by a time limit keeps what it measured.
"""
