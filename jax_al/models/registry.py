"""The model registry: a model is a class in its own module, registered by name.

Every model takes `(num_classes, image_shape, width, dtype, dropout, *,
rngs)` and its `__call__(x, train=False, mask=None, dropout_rng=None)`
returns (logits, features), both float32: `train` selects batch statistics
over the valid rows (`mask`) of a padded batch, and `dropout_rng`, when
given, drops features before the head (`model.dropout` is the rate).
"""

from __future__ import annotations

_REGISTRY: dict[str, type] = {}


def register(name: str):
  """Class decorator that adds a model class to the registry as `name`."""

  def wrap(cls):
    if name in _REGISTRY:
      raise ValueError(f"model {name!r} is registered twice")
    cls.name = name
    _REGISTRY[name] = cls
    return cls

  return wrap


def names() -> list[str]:
  return sorted(_REGISTRY)


def get(name: str):
  return _REGISTRY.get(name)
