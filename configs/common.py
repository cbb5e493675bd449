"""Fields every config shares. Dataset configs start from `base()`.

Plain Python returning a ConfigDict (big_vision style). Fields whose default
is "unset" use `placeholder(type)` so that they can still be overridden from
the command line.
"""

from ml_collections import config_dict
from ml_collections.config_dict import placeholder

from jax_al import defaults


def base() -> config_dict.ConfigDict:
  c = config_dict.ConfigDict()
  c.seed = 0
  c.num_trials = 1
  c.resume = True  # rerunning on a workdir continues from its last finished cycle
  # On-disk XLA compilation cache shared by runs: "" = ~/.cache/jax_al/xla, a folder, or "off".
  # A second run of the same programs loads them instead of compiling (the
  # ResNet-18 step takes ~25 s to compile on an H200). Process-wide: the first setting wins.
  c.compile_cache_dir = ""

  # ---- data -------------------------------------------------------------
  c.data = config_dict.ConfigDict()
  c.data.source = "digits"       # digits | folder | tfds
  c.data.name = ""               # tfds dataset name, e.g. "cifar10"
  c.data.path = ""               # folder source: directory or .tar/.tar.gz of split/class/image
  c.data.data_dir = ""           # tfds data_dir ("" = TFDS default)
  c.data.cache_dir = ""          # decoded-array cache ("" = ~/.cache/jax_al)
  c.data.train_split = "train"
  c.data.test_split = "test"
  c.data.image_size = placeholder(int)  # resize to this square size; unset = keep (all must match)
  c.data.channels = 3            # 3 converts grayscale to RGB, 1 keeps one channel
  c.data.num_test = 500          # digits only: images held out for testing
  c.data.max_image_bytes = 64 * 2**20  # folder/tar: larger images are rejected unread
  # Features instead of pixels: "" (pixels) | "coates" (single-layer k-means
  # features, learned from the training split without labels; jax_al/data/coates.py).
  c.data.features = ""
  c.data.coates = config_dict.ConfigDict()
  c.data.coates.k = 400              # centroids; 4k features
  c.data.coates.patch = 6            # patch side in pixels
  c.data.coates.n_patches = 400_000  # random training patches for whitening and k-means
  c.data.coates.seed = 0             # patch sampling and k-means init (not config.seed)
  c.data.coates.kmeans_iter = 50
  c.data.coates.eps_norm = 10.0      # contrast normalisation (pixels 0..255)
  c.data.coates.eps_zca = 0.1
  c.data.coates.block = 100          # images encoded per compiled call (memory only)
  c.data.mean = (0.5, 0.5, 0.5)
  c.data.std = (0.25, 0.25, 0.25)

  c.augment = config_dict.ConfigDict()
  c.augment.flip = False         # random horizontal flip (wrong for digits)
  c.augment.crop_pad = 0         # random crop after zero padding by this many pixels; 0 = off

  # ---- model ------------------------------------------------------------
  c.model = config_dict.ConfigDict()
  c.model.name = "cnn"           # resnet18 | cnn | mlp
  c.model.width = 1.0            # width multiplier (tiny networks for tests)
  c.model.dropout = 0.0          # dropout rate on the features before the head; 0 = off

  # ---- training -----------------------------------------------------------
  c.train = config_dict.ConfigDict()
  c.train.epochs = 200
  c.train.batch_size = 128
  c.train.lr = 0.1
  c.train.momentum = 0.9
  c.train.weight_decay = 5e-4
  c.train.milestones = (160,)    # epochs at which the learning rate is multiplied by gamma
  c.train.gamma = 0.1
  c.train.eval_every = 20        # test accuracy every N epochs and at the last one
  c.train.reinit_each_cycle = False  # False = warm start, as in the CIFAR-10 protocol
  c.train.dtype = "float32"      # compute dtype: float32 | bfloat16 (params stay float32)
  c.train.eval_batch_size = 500
  c.train.steps_per_call = 0     # steps fused in one lax.scan call; 0 = auto (1 on CPU, else 40)
  # Step variants for speed (docs/bench/README.md); the defaults are the original path.
  c.train.skip_padding = "cond"  # padding-only steps of a chunk: cond | select | while
  c.train.bn_mask = "always"     # always | partial: full-batch chunks without the BN mask
  c.train.epochs_per_call = 0    # 0 = a call per chunk; k = up to k epochs per jitted call
  c.train.flat_state = False     # the jitted calls take the state as a flat list of leaves

  # ---- active learning: the defaults live in the library (jax_al/defaults.py) ----
  c.al = defaults.al()

  # ---- logging ------------------------------------------------------------------
  # log.txt and metrics.jsonl are always written. TensorBoard event files of
  # the same numbers go to <workdir>/tensorboard/trial<N>/ when this is on
  # (jax_al/events.py; watch with `tensorboard --logdir <workdir>/tensorboard`).
  c.log = config_dict.ConfigDict()
  c.log.tensorboard = False

  # ---- comparisons / devices --------------------------------------------------
  c.compare = config_dict.ConfigDict()
  c.compare.strategies = ""      # comma-separated; non-empty runs strategies x trials, paired
  c.compare.parallel = "none"    # none | vmap: a run's trials train as one vmapped program on one device
  c.mesh = config_dict.ConfigDict()
  c.mesh.data = 1                # devices on the data axis; -1 = all
  c.mesh.distributed = False     # call jax.distributed.initialize()
  return c


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
