"""The CIFAR-10 protocol of the k-means cluster-margin + MMD method, exactly.

ResNet-18 (CIFAR variant), 5,000 random initial labels, +2,500 per cycle,
7 cycles (5,000 ... 20,000), SUBSET 10,000 scored candidates per cycle,
200 epochs of SGD (lr 0.1, momentum 0.9, weight decay 5e-4, batch 128,
x0.1 at epoch 160), warm start, flip + 4-pixel-pad crop + normalisation.

    python run.py --config configs/cifar10.py                       # TFDS cifar10
    python run.py --config configs/cifar10.py:global_uncertainty    # a preset
    python run.py --config configs/cifar10.py --config.data.source=folder \
        --config.data.path=../shared/data/cifar10-jpeg.tar.gz
"""

from configs import common
from jax_al import presets


def get_config(preset: str = "users"):
  c = common.base()
  c.data.source = "tfds"
  c.data.name = "cifar10"
  c.data.channels = 3
  c.data.mean = (0.4914, 0.4822, 0.4465)
  c.data.std = (0.2023, 0.1994, 0.2010)   # the protocol's values, kept for fidelity
  c.augment.flip = True
  c.augment.crop_pad = 4

  c.model.name = "resnet18"
  c.model.width = 1.0

  c.train.epochs = 200
  c.train.batch_size = 128
  c.train.lr = 0.1
  c.train.momentum = 0.9
  c.train.weight_decay = 5e-4
  c.train.milestones = (160,)
  c.train.gamma = 0.1
  c.train.eval_every = 20
  c.train.reinit_each_cycle = False       # warm start, as the protocol does
  c.train.dtype = "float32"               # use bfloat16 on a GPU
  c.train.eval_batch_size = 1000
  c.train.steps_per_call = 0              # auto: per step on CPU, fused 40-step lax.scan chunks on GPU

  c.al.initial = 5000
  c.al.budget = 2500
  c.al.cycles = 7
  c.al.subset = 10000
  c.al.batch = 128
  c.al.pad_labeled = "run"                # compile the selection once, not once per cycle
  presets.apply(c, preset)
  return c
