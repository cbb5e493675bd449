"""Models, one module each, looked up by `model.name`.

Importing this package imports every module in it, which registers the
models (`registry.register`). Each returns (logits, features) from
`__call__`.
"""

from __future__ import annotations

import importlib
import pkgutil

from flax import nnx
import jax.numpy as jnp

from jax_al.models import registry
from jax_al.models.registry import names, register

for _m in pkgutil.iter_modules(__path__):
  if _m.name not in ("layers", "registry"):
    importlib.import_module(f"{__name__}.{_m.name}")


def create_model(model_cfg, num_classes: int, image_shape: tuple[int, int, int], dtype: str,
                 rngs: nnx.Rngs) -> nnx.Module:
  """Builds the model named `model_cfg.name` with float32 parameters.

  `model_cfg.width` and `model_cfg.dropout` are checked with the other
  fields (config.check_config).
  """
  from jax_al import config as config_lib  # lazy: the checks import the registries

  config_lib.check_field("model.name", model_cfg.name)  # a caller that skipped check_config
  return registry.get(model_cfg.name)(num_classes=num_classes, image_shape=tuple(image_shape), width=model_cfg.width,
             dtype=jnp.dtype(dtype), dropout=float(model_cfg.dropout), rngs=rngs)


__all__ = ["create_model", "names", "register"]
