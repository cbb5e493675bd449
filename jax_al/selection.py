"""Selection on arrays: any model's outputs, any registered strategy.

A model jax-al did not train (scikit-learn, PyTorch, a hosted embedding
model) gives its features and predictions as arrays, and `select` picks the
next batch to label with the same strategy code the loop runs:

    import numpy as np, jax_al
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    labeled = np.zeros(len(x), bool); labeled[:100] = True
    model = LogisticRegression(max_iter=2000).fit(x[labeled], y[labeled])
    picks = jax_al.select("margin", features=x, probs=model.predict_proba(x),
                          labeled=labeled, budget=20)
    picks.indices   # 20 row numbers of x, never a labeled one, best first

`strategy` is a registered strategy ("margin", "coreset", "badge", ...) or a
preset of the k-means cluster-margin + MMD method ("users", "rank",
"witness", "greedy", ...). Other keyword arguments set `config.al` fields
(`lam=0.5`, `normalize="rank"`, `kmeans={"n_init": 3}` or
`**{"kmeans.n_init": 3}`), checked by the same field table as config files.

Each strategy declares what it reads (`Strategy.requires`); a missing input
is refused in one line that names the array to pass, and so is every array
of the wrong shape, or with non-finite values in an array the strategy reads,
before anything is computed. An array the strategy does not read is neither
scanned nor copied (a margin selection over a memory-mapped 1,000,000 x 768
`features` touches none of it).
The picks are a deterministic function of the inputs, the settings and
`seed`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from jax_al.errors import ConfigError, DataError, suggest

# `config.al` fields that belong to the simulated loop (label-set sizes,
# training, how the loop samples a model): meaningless for one selection on
# given arrays, so refused rather than silently ignored.
LOOP_ONLY = ("initial", "cycles", "subset", "strategy", "budget", "mc_samples",
             "ensemble_size", "ll_weight", "ll_margin", "ll_detach")

# Rows of a probability vector may sum to 1 within this (float32 softmax
# outputs of 1,000 classes are off by ~1e-6; a typo'd array by far more).
PROB_TOL = 1e-3


@dataclasses.dataclass(frozen=True)
class Labeled:
  """The labeled set as arrays, when its rows are not part of the pool.

  Attributes:
    features: [M, d] features, in the pool's feature space.
    logits: [M, C] logits, or None. No strategy reads the labeled set's
      predictions today; they are checked when given.
  """

  features: Any
  logits: Any = None


@dataclasses.dataclass(frozen=True)
class Picks:
  """What `select` returns.

  Attributes:
    indices: [budget] int64 row numbers into the `features` given (the whole
      pool, labeled rows included when `labeled` was a mask), in pick order.
    scores: [budget] float32, each pick's score as the strategy defines it
      (`Selection.scores`); NaN for a strategy without one (random).
    stats: the strategy's statistics of this step (floats).
    strategy: the registered strategy that ran (a preset resolves to one).
    settings: every `config.al` field the selection ran with.
    stream_rows: candidates per block when the pool was streamed from the
      host (`jax_al.stream`), None when the device held it whole.
  """

  indices: np.ndarray
  scores: np.ndarray
  stats: dict
  strategy: str
  settings: dict
  stream_rows: int | None = None


def al_config(strategy: str, budget: Any, settings: Mapping[str, Any]):
  """`config.al` for one selection: the defaults, `strategy` (a strategy or
  a preset), then `settings`; every field checked as in a config file.

  Raises ConfigError naming the setting, the value and the fix.
  """
  from ml_collections import config_dict

  from jax_al import config as config_lib
  from jax_al import presets, schema

  if not isinstance(strategy, str):
    raise ConfigError("strategy", strategy, suggest(str(strategy), presets.names()))
  holder = config_dict.ConfigDict({"al": schema.defaults("al")})
  presets.apply(holder, strategy, field="strategy")
  al = holder.al
  for name, value in _flat(settings):
    head = name.split(".")[0]
    if head in LOOP_ONLY:
      raise ConfigError(name, value, "this field belongs to the simulated loop (label-set "
                        "sizes, training); a selection on arrays scores every candidate given: "
                        "drop it" + ("; the budget is select(..., budget=B)"
                                     if head == "budget" else ""))
    node, parts = al, name.split(".")
    for depth, part in enumerate(parts):
      keys = list(node.keys()) if hasattr(node, "keys") else []
      if part not in keys:
        where = ".".join(parts[:depth])
        raise ConfigError(name, value, "no such setting" + (f" under {where}" if where else "")
                          + "; " + suggest(part, [k for k in keys if k not in LOOP_ONLY]))
      if depth < len(parts) - 1:
        node = node[part]
    try:
      node[parts[-1]] = value
    except (TypeError, ValueError) as e:
      kind = node.get_type(parts[-1]).__name__
      raise ConfigError(name, value, f"expected a value of type {kind} ({e})") from None
  al.budget = _budget(budget)
  try:
    config_lib.check_al(al)
  except ConfigError as e:
    raise _as_setting(e) from None
  return al


class SlowSettingsWarning(UserWarning):
  """Settings that make one selection far (100x+) more work than at their defaults."""


def _api_names(text: str) -> str:
  """A memory or work message in the API's names (`repeats`, not `al.repeats`)."""
  import re
  text = text.replace("so the run will be", "so the selection will be")
  return re.sub(r"\bal\.([a-z_][a-z_.]*)", r"\1", text)


