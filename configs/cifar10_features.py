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
  common.feature_head(c)

  c.al.initial = BUDGETS["initial"]
  c.al.budget = BUDGETS["budget"]
  c.al.cycles = BUDGETS["cycles"]
  c.al.subset = 10000
  c.al.batch = 128
  c.al.pad_labeled = "run"  # uncertainty_mmd and coreset compile once per run
  presets.apply(c, preset)
  return c
