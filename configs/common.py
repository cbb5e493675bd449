"""Fields every config shares. Dataset configs start from `base()`.

Plain Python returning a ConfigDict (big_vision style). Every field, its
default, its check and its meaning are declared once, in the library's
schema (`jax_al/schema.py`); `base()` is that schema's ConfigDict. Fields
whose default is "unset" are typed placeholders, so that they can still be
set from the command line.
"""

from ml_collections import config_dict

from jax_al import schema


def base() -> config_dict.ConfigDict:
  """Every field of a run's config at its default."""
  return schema.defaults()


def feature_head(c: config_dict.ConfigDict) -> None:
  """Sets `c` to train jax-al's MLP head on fixed features (no pixels):
  no augmentation, a fresh 256-unit head per cycle, 30 epochs of SGD."""
  c.augment.flip = False    # no pixels to flip: the features are fixed
  c.augment.crop_pad = 0
  c.model.name = "mlp"
  c.model.width = 1.0       # 256 hidden units
  c.train.epochs = 30
  c.train.batch_size = 64
  c.train.lr = 0.01
  c.train.momentum = 0.9
  c.train.weight_decay = 5e-4
  c.train.milestones = (24,)
  c.train.eval_every = 30
  c.train.eval_batch_size = 1000
  c.train.reinit_each_cycle = True  # small sets: a fresh head per cycle
