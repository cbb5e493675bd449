"""CPU default: scikit-learn's digits (1,797 real 8x8 images, no download).

Budgets small enough for strategies to differ (larger ones saturate near
97 % and hide every difference): 20 initial labels, +20 per cycle, 10
cycles, 500 test images. The model is a one-hidden-layer MLP (256 units),
retrained from scratch each cycle: about 48 % at 20 labels to 92 % at 200
with random picks.
A whole run takes about 10 s on 2 CPU cores.

    python run.py --config configs/digits.py
    python run.py --config configs/digits.py:rank --config.al.lam=0.5
"""

from configs import common
from jax_al import presets


def get_config(preset: str = "users"):
  c = common.base()
  c.data.source = "digits"
  c.data.num_test = 500
  c.data.channels = 1
  c.data.mean = (0.3,)
  c.data.std = (0.4,)
  c.augment.flip = False   # a flipped digit is another glyph
  c.augment.crop_pad = 0

  c.model.name = "mlp"
  c.model.width = 1.0

  c.train.epochs = 100
  c.train.batch_size = 32
  c.train.lr = 0.1
  c.train.milestones = (80,)
  c.train.eval_every = 50
  c.train.eval_batch_size = 512
  c.train.reinit_each_cycle = True  # tiny sets: a fresh start per cycle is fairer and cheap

  c.al.initial = 20
  c.al.budget = 20
  c.al.cycles = 10
  c.al.subset = 0                   # score the whole pool (1,277 images)
  c.al.batch = 128
  presets.apply(c, preset)
  return c
