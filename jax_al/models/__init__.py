"""Models, looked up by name. Each returns (logits, features) from `__call__`."""

from __future__ import annotations

from flax import nnx
import jax.numpy as jnp

from jax_al.errors import ConfigError, suggest
from jax_al.models.cnn import SmallCNN
from jax_al.models.mlp import MLP
from jax_al.models.resnet import ResNet18

_MODELS = {"resnet18": ResNet18, "cnn": SmallCNN, "mlp": MLP}


def create_model(model_cfg, num_classes: int, image_shape: tuple[int, int, int], dtype: str,
                 rngs: nnx.Rngs) -> nnx.Module:
  """Builds the model named `model_cfg.name` with float32 parameters.

  `model_cfg.width` is checked with the other fields (config.check_config).
  """
  if model_cfg.name not in _MODELS:
    raise ConfigError("model.name", model_cfg.name, suggest(model_cfg.name, _MODELS))
  kw = dict(num_classes=num_classes, width=model_cfg.width, dtype=jnp.dtype(dtype), rngs=rngs)
  if model_cfg.name == "mlp":
    return MLP(image_shape=tuple(image_shape), **kw)
  return _MODELS[model_cfg.name](in_channels=int(image_shape[-1]), **kw)
