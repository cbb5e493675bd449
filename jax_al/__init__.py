"""jax-al: deep active learning on images in compiled JAX/Flax.

Folders follow the pipeline: data -> models -> train -> features -> scores ->
strategies (select) -> loop -> report.

`jax_al.select(...)` picks from any model's arrays (`jax_al.selection`); it
is imported on first use, so `import jax_al` stays light (no jax import).
"""

__version__ = "0.1.0"


def __getattr__(name):
  if name in ("select", "Labeled", "Picks"):
    from jax_al import selection
    return getattr(selection, name)
  raise AttributeError(f"module 'jax_al' has no attribute {name!r}")
