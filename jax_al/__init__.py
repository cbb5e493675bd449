"""jax-al: deep active learning on images in compiled JAX/Flax.

Folders follow the pipeline: data -> models -> train -> features -> scores ->
strategies (select) -> loop -> report.
"""

__version__ = "0.1.0"
