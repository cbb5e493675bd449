"""Every config field, declared once: its default, its check, what it means.

A `Field` holds all a field's facts:
- `default`: the value every config starts from (`configs/common.py` builds
  its ConfigDict with `defaults()`, the selection API its `al` section with
  `defaults("al")`, the study command its `study` section);
- the check (`kind` and its bounds or choices), which `jax_al.config` runs
  before anything is read or written;
- `execution_only`: the field changes how a run executes, not its results,
  so a run may resume under another value and digests leave it out;
- `before`: for a results field that joined the config after runs were first
  saved, the value that gives the results of the code from before it
  existed. A saved config.json that lacks the field ran with that value.

`FIELDS` maps each dotted name ("al.kmeans.tol") to its Field, in the order
the ConfigDict holds them. The sections "seed" .. "mesh" form a run's config;
"study" is the study command's own section (`--study.<field>`). Adding a
field is one declaration here plus its use; tests enumerate every leaf of
every shipped config against this table.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable

from ml_collections import config_dict
from ml_collections.config_dict import placeholder

# Seeds feed jax.random.key: a 32-bit range is portable across PRNG implementations.
MAX_SEED = 2**32 - 1


class _Always:
  """The `before` of a field that every saved run already had."""

  def __repr__(self):
    return "ALWAYS"


ALWAYS = _Always()


@dataclasses.dataclass(frozen=True)
class Field:
  """One config field.

  kind: "int", "float", "bool", "str", "choice", "ints" (a tuple of ints)
  or "floats" (a tuple of floats). `low`/`high` bound numbers (and the
  members of tuples); `open_low`/`open_high` exclude the bound itself.
  `choices` is a tuple, or a function returning the names of a registry
  (strategies, models, data sources) that fills after import. `optional`
  allows None, the "unset" default. `multiple_of` asks an int to be a
  multiple of it. `example` and `noun` go into the generic message; `fix`
  replaces its whole fix text where the generic one reads badly.
  """

  default: Any
  kind: str
  doc: str = ""
  low: float | None = None
  high: float | None = None
  open_low: bool = False
  open_high: bool = False
  choices: tuple | Callable[[], Any] = ()
  optional: bool = False
  example: Any = None
  noun: str = ""
  fix: str = ""
  multiple_of: int = 1
  execution_only: bool = False
  before: Any = ALWAYS

  def options(self) -> tuple:
    """The allowed values of a "choice" field."""
    return tuple(self.choices()) if callable(self.choices) else self.choices

  def range_text(self) -> str:
    num = lambda x: f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"
    lo = "" if self.low is None else f"{'>' if self.open_low else '>='} {num(self.low)}"
    hi = "" if self.high is None else f"{'<' if self.open_high else '<='} {num(self.high)}"
    return " and ".join(p for p in (lo, hi) if p)


def _int(default, low=None, high=None, doc="", **kw) -> Field:
  return Field(default, "int", doc, low, high, **kw)


def _float(default, low=None, high=None, doc="", **kw) -> Field:
  return Field(default, "float", doc, low, high, **kw)


def _bool(default, doc="", **kw) -> Field:
  return Field(default, "bool", doc, **kw)


def _str(default, doc="", **kw) -> Field:
  return Field(default, "str", doc, **kw)


def _choice(default, choices, doc="", **kw) -> Field:
  return Field(default, "choice", doc, choices=choices, **kw)


# Registries and constants of the modules that own them, read when checked:
# those modules import this one (through jax_al.config), not the reverse.
def _registry(module: str, attr: str) -> Callable[[], tuple]:
  def names():
    import importlib
    v = getattr(importlib.import_module(module), attr)
    return tuple(v() if callable(v) else v)
  return names


_SCORES = "jax_al.scores"
_UMM = "jax_al.strategies.uncertainty_mmd"


def _run_fields() -> dict[str, Field]:
  f: dict[str, Field] = {}
  f["seed"] = _int(0, 0, MAX_SEED, example=0)
  f["num_trials"] = _int(1, 1, 10_000, example=5)
  f["resume"] = _bool(True, "rerunning on a workdir continues from its last finished cycle",
                      execution_only=True)
  f["compile_cache_dir"] = _str(
      "", 'on-disk XLA compilation cache shared by runs: "" = ~/.cache/jax_al/xla, a '
      'folder, or "off". A second run of the same programs loads them instead of '
      "compiling. Process-wide: the first setting wins", execution_only=True)

  # ---- data -----------------------------------------------------------------
  f["data.source"] = _choice("digits", _registry("jax_al.data", "SOURCES"),
                             "digits | folder | tfds | embeddings")
  f["data.name"] = _str("", 'tfds dataset name, e.g. "cifar10"')
  f["data.path"] = _str("", "folder source: a directory or .tar/.tar.gz of split/class/"
                        "image; embeddings source: the .npz file")
  f["data.data_dir"] = _str("", 'tfds data_dir ("" = the TFDS default)')
  f["data.cache_dir"] = _str("", 'decoded-array cache ("" = ~/.cache/jax_al)')
  f["data.train_split"] = _str("train")
  f["data.test_split"] = _str("test")
  f["data.image_size"] = _int(None, 1, 4096, "resize to this square size; unset = keep "
                              "(all must match)", optional=True, fix=(
                                  "use a positive int (square side in pixels, at most "
                                  "4,096) or leave it unset"))
  f["data.channels"] = _choice(3, (1, 3), "3 converts grayscale to RGB, 1 keeps one channel",
                               fix="use 1 (grayscale) or 3 (RGB; grayscale is repeated)")
  f["data.num_test"] = _int(500, 1, doc="digits only: images held out for testing",
                            example=500)
  # CIFAR images are about 1 KB; even a 4096 x 4096 RGB photo stays well under it.
  f["data.max_image_bytes"] = _int(64 * 2**20, 1, doc="folder/tar: larger image files, "
                                   "and larger decoded images, are rejected unread",
                                   example=64 * 2**20)
  f["data.features"] = _choice(
      "", _registry("jax_al.data.coates", "FEATURES"), '"" (pixels) | "coates" (single-layer k-means features, '
      "learned from the training split without labels)", before="",
      fix="use 'coates' (single-layer k-means features), or leave it empty for raw pixels")
  f["data.coates.k"] = _int(400, 2, doc="centroids; 4k features", before=400,
                            fix="use at least 2 centroids, e.g. 400.")
  f["data.coates.patch"] = _int(6, 1, doc="patch side in pixels", before=6,
                                fix="use a positive patch side in pixels, e.g. 6.")
  f["data.coates.n_patches"] = _int(400_000, 1, doc="random training patches for whitening "
                                    "and k-means", before=400_000, fix=(
                                        "use a positive number of training patches, "
                                        "e.g. 400000."))
  f["data.coates.seed"] = _int(0, 0, doc="patch sampling and k-means init (not config.seed)",
                               before=0, fix="use a non-negative int.")
  f["data.coates.kmeans_iter"] = _int(50, 1, before=50, fix=(
      "use a positive number of k-means iterations, e.g. 50."))
  f["data.coates.eps_norm"] = _float(10.0, 0, doc="contrast normalisation (pixels 0..255)",
                                     open_low=True, before=10.0, fix=(
                                         "use a positive float (the paper: 10 for 0..255 "
                                         "pixels)."))
  f["data.coates.eps_zca"] = _float(0.1, 0, open_low=True, before=0.1,
                                    fix="use a positive float (the paper: 0.1).")
  f["data.coates.block"] = _int(100, 1, doc="images encoded per compiled call (memory only)",
                                before=100, fix=(
                                    "use a positive number of images per encoding block, "
                                    "e.g. 100."))
  f["data.mean"] = Field((0.5, 0.5, 0.5), "floats", low=-1e6, high=1e6,
                         example=(0.5, 0.5, 0.5))
  f["data.std"] = Field((0.25, 0.25, 0.25), "floats", low=0, open_low=True,
                        example=(0.25, 0.25, 0.25),
                        fix="every std must be > 0 and finite, e.g. (0.25, 0.25, 0.25)")

  f["augment.flip"] = _bool(False, "random horizontal flip (wrong for digits)")
  f["augment.crop_pad"] = _int(0, 0, 1024, "random crop after zero padding by this many "
                               "pixels; 0 = off", example=4)

  # ---- model ----------------------------------------------------------------
  f["model.name"] = _choice("cnn", _registry("jax_al.models", "names"),
                            "resnet18 | cnn | mlp")
  f["model.width"] = _float(1.0, 0, 64, "width multiplier (tiny networks for tests)",
                            open_low=True,
                            fix="use a positive width multiplier up to 64, e.g. 1.0")
  f["model.dropout"] = _float(0.0, 0, 1, "dropout rate on the features before the head; "
                              "0 = off", open_high=True, before=0.0,
                              fix="use a dropout rate in [0, 1), e.g. 0.3 (0 = off)")

  # ---- training -------------------------------------------------------------
  f["train.epochs"] = _int(200, 1, 1_000_000, example=200)
  f["train.batch_size"] = _int(128, 1, 1_000_000, example=128)
  f["train.lr"] = _float(0.1, 0, open_low=True, example=0.1)
  f["train.momentum"] = _float(0.9, 0, 1, open_high=True, fix="use a value in [0, 1), e.g. 0.9")
  f["train.weight_decay"] = _float(5e-4, 0, example=5e-4)
  f["train.milestones"] = Field((160,), "ints", "epochs at which the learning rate is "
                                "multiplied by gamma", 0, 10_000_000, example=(160,),
                                noun="epoch numbers")
  f["train.gamma"] = _float(0.1, 0, open_low=True, example=0.1)
  f["train.eval_every"] = _int(20, 1, doc="test accuracy every N epochs and at the last one",
                               example=20)
  f["train.reinit_each_cycle"] = _bool(False, "False = warm start, as in the CIFAR-10 protocol")
  f["train.dtype"] = _choice("float32", ("float32", "bfloat16"),
                             "compute dtype (params stay float32)")
  f["train.eval_batch_size"] = _int(500, 1, example=500)
  f["train.steps_per_call"] = _int(0, 0, 1_000_000, "steps fused in one lax.scan call; "
                                   "0 = auto (1 on CPU, else 40)", example=0)
  # Step variants for speed, each pinned to the per-step path; the defaults are
  # the original path. They change how a step runs, not what it computes.
  f["train.skip_padding"] = _choice("cond", ("cond", "select", "while"), "padding-only "
                                    "steps of a chunk: cond | select | while",
                                    execution_only=True)
  f["train.bn_mask"] = _choice("always", ("always", "partial"), "always | partial: "
                               "full-batch chunks without the BN mask", execution_only=True)
  f["train.epochs_per_call"] = _int(0, 0, 1_000_000, "0 = a call per chunk; k = up to k "
                                    "epochs per jitted call", execution_only=True,
                                    fix="use an integer >= 0 (0 = one call per chunk)")
  f["train.flat_state"] = _bool(False, "the jitted calls take the state as a flat list of "
                                "leaves", execution_only=True)

  # ---- active learning ------------------------------------------------------
  f["al.initial"] = _int(5000, 1, example=5000)
  f["al.budget"] = _int(2500, 1, example=2500)
  f["al.cycles"] = _int(7, 1, 10_000, "number of trained label-set sizes", example=7)
  f["al.subset"] = _int(10000, 0, doc="random unlabeled candidates scored per cycle; "
                        "0 = whole pool", example=10000)
  f["al.strategy"] = _choice("random", _registry("jax_al.strategies", "names"))
  f["al.mc_samples"] = _int(20, 1, 10_000, "bald, variation_ratio: MC-dropout passes per "
                            "candidate", example=20, before=20)
  f["al.ensemble_size"] = _int(5, 2, 1_000, "ensemble_*: members trained per cycle as one "
                               "vmapped program", example=5, before=5)
  # learning_loss (Yoo & Kweon 2019): ranking-loss weight and margin, and the
  # fraction of train.epochs after which the loss module stops shaping the backbone.
  f["al.ll_weight"] = _float(1.0, 0, 1e6, example=1.0, before=1.0)
  f["al.ll_margin"] = _float(1.0, 0, 1e6, example=1.0, before=1.0)
  f["al.ll_detach"] = _float(0.6, 0, 1, "epoch 120 of 200", before=0.6, fix=(
      "use a fraction of train.epochs in [0, 1], e.g. 0.6 (epoch 120 of 200; 1 = never "
      "detach)"))
  # The k-means cluster-margin + MMD method (strategy "uncertainty_mmd") and its variants.
  f["al.batch"] = _int(128, 1, doc="minibatch size of per-batch scopes, in candidate order",
                       example=128)
  f["al.k"] = _int(None, 2, doc="k-means clusters; unset = number of classes", optional=True,
                   fix=("the cluster margin needs two nearest centres: use an integer >= 2, "
                        "or leave al.k unset for the number of classes"))
  f["al.transform"] = _choice("inverse", _registry(f"{_SCORES}.cluster_margin", "TRANSFORMS"),
                              "inverse: 10/|d1-d2| | neg_gap: -(d2-d1)")
  f["al.u_scope"] = _choice("batch", _registry(_UMM, "SCOPES"), "batch | global")
  f["al.mmd_scope"] = _choice("batch", _registry(_UMM, "SCOPES"), "batch | global")
  f["al.term"] = _choice("per_sample", _registry(f"{_SCORES}.mmd", "TERMS"),
                         "per_sample | witness | decrease")
  f["al.sign"] = _choice(1, (1, -1), "+1 picks large MMD (the method's), -1 picks small",
                         fix="use 1 (pick large MMD terms) or -1 (pick small ones)")
  f["al.lam"] = _float(1.0, 0, 1e12, example=1.0)
  f["al.normalize"] = _choice("none", _registry(f"{_SCORES}.normalize", "METHODS"),
                              "none | minmax | zscore | rank")
  f["al.mode"] = _choice("topk", _registry(_UMM, "MODES"), "topk | greedy")
  f["al.use_mmd"] = _bool(True, "False = uncertainty only")
  f["al.repeats"] = _int(5, 1, 10_000, "R random draws of the labeled set for the "
                         "per-sample term", example=5)
  f["al.draw_size"] = _int(128, 1, doc="size of each labeled draw", example=128)
  f["al.sigma"] = _float(0.0, 0, 1e30, "kernel bandwidth; 0 = median heuristic", example=0.0)
  f["al.estimator"] = _choice("biased", _registry(f"{_SCORES}.mmd", "ESTIMATORS"),
                              "biased | unbiased")
  # 1024 is 1.7x faster than 4096 on CPU: cache-sized tiles.
  f["al.block"] = _int(1024, 1, doc="largest kernel block materialised is block x block",
                       example=1024)
  f["al.pad_labeled"] = _choice("bucket", _registry("jax_al.strategies.base", "PADS"),
                                "labeled rows (uncertainty_mmd, coreset): bucket | run "
                                "(one compilation per run)", before="bucket")
  f["al.coreset_search"] = _choice("dense", ("dense", "lazy"), "coreset: dense (every pick "
                                   "updates all N) | lazy (same picks, per block)",
                                   before="dense")
  f["al.approx"] = _choice("exact", _registry(_UMM, "APPROX"),
                           "exact | rff (random Fourier features)")
  f["al.rff_dim"] = _int(2048, 2, multiple_of=2, fix=(
      "use an even integer >= 2 (cos and sin features come in pairs), e.g. 2048"))
  f["al.greedy_weight"] = _float(1.0, 0, 1e12, "greedy mode: weight of normalised "
                                 "uncertainty per pick", example=1.0)
  # The uncertainty u: cluster_margin (the method's, from k-means on features) or a
  # softmax score of the model's logits: margin | entropy | least_confidence.
  f["al.utility"] = _choice("cluster_margin", _registry(_UMM, "UTILITIES"),
                            before="cluster_margin")
  f["al.prefilter"] = _int(0, 0, doc="greedy mode: pick only among the N most uncertain; "
                           "0 = all", example=0, before=0, fix=(
                               "use an integer >= 0: the number of most uncertain "
                               "candidates the greedy picks come from, 0 = all"))
  f["al.kmeans.init"] = _choice("random", _registry(f"{_SCORES}.kmeans", "INITS"),
                                "random (the method's: centres drawn from the batch) | "
                                "k-means++")
  f["al.kmeans.n_init"] = _int(1, 1, 1000, example=1)
  f["al.kmeans.max_iter"] = _int(100, 1, 1_000_000, example=100)
  f["al.kmeans.tol"] = _float(1e-4, 0, 1e30, example=1e-4)

  # ---- logging, comparisons, devices ----------------------------------------
  f["log.tensorboard"] = _bool(False, "TensorBoard event files of log.txt's numbers in "
                               "<workdir>/tensorboard/trial<N>/", execution_only=True)
  f["compare.strategies"] = _str("", "comma-separated; non-empty runs strategies x trials, "
                                 "paired")
  f["compare.parallel"] = _choice("none", ("none", "vmap"), "none | vmap: a run's trials "
                                  "train as one vmapped program on one device",
                                  execution_only=True)
  f["mesh.data"] = _int(1, -1, 1_000_000, "devices on the data axis; -1 = all", example=1)
  f["mesh.distributed"] = _bool(False, "call jax.distributed.initialize()")
  return f


def _study_fields() -> dict[str, Field]:
  """`--study.<field>`: the study command's own fields. A list is a
  comma-separated string; an unset field takes the value of `--mode`."""
  f: dict[str, Field] = {}
  f["study.trials"] = _int(None, 1, 10_000, "selection replicates (questions 1-3, choosing "
                           "the best)", optional=True, example=3)
  f["study.report_trials"] = _int(None, 1, 10_000, "report replicates (question 4)",
                                  optional=True, example=5)
  f["study.trials_per_job"] = _int(1, 1, 1_000, "1 = a job per (run, seed); k > 1 = a job "
                                   "per (run, job seed) of k vmapped trials (num_trials=k, "
                                   "compare.parallel=vmap); trials and report_trials must be "
                                   "multiples of it", example=3)
  f["study.report_offset"] = _int(1000, 0, MAX_SEED, "report seed i = config.seed + "
                                  "report_offset + i", example=1000)
  f["study.lams"] = _str(None, "lam sweep (question 1); 0 = uncertainty only is always run",
                         optional=True)
  f["study.norms"] = _str(None, "normalisations swept (none,minmax,zscore,rank)",
                          optional=True)
  f["study.sign_lams"] = _str(None, "lams at which large and small MMD are compared "
                              "(question 3)", optional=True)
  f["study.sign_norm"] = _choice("rank", _registry(f"{_SCORES}.normalize", "METHODS"),
                                 "normalisation of the sign runs, witness and proposal")
  f["study.baselines"] = _str(None, "strategies or presets of question 4; unset = the "
                              "classic baselines + the Bayesian ones the model runs; "
                              '"" or "none" = no baselines', optional=True)
  f["study.candidates"] = _str(None, "runs the best is chosen among; unset = every variant "
                               "of questions 1-3", optional=True)
  f["study.probe_trials"] = _int(None, 1, 10_000, "selection replicates whose steps are "
                                 "replayed (pick shares)", optional=True, example=1)
  f["study.probe_cycles"] = _str(None, "replayed selection steps; unset = all when the "
                                 "model is re-initialised each cycle, else the last "
                                 "selecting cycle", optional=True)
  f["study.pca_cycle"] = _int(None, 1, 10_000, "the step of the score-scale and PCA "
                              "pictures", optional=True, example=1)
  # The cost of --plan where nothing was measured under --out yet.
  f["study.device"] = _choice("auto", ("auto", "cpu", "gpu"),
                              "auto (this machine's JAX backend) | cpu | gpu")
  f["study.train_images_per_s"] = _float(None, 0, doc="training throughput; unset = "
                                         "measured", open_low=True, optional=True,
                                         example=1000)
  f["study.job_overhead_s"] = _float(None, 0, doc="start, data load, compilation per job",
                                     optional=True, example=10)
  f["study.vmap_images_per_s"] = _float(None, 0, doc="total training images/s of "
                                        "trials_per_job vmapped trials", open_low=True,
                                        optional=True, example=1000)
  # --executor slurm (submitit). cluster: "" = SLURM; "local" runs the jobs as
  # local subprocesses (tests, a workstation); "debug" runs them in this process.
  f["study.slurm.cluster"] = _choice("", ("", "slurm", "local", "debug"), fix=(
      'use "" (SLURM), "local" (local subprocesses) or "debug" (this process)'))
  f["study.slurm.partition"] = _str("")
  f["study.slurm.gpus"] = _int(1, 0, doc="GPUs per job", example=1)
  f["study.slurm.cpus"] = _int(8, 1, doc="CPUs per job", example=8)
  f["study.slurm.mem_gb"] = _int(32, 1, example=32)
  f["study.slurm.time_min"] = _int(240, 1, doc="per job; a pre-empted or timed-out job is "
                                   "requeued", example=240)
  f["study.slurm.array_parallelism"] = _int(16, 1, doc="tasks running at once", example=16)
  f["study.slurm.group"] = _int(1, 1, doc="jobs per submitted task, run one after another; "
                                "each keeps its own workdir", example=1)
  f["study.slurm.account"] = _str("")
  f["study.slurm.extra"] = _str("", 'more sbatch options: "key=value,key=value"')
  return f


FIELDS: dict[str, Field] = {**_run_fields(), **_study_fields()}
STUDY = "study"
EXECUTION_ONLY: tuple[str, ...] = tuple(k for k, f in FIELDS.items() if f.execution_only)
# Results fields added after runs were first saved, with the value a saved
# config.json that lacks them ran with.
ADDED_FIELDS: dict[str, Any] = {k: f.before for k, f in FIELDS.items()
                                if f.before is not ALWAYS}

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def section_of(name: str) -> str:
  return name.split(".", 1)[0]


def defaults(section: str | None = None) -> config_dict.ConfigDict:
  """A new ConfigDict of the fields at their defaults.

  section None: a run's config (every field but the study's); else that
  top-level section alone ("al", "study", ...), without its prefix. An
  optional field defaults to an unset placeholder of its type, so that it
  can still be set from the command line.
  """
  root = config_dict.ConfigDict()
  for name, f in FIELDS.items():
    head = section_of(name)
    if section is None and head == STUDY:
      continue
    if section is not None:
      if head != section:
        continue
      name = name.split(".", 1)[1]
    *parents, last = name.split(".")
    node = root
    for p in parents:
      if p not in node:
        node[p] = config_dict.ConfigDict()
      node = node[p]
    if f.default is None:
      node[last] = placeholder(_TYPES[f.kind if f.kind in _TYPES else "int"])
    else:
      node[last] = copy.copy(f.default)
  return root


def leaves(d: dict, prefix: str = "") -> dict[str, Any]:
  """{dotted name: value} of every leaf of a nested dict (a ConfigDict's `to_dict()`)."""
  out: dict[str, Any] = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(leaves(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def undeclared(d: dict, prefix: str = "") -> list[str]:
  """The dotted names of the leaves of `d` that no Field declares."""
  return sorted(n for n in leaves(d, prefix) if n not in FIELDS)


def _set_missing(d: dict, name: str, value) -> None:
  *parents, last = name.split(".")
  node = d
  for p in parents:
    if not isinstance(node.get(p, {}), dict):
      return  # a value where a section belongs: the comparison names it
    node = node.setdefault(p, {})
  if last not in node:
    node[last] = copy.deepcopy(value)


def with_added_fields(d: dict) -> dict:
  """A copy of a saved config dict with every missing added field set to its
  `before` value (the value the run had, by the code of its time)."""
  d = copy.deepcopy(d)
  for name, value in ADDED_FIELDS.items():
    _set_missing(d, name, value)
  return d


def completed(d: dict) -> dict:
  """A saved run's config dict with every field this version has: added
  fields at their `before` value, execution-only fields at their default
  (they do not change results). Used where a saved run is executed again
  (resume, replay, the study's probes), so the code reads every field."""
  d = with_added_fields(d)
  for name in EXECUTION_ONLY:
    _set_missing(d, name, FIELDS[name].default)
  return d
