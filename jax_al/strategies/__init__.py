"""Selection strategies, one module each, looked up by name.

Importing this package imports every module in it, which registers them.
"""

import importlib
import pkgutil

from jax_al.strategies.base import Pool, Selection, Strategy, get_strategy, names, register

for _m in pkgutil.iter_modules(__path__):
  if _m.name != "base":
    importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["Pool", "Selection", "Strategy", "get_strategy", "names", "register"]
