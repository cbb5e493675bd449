"""CIFAR-10 on a CPU: frozen single-layer k-means features + an MLP head.

The images of the CIFAR-10 JPEG copy (image-folder source) are replaced by
the features of Coates, Lee & Ng (AISTATS 2011), learned without labels from
the 50,000 training images only: 6x6 patches, contrast normalisation, ZCA
whitening, k-means (k = 400 centroids), triangle activation at every
position, 4-quadrant sum pooling -> 1,600 features, standardised with the
training split's statistics (jax_al/data/coates.py). They are computed once
and cached (data.cache_dir).

Each cycle a one-hidden-layer MLP (256 ReLU units) is trained from scratch
on the labeled features; its hidden activations are the representation that
cluster margin, MMD, coreset, BADGE and TypiClust work in. Budgets: see
BUDGETS below and docs/results/cifar10_features/README.md.

    python run.py --config configs/cifar10_features.py:margin
    python run.py --config configs/cifar10_features.py \
        --config.data.path=/elsewhere/cifar10-jpeg.tar.gz
"""

from configs import common
from jax_al import presets

# Calibrated on seeds other than the reported ones (see the results README):
# initial labels, labels per cycle, cycles.
BUDGETS = dict(initial=100, budget=100, cycles=10)


def get_config(preset: str = "users"):
  c = common.base()
  c.data.source = "folder"
  c.data.path = "../shared/data/cifar10-jpeg.tar.gz"
  c.data.channels = 3
  c.data.features = "coates"
  c.data.coates.k = 400
  c.data.coates.patch = 6
  c.data.coates.n_patches = 400_000
  c.data.coates.seed = 0
  # Features are standardised already; float inputs are not divided by 255.
  c.data.mean = (0.0, 0.0, 0.0)
  c.data.std = (1.0, 1.0, 1.0)
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

  c.al.initial = BUDGETS["initial"]
  c.al.budget = BUDGETS["budget"]
  c.al.cycles = BUDGETS["cycles"]
  c.al.subset = 10000
  c.al.batch = 128
  c.al.pad_labeled = "run"  # uncertainty_mmd and coreset compile once per run
  presets.apply(c, preset)
  return c
