"""Precomputed embeddings (CLIP, DINO, SimCLR, ...) + an MLP head.

data.path names a .npz with train_features [N, D], train_labels [N],
test_features [M, D] and test_labels [M] (optional: class_names, train_ids,
test_ids); jax_al/data/embeddings.py describes the file and its checks.
The features are used as given, so they should be on a unit scale
(standardise them per feature with the training split's statistics, as
the Coates features are).

Each cycle a one-hidden-layer MLP (256 ReLU units) is trained from scratch on
the labeled features, with the CIFAR-10 feature bed's settings
(configs/cifar10_features.py); its hidden activations are the representation
that cluster margin, MMD, coreset, BADGE and TypiClust work in. On frozen
features scoring the whole pool is cheap, so al.subset = 0.

    python run.py --config configs/embeddings.py --config.data.path=feats.npz
    python run.py --config configs/embeddings.py:margin --config.data.path=feats.npz \
        --config.al.initial=200 --config.al.budget=200

The Coates features of the feature bed, as such a file:

    python -m jax_al.export --config configs/cifar10_features.py --out cifar10_coates.npz
"""

from configs import common
from jax_al import presets


def get_config(preset: str = "users"):
  c = common.base()
  c.data.source = "embeddings"
  c.data.path = ""          # required: --config.data.path=FILE.npz
  c.data.channels = 1       # the features are held as [N, 1, D, 1]
  c.data.mean = (0.0,)      # used as given: float features are not divided by 255
  c.data.std = (1.0,)
  common.feature_head(c)

  c.al.initial = 100
  c.al.budget = 100
  c.al.cycles = 10
  c.al.subset = 0           # the whole pool
  c.al.batch = 128
  c.al.pad_labeled = "run"  # uncertainty_mmd and coreset compile once per run
  presets.apply(c, preset)
  return c