def _as_setting(e: ConfigError, fix_too: bool = False) -> ConfigError:
  """The same error, naming the setting (`lam`) rather than the field (`al.lam`);
  with `fix_too`, also the fields its fix names."""
  if e.fix is None or not str(e.field).startswith("al."):
    return e
  return ConfigError(e.field[len("al."):], e.value, _api_names(e.fix) if fix_too else e.fix)


def _flat(settings: Mapping[str, Any], prefix: str = ""):
  """(dotted name, value) pairs; a dict value sets a sub-section's fields."""
  for k, v in settings.items():
    name = f"{prefix}{k}"
    if isinstance(v, Mapping):
      yield from _flat(v, name + ".")
    else:
      yield name, v


def _budget(budget: Any) -> int:
  if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
    raise ConfigError("budget", budget, "use a whole number of picks >= 1, e.g. budget=100")
  return int(budget)


def _array(name: str, value: Any, ndim: int) -> np.ndarray:
  """`value` as a float32 NumPy array of `ndim` dimensions (no copy when it
  already is one, so a memory-mapped .npy stays on disk)."""
  try:
    a = np.asarray(value)
  except Exception as e:  # pylint: disable=broad-except  # e.g. a ragged list
    raise DataError(name, f"cannot be read as an array ({type(e).__name__}: {e})",
                    f"pass a NumPy array of {ndim} dimensions") from None
  if a.ndim != ndim:
    raise DataError(name, f"has shape {a.shape}, {a.ndim} dimension(s)",
                    f"pass an array of {ndim} dimensions ({_SHAPES[name]})")
  if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
    raise DataError(name, f"has dtype {a.dtype}", "pass numbers (float32 is used)")
  a = a.astype(np.float32, copy=False)
  return a


_SHAPES = {"features": "[N, d]", "logits": "[N, C]", "probs": "[N, C]",
           "sample_logits": "[S, N, C]", "predicted_loss": "[N]",
           "labeled.features": "[M, d]", "labeled.logits": "[M, C]"}


