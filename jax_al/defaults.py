"""The defaults of `config.al`, the active-learning fields of every config.

They live in the library because two kinds of users start from them: the
config files (`configs/common.py` sets `c.al = defaults.al()`), and the
`jax_al.selection` API and `jax-al select`, which have no config file and
build `config.al` from these defaults plus the settings they are given.
"""

from ml_collections import config_dict
from ml_collections.config_dict import placeholder


def al() -> config_dict.ConfigDict:
  """A new ConfigDict of the `al` fields at their default values."""
  al = config_dict.ConfigDict()
  al.initial = 5000
  al.budget = 2500
  al.cycles = 7                # number of trained label-set sizes
  al.subset = 10000            # random unlabeled candidates scored per cycle; 0 = whole pool
  al.strategy = "random"
  al.mc_samples = 20           # bald, variation_ratio: MC-dropout passes per candidate
  al.ensemble_size = 5         # ensemble_*: members trained per cycle as one vmapped program
  # learning_loss (Yoo & Kweon 2019): ranking-loss weight and margin, and the
  # fraction of train.epochs after which the loss module stops shaping the backbone.
  al.ll_weight = 1.0
  al.ll_margin = 1.0
  al.ll_detach = 0.6           # epoch 120 of 200
  # The k-means cluster-margin + MMD method (strategy "uncertainty_mmd") and its variants.
  al.batch = 128               # minibatch size of per-batch scopes, in candidate order
  al.k = placeholder(int)      # k-means clusters; unset = number of classes
  al.transform = "inverse"     # inverse: 10/|d1-d2| | neg_gap: -(d2-d1)
  al.u_scope = "batch"         # batch | global
  al.mmd_scope = "batch"       # batch | global
  al.term = "per_sample"       # per_sample | witness | decrease
  al.sign = 1                  # +1 picks large MMD (the method's), -1 picks small
  al.lam = 1.0
  al.normalize = "none"        # none | minmax | zscore | rank
  al.mode = "topk"             # topk | greedy
  al.use_mmd = True            # False = uncertainty only
  al.repeats = 5               # R random draws of the labeled set for the per-sample term
  al.draw_size = 128           # size of each labeled draw
  al.sigma = 0.0               # kernel bandwidth; 0 = median heuristic
  al.estimator = "biased"      # biased | unbiased
  al.block = 1024              # largest kernel block materialised is block x block
                                 # (1024 is 1.7x faster than 4096 on CPU: cache-sized tiles)
  al.pad_labeled = "bucket"     # labeled rows (uncertainty_mmd, coreset): bucket | run (one compilation per run)
  al.coreset_search = "dense"  # coreset: dense (every pick updates all N) | lazy (same picks, per block)
  al.approx = "exact"          # exact | rff (random Fourier features)
  al.rff_dim = 2048
  al.greedy_weight = 1.0       # greedy mode: weight of normalised uncertainty per pick
  # The uncertainty u: cluster_margin (the method's, from k-means on features) or a
  # softmax score of the model's logits: margin | entropy | least_confidence.
  al.utility = "cluster_margin"
  al.prefilter = 0             # greedy mode: pick only among the N most uncertain; 0 = all
  al.kmeans = config_dict.ConfigDict()
  al.kmeans.init = "random"    # random (the method's: centres drawn from the batch) | k-means++
  al.kmeans.n_init = 1
  al.kmeans.max_iter = 100
  al.kmeans.tol = 1e-4
  return al