def check_finite(name: str, a: np.ndarray, block: int = 1 << 20) -> float:
  """Refuses NaN or inf, naming the first bad row (checked in blocks of rows,
  so a memory-mapped pool is never read whole into memory). Returns the
  largest absolute value (0 for an empty array), from the same pass."""
  if a.size == 0:  # nothing to scan; an empty pool is refused where its rows are counted
    return 0.0
  rows = a.reshape(a.shape[0], -1) if a.ndim >= 2 else a.reshape(-1, 1)
  step = max(1, block // max(rows.shape[1], 1))
  top = 0.0
  for start in range(0, rows.shape[0], step):
    chunk = rows[start:start + step]
    ok = np.isfinite(chunk).all(axis=1)
    if not ok.all():
      r = start + int(np.argmin(ok))
      what = "row" if a.ndim <= 2 else "index"
      raise DataError(name, f"{what} {r} holds NaN or inf",
                      "pass finite values (a diverged model, or missing values?)")
    if chunk.size:
      top = max(top, float(np.abs(chunk).max()))
  return top


def feature_limit(rows: int, dim: int) -> float:
  """The largest |feature| whose squared distances, summed over `rows` points
  (k-means inertia, MMD and density means), stay below float32's maximum."""
  return float(np.sqrt(np.finfo(np.float32).max / (4.0 * max(dim, 1) * max(rows, 1))))


def check_scale(name: str, top: float, rows: int, dim: int) -> None:
  """Refuses features so large that the distances the strategies compute in
  float32 overflow (NaN scores and repeated picks), naming the fix."""
  limit = feature_limit(rows, dim)
  if top > limit:
    raise DataError(name, f"holds values up to {top:.3g}; at {rows:,} rows of {dim} "
                    f"dimensions their squared distances overflow float32 (above "
                    f"{limit:.3g} they do)", "standardise the features (zero mean, unit "
                    "variance per dimension) or scale them down")


def _rows(name: str, a: np.ndarray, n: int, axis: int = 0, of: str = "features") -> None:
  if a.shape[axis] != n:
    raise DataError(name, f"has {a.shape[axis]} rows but {of} has {n}",
                    f"give one row per pool item in both ({_SHAPES[name]})")


def _logits_from_probs(p: np.ndarray, name: str = "probs") -> np.ndarray:
  """log(p): the softmax of these logits is p again (for rows summing to 1)."""
  bad = (p < 0) | (p > 1 + PROB_TOL)
  if bad.any():
    r = int(np.argmax(bad.any(axis=-1)))
    raise DataError(name, f"row {r} holds values outside [0, 1]",
                    "pass probabilities (softmax outputs), or pass logits= instead")
  sums = p.sum(axis=-1, dtype=np.float64)
  off = np.abs(sums - 1.0) > PROB_TOL
  if off.any():
    r = int(np.argmax(off))
    raise DataError(name, f"row {r} sums to {sums[r]:.6g}, not 1",
                    "pass probabilities that sum to 1 per row, or pass logits= instead")
  return np.log(np.maximum(p, np.finfo(np.float32).tiny))


def _labeled_rows(labeled: Any, n: int) -> np.ndarray | None:
  """Pool rows marked labeled by a boolean mask or row numbers; None when
  `labeled` is not one of those."""
  if labeled is None or isinstance(labeled, (Labeled, Mapping)):
    return None
  a = np.asarray(labeled)
  if a.dtype == bool:
    if a.shape != (n,):
      raise DataError("labeled", f"is a boolean mask of shape {a.shape}",
                      f"give one entry per pool row: shape ({n},)")
    return np.flatnonzero(a)
  if np.issubdtype(a.dtype, np.integer) and a.ndim == 1:
    if a.size and (a.min() < 0 or a.max() >= n):
      bad = a[(a < 0) | (a >= n)][0]
      raise DataError("labeled", f"holds row number {bad}, outside the pool's {n} rows",
                      f"give row numbers 0..{n - 1}, or a boolean mask")
    srt = np.sort(a)
    if srt.size > 1 and (srt[1:] == srt[:-1]).any():
      raise DataError("labeled", "repeats a row number", "give each labeled row once")
    return srt.astype(np.int64)
  raise DataError("labeled", f"is a {type(labeled).__name__} of dtype {a.dtype}",
                  "pass a boolean mask over the pool, row numbers, or "
                  "jax_al.selection.Labeled(features=..., logits=...)")


# Host memory one step of `to_device` reads at a time.
BLOCK_BYTES = 1 << 27


def to_device(a: np.ndarray, rows: np.ndarray | None = None, axis: int = 0):
  """`a` (or its `rows` along `axis`) as a float32 device array, without a
  second full copy on the host.

  `jnp.asarray` of a NumPy array held two copies at its peak, and `a[rows]`
  is one more: for a 1,000,000 x 768 pool those are 3 GB each. Here a
  device buffer is filled in place, block by block, from `a` (memory-mapped
  or not): the peak is `a`'s own pages, the device array and one block.
  Consecutive `rows` are a slice of `a`, and a float32 C-contiguous `a` (or
  slice) goes to a CPU device in one `device_put`, which aliases it when
  it is aligned: then the peak is `a`'s own pages alone.
  """
  import jax
  import jax.numpy as jnp

  a = np.moveaxis(a, axis, 0) if axis else a
  if rows is not None and _is_range(rows):  # e.g. every row after the labeled ones
    a, rows = a[int(rows[0]):int(rows[-1]) + 1], None
  if (rows is None and a.dtype == np.float32 and a.flags.c_contiguous
      and jax.devices()[0].platform == "cpu"):
    # The CPU backend aliases an aligned host array instead of copying it: a
    # memory-mapped pool stays its file's pages, counted once, not twice
    # (1,000,000 x 768: 3 GB less). Unaligned, it is one copy, as below.
    out = jax.device_put(a)
    return jnp.moveaxis(out, 0, axis) if axis else out
  n = a.shape[0] if rows is None else len(rows)
  row_bytes = max(1, int(np.prod(a.shape[1:], dtype=np.int64)) * 4)
  step = max(1, BLOCK_BYTES // row_bytes)
  if n <= step:  # small: one transfer
    part = a if rows is None else a[rows]
    out = jax.device_put(np.ascontiguousarray(part, np.float32))
  else:
    out = jnp.zeros((n,) + a.shape[1:], jnp.float32)
    for start in range(0, n, step):
      part = a[start:start + step] if rows is None else a[rows[start:start + step]]
      out = _fill(out, jax.device_put(np.ascontiguousarray(part, np.float32)), start)
  return jnp.moveaxis(out, 0, axis) if axis else out


def _is_range(rows: np.ndarray) -> bool:
  """Whether `rows` are consecutive increasing row numbers."""
  return (len(rows) > 0 and int(rows[-1]) - int(rows[0]) + 1 == len(rows)
          and bool(np.all(np.diff(rows) == 1)))


def _fill_impl(out, part, start):
  import jax
  return jax.lax.dynamic_update_slice_in_dim(out, part, start, axis=0)


_fill_jit = None


def _fill(out, part, start):
  # Donating `out` makes the update in place: no second device buffer.
  global _fill_jit
  if _fill_jit is None:
    import jax
    _fill_jit = jax.jit(_fill_impl, donate_argnums=0)
  return _fill_jit(out, part, start)


def _missing(name: str, strategy: str, what: str) -> DataError:
  return DataError(name, f"is missing, and strategy {strategy!r} reads it ({what})",
                   f"pass {name}=")


def select(strategy: str, *, features, logits=None, probs=None, labeled=None, budget,
           seed: int = 0, sample_logits=None, predicted_loss=None,
           stream: bool | None = None, stream_rows: int | None = None,
           **settings) -> Picks:
  """Picks `budget` pool rows to label next.

  Args:
    strategy: a registered strategy or a preset name (see the module doc).
    features: [N, d] the pool's features (penultimate activations,
      embeddings, or any vectors the strategy's distances should use).
    logits: [N, C] the model's logits for the pool; or give `probs`.
    probs: [N, C] predicted probabilities (rows sum to 1); used as log(probs).
    labeled: what is labeled already, as a boolean mask [N] or row numbers
      over the pool (those rows are never picked and, for the strategies
      that read the labeled set, are it), or `Labeled(features, logits)` /
      a dict of those for a labeled set outside the pool. None: nothing.
    budget: the number of picks (<= the unlabeled rows).
    seed: the strategy's random draws (same seed, same picks).
    sample_logits: [S, N, C] logits under S stochastic passes (MC dropout)
      or ensemble members, for bald, variation_ratio and ensemble_*.
    predicted_loss: [N] losses predicted by a learning-loss module.
    stream: keep the candidates on the host and send them to the device
      `stream_rows` at a time (`jax_al.stream`): True, False (the device
      holds them whole), or None (default): stream when they do not fit the
      device's free memory. The strategies that read every candidate at each
      step (coreset, badge, typiclust, the greedy or global-scope MMD)
      cannot stream and say so.
    stream_rows: candidates per block when streaming (None: about 256 MB
      of them); a per-batch strategy rounds it to whole minibatches.
    **settings: `config.al` fields (see the module doc).

  Returns:
    `Picks`: row numbers into `features`, best or first pick first.

  Raises:
    ConfigError: a setting, the strategy or the budget is invalid.
    DataError: an array is missing, misshapen or non-finite.
  """
  import jax.numpy as jnp

  from jax_al import config as config_lib
  from jax_al import rng, strategies
  from jax_al import stream as stream_lib
  from jax_al.strategies.base import Samples

  al = al_config(strategy, budget, settings)
  config_lib.check_field("seed", seed)
  if not (stream is None or stream is True or stream is False):
    raise ConfigError("stream", stream, "pass True, False, or None to stream only a "
                      "pool that does not fit the device")
  if stream_rows is not None and (isinstance(stream_rows, bool) or not isinstance(
      stream_rows, (int, np.integer)) or stream_rows < 1):
    raise ConfigError("stream_rows", stream_rows, "use a whole number of rows >= 1, "
                      "or None for blocks of about 256 MB")
  if stream_rows is not None and stream is False:
    raise ConfigError("stream_rows", stream_rows, "it sizes the blocks of a streamed "
                      "selection, and stream=False holds the pool whole; drop one of them")
  s = strategies.get_strategy(al.strategy, al)
  need = s.requires
  name = al.strategy

  x = _array("features", features, 2)
  n, d = x.shape
  if n == 0:
    raise DataError("features", "has 0 rows", "pass a non-empty pool")
  if logits is not None and probs is not None:
    raise DataError("probs", "was given together with logits", "pass one of logits= or probs=")
  lg = None
  if logits is not None:
    lg = _array("logits", logits, 2)
    _rows("logits", lg, n)
    check_finite("logits", lg)
  elif probs is not None:
    p = _array("probs", probs, 2)
    _rows("probs", p, n)
    check_finite("probs", p)
    lg = _logits_from_probs(p)
  if need.logits and lg is None:
    raise _missing("logits", name, "the model's predictions; or pass probs=")
  sl = None
  if sample_logits is not None:
    sl = _array("sample_logits", sample_logits, 3)
    _rows("sample_logits", sl, n, axis=1)
    if lg is not None and sl.shape[2] != lg.shape[1]:
      raise DataError("sample_logits", f"has {sl.shape[2]} classes but logits has "
                      f"{lg.shape[1]}", "give both over the same classes")
    check_finite("sample_logits", sl)
  if need.samples is not Samples.NONE and sl is None:
    raise _missing("sample_logits", name, "[S, N, C] logits of S MC-dropout passes or "
                   "ensemble members")
  pl = None
  if predicted_loss is not None:
    pl = _array("predicted_loss", predicted_loss, 1)
    _rows("predicted_loss", pl, n)
    check_finite("predicted_loss", pl)
  if need.predicted_loss and pl is None:
    raise _missing("predicted_loss", name, "[N] losses a learning-loss module predicts")
  # Features only the strategy reads are scanned and sent to the device.
  use_x = need.features or need.labeled
  top = check_finite("features", x) if use_x else 0.0

  rows = _labeled_rows(labeled, n)
  if rows is not None:
    # A mask, not setdiff1d: its hash-based unique took 2.7 s at 1,000,000 rows.
    keep = np.ones(n, bool)
    keep[rows] = False
    cand = np.flatnonzero(keep)
    lab_x = x[rows] if use_x else np.zeros((len(rows), 0), np.float32)
    lab_lg = None if lg is None else lg[rows]
  else:
    cand = np.arange(n)
    lab_x, lab_lg = np.zeros((0, d), np.float32), None
    if labeled is not None:
      lf = labeled.get("features") if isinstance(labeled, Mapping) else labeled.features
      ll = labeled.get("logits") if isinstance(labeled, Mapping) else labeled.logits
      if lf is None:
        raise DataError("labeled.features", "is missing", "pass Labeled(features=[M, d])")
      lab_x = _array("labeled.features", lf, 2)
      if lab_x.shape[1] != d:
        raise DataError("labeled.features", f"has {lab_x.shape[1]} dimensions but features "
                        f"has {d}", "give both in the same feature space")
      top = max(top, check_finite("labeled.features", lab_x))
      if ll is not None:
        lab_lg = _array("labeled.logits", ll, 2)
        _rows("labeled.logits", lab_lg, lab_x.shape[0], of="labeled.features")
        check_finite("labeled.logits", lab_lg)
  if use_x:
    check_scale("features", top, n + (0 if rows is not None else int(lab_x.shape[0])), d)
  if al.budget > len(cand):
    raise ConfigError("budget", al.budget, f"only {len(cand)} of the {n} pool rows are "
                      "unlabeled; lower the budget")
  num_classes = 0 if lg is None else int(lg.shape[1])
  if num_classes == 0 and sl is not None:
    num_classes = int(sl.shape[2])
  try:
    s.check(len(cand), al.budget, num_classes, int(lab_x.shape[0]))
  except ConfigError as e:
    if e.field == "al.initial":  # the loop's name for "too few labeled points"
      raise DataError("labeled", f"gives {lab_x.shape[0]} labeled rows",
                      f"{name} with these settings needs more: {e.fix}".replace(
                          "; raise al.initial", "")) from None
    if e.field == "al.k" and lg is None and al.k is None:
      raise ConfigError("k", None, "the cluster margin's k-means needs a cluster count, "
                        "which defaults to the number of classes: pass k=... or logits=")
    raise _as_setting(e) from None

  # The loop's memory estimate and slow-settings warning, on the arrays as given:
  # a sizing setting that cannot fit is one line here, not an out-of-memory crash.
  from ml_collections import config_dict

  from jax_al import memory
  # train.eval_batch_size sizes only the skipped MC-dropout entry.
  sized = config_dict.ConfigDict({"al": al, "train": {"eval_batch_size": 0}})
  width = (d if use_x else 0) + num_classes
  held = (len(cand) + int(lab_x.shape[0])) * 4 * width + (0 if sl is None else sl.nbytes)
  refusal = s.stream_refusal()
  if stream is None:  # stream what the device cannot hold, where the strategy can
    stream = refusal is None and held > memory.USABLE * memory.device_available()[0]
  if stream and refusal is not None:
    raise ConfigError(refusal.field.removeprefix("al."), refusal.value,
                      f"{name} cannot select from a pool streamed from the host "
                      f"({refusal.why}); pass stream=False and a pool that fits the "
                      "device, or choose a strategy that streams")
  scored = len(cand)
  if stream:
    # The device holds one block, the labeled set and [N] score vectors.
    row_bytes = (4 * width + (0 if sl is None else 4 * sl.shape[0] * sl.shape[2])
                 + 4 * (pl is not None))
    rows_per = (int(stream_rows) if stream_rows
                else max(1, stream_lib.BLOCK_BYTES // max(row_bytes, 1)))
    scored = min(len(cand), rows_per)
    held = (scored * row_bytes + int(lab_x.shape[0]) * 4 * width + len(cand) * 4 * 3)
  try:
    # mc_samples sizes the loop's own MC-dropout passes; here they come as sample_logits.
    memory.check_selection(sized, scored, int(lab_x.shape[0]), d, num_classes, held,
                           skip=("al.mc_samples",))
  except ConfigError as e:
    raise _as_setting(e, fix_too=True) from None
  slow = memory.slow_settings(sized, len(cand), int(lab_x.shape[0]), d, num_classes)
  if slow:
    import warnings
    warnings.warn(_api_names(slow), SlowSettingsWarning, stacklevel=2)

  key = rng.stream(int(seed), 0, "select")
  if stream:
    host = stream_lib.HostPool(
        features=x if use_x else np.zeros((n, 0), np.float32), logits=lg,
        sample_logits=sl, predicted_loss=pl, rows=cand,
        labeled_features=to_device(lab_x),
        labeled_logits=(to_device(lab_lg) if lab_lg is not None
                        else jnp.zeros((lab_x.shape[0], num_classes), jnp.float32)),
        num_classes=num_classes, block_rows=rows_per)
    return _picks(s.select_streamed(host, al.budget, key), cand, name, al, rows_per)
  take = None if rows is None else cand
  pool = strategies.Pool(
      features=(to_device(x, take) if use_x
                else jnp.zeros((len(cand), 0), jnp.float32)),
      logits=(to_device(lg, take) if lg is not None
              else jnp.zeros((len(cand), 0), jnp.float32)),
      labeled_features=to_device(lab_x),
      labeled_logits=(to_device(lab_lg) if lab_lg is not None
                      else jnp.zeros((lab_x.shape[0], num_classes), jnp.float32)),
      num_classes=num_classes,
      sample_logits=None if sl is None else to_device(sl, take, axis=1),
      predicted_loss=None if pl is None else to_device(pl, take))
  return _picks(s.select(pool, al.budget, key), cand, name, al, None)


def _picks(sel, cand: np.ndarray, name: str, al, stream_rows: int | None) -> Picks:
  idx = np.asarray(sel.indices, np.int64)
  scores = (np.full(idx.shape, np.nan, np.float32) if sel.scores is None
            else np.asarray(sel.scores, np.float32))
  return Picks(indices=cand[idx], scores=scores,
               stats={k: float(v) for k, v in sel.stats.items()},
               strategy=name, settings=al.to_dict(), stream_rows=stream_rows)
