"""The shared signature of every selection strategy, and the registry.

A strategy is a class registered under a name. It is built once per run from
`config.al` and then called once per cycle:

    strategy = get_strategy("entropy", config.al)
    sel = strategy.select(pool, budget, rng)

`pool` holds what the features pass produced for the scored subset of the
unlabeled pool and for the labeled set. `sel.indices` are positions into
`pool.features` (not dataset indices): the loop maps them back.

Adding a strategy means adding one file to this package that defines a
subclass decorated with `@register("name")`; `jax_al.strategies` imports
every module of the package, so nothing else needs editing. A strategy that
ranks one per-candidate score subclasses `ScoreStrategy` and defines only
`score` (docs/extending.md).
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_al.errors import ConfigError

if TYPE_CHECKING:
  from jax_al.stream import HostPool

PADS = ("bucket", "run")  # al.pad_labeled; see `Pool.labeled_rows`


class Samples(enum.Enum):
  """Where a strategy's `Pool.sample_logits` come from, when it reads them.

  NONE: it reads none. MC_DROPOUT: `al.mc_samples` stochastic passes of a
  model with dropout. ENSEMBLE: the `al.ensemble_size` members that each
  cycle trains as one vmapped program (which changes training, not only
  scoring). Code that only scores (the `jax_al.selection` API) treats both
  the same: it needs an [S, N, C] array.
  """

  NONE = "none"
  MC_DROPOUT = "mc_dropout"
  ENSEMBLE = "ensemble"


@dataclasses.dataclass(frozen=True)
class Requires:
  """What a strategy reads from its `Pool`: the one declaration that the
  loop's features pass, the selection API and the config checks consult.

  Attributes:
    features: `Pool.features` of the candidates.
    logits: `Pool.logits` of the candidates.
    labeled: the labeled set's features (`Pool.labeled_features`, and its
      size): strategies that measure coverage or distribution match.
    samples: where `Pool.sample_logits` come from; `Samples.NONE` when the
      strategy reads none.
    predicted_loss: `Pool.predicted_loss`, the losses a learning-loss
      module predicts (the model then carries that module).
  """

  features: bool = False
  logits: bool = False
  labeled: bool = False
  samples: Samples = Samples.NONE
  predicted_loss: bool = False

  def inputs(self) -> tuple[str, ...]:
    """The `Pool` arrays this declaration names, in a fixed order."""
    out = [n for n in ("features", "logits") if getattr(self, n)]
    if self.labeled:
      out.append("labeled_features")
    if self.samples is not Samples.NONE:
      out.append("sample_logits")
    if self.predicted_loss:
      out.append("predicted_loss")
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Pool:
  """Inputs of a selection step. All arrays live on the device.

  Attributes:
    features: [N, d] float32 penultimate features of the scored candidates.
    logits: [N, C] float32 logits of the scored candidates.
    labeled_features: [M, d] float32 features of the labeled set.
    labeled_logits: [M, C] float32 logits of the labeled set.
    num_classes: C.
    labeled_capacity: the largest labeled set this run will score (0 =
      unknown). A strategy may pad the labeled rows to it, so that one
      compiled program serves every cycle (`al.pad_labeled = "run"`).
    sample_logits: [S, N, C] float32 logits of the candidates under S
      stochastic predictions (MC-dropout passes, or the members of an
      ensemble), for strategies whose `requires.samples` asks for them;
      None otherwise. With an ensemble, `logits` are the members' mean
      prediction (log mean softmax) and the features are member 0's.
    predicted_loss: [N] float32 losses of the candidates predicted by a
      learning-loss model's module (`requires.predicted_loss`), else None.
  """

  features: jax.Array
  logits: jax.Array
  labeled_features: jax.Array
  labeled_logits: jax.Array
  num_classes: int
  labeled_capacity: int = 0
  sample_logits: jax.Array | None = None
  predicted_loss: jax.Array | None = None

  @property
  def size(self) -> int:
    return int(self.features.shape[0])

  def labeled_rows(self, pad: str) -> int:
    """Rows for the labeled features under `al.pad_labeled = pad`: their
    count ("bucket"), or the run's capacity when larger ("run")."""
    m = int(self.labeled_features.shape[0])
    return max(m, int(self.labeled_capacity)) if pad == "run" else m

  def padded_labeled(self, rows: int) -> jax.Array:
    """The labeled features followed by zero rows, `rows` (>= count) in all."""
    lf = self.labeled_features
    if rows == lf.shape[0]:
      return lf
    return jnp.zeros((rows, *lf.shape[1:]), lf.dtype).at[:lf.shape[0]].set(lf)


class Refusal(NamedTuple):
  """Why a strategy cannot select from a pool streamed from the host
  (`Strategy.stream_refusal`): the `config.al` field (or "strategy") whose
  value stops it, that value, and the reason."""

  field: str
  value: Any
  why: str


@dataclasses.dataclass
class Selection:
  """Output of a selection step.

  Attributes:
    indices: [budget] int64 NumPy array of unique positions into the pool.
    stats: flat dict of floats logged to metrics.jsonl (raw score statistics
      such as `u_min`, `u_median`, `u_max`); may be empty.
    scores: [budget] float32 NumPy array, each pick's score as the strategy
      defines it (a score strategy's raw score; for the others their
      docstring says), or None for a strategy that has no per-pick score
      (random). Not logged by the loop.
  """

  indices: np.ndarray
  stats: dict[str, float] = dataclasses.field(default_factory=dict)
  scores: np.ndarray | None = None


class Strategy(abc.ABC):
  """A selection strategy: subclasses define `select`, and `check` where
  some sizes cannot work. `register("name")` sets `name`.

  `cfg` is `config.al` and is assumed valid field by field:
  `config.check_config` (or `config.check_al` for `config.al` alone)
  validates every field and every rule between fields before a strategy is
  built. `check` adds only what depends on the sizes of a run.
  """

  name: ClassVar[str] = ""
  # What `select` reads from the pool. The class attribute covers every
  # setting of the strategy (the registry answers with it before a strategy
  # is built); an instance may narrow it for its own `cfg` in `__init__`.
  requires: Requires = Requires()

  def __init__(self, cfg: Any):
    """`cfg` is `config.al`; a strategy reads the fields it needs."""
    self.cfg = cfg

  def check(self, num_candidates: int, budget: int, num_classes: int,
            num_labeled: int | None = None) -> None:
    """Raises ConfigError for settings that cannot work at these sizes.

    Called by the loop before any training (`preflight.check_run`), with the
    sizes of the first selection. Overrides call `super().check(...)` and
    check only what depends on the sizes; field values and rules between
    fields belong to `jax_al/config.py`.

    Args:
      num_candidates: N, the candidates scored per selection.
      budget: the picks per selection.
      num_classes: C, the number of classes.
      num_labeled: M, the labeled points at the first selection (the labeled
        set only grows); None = unknown, which skips the checks that need it.
    """
    del num_classes, num_labeled  # the default needs neither
    if budget > num_candidates:
      raise ConfigError(
          "al.budget", budget,
          f"the strategy scores only {num_candidates} candidates; lower "
          "al.budget or raise al.subset")

  @abc.abstractmethod
  def select(self, pool: Pool, budget: int, rng: jax.Array) -> Selection:
    """Picks `budget` of the `pool.size` candidates.

    Args:
      pool: the features and logits of the N scored candidates and of the M
        labeled points (see `Pool`); nothing else about the run is visible.
      budget: the number of picks, 1 <= budget <= N (`check` refuses more).
      rng: a JAX key. The selection is a deterministic function of (config,
        pool, budget, rng): the same arguments give the same indices bit for
        bit; strategies that draw nothing ignore the key.

    Returns:
      A `Selection` whose `indices` are `budget` distinct int64 positions
      into `pool.features` (row numbers of the candidates, not dataset
      indices: the loop maps them back), best or first pick first where the
      strategy has an order; `stats` are floats logged to metrics.jsonl.
    """

  def stream_refusal(self) -> Refusal | None:
    """None when `select_streamed` can pick from a pool held on the host
    (`jax_al.stream`) under these settings, else why not."""
    return Refusal("strategy", self.name, "it reads every candidate at each step")

  def select_streamed(self, host: HostPool, budget: int, rng: jax.Array) -> Selection:
    """`select` on a pool held on the host, read a block of rows at a time;
    for strategies whose `stream_refusal` is None."""
    raise NotImplementedError(f"{self.name} does not stream: {self.stream_refusal()}")


def score_stats(prefix: str, v: jax.Array) -> dict[str, jax.Array]:
  """`{prefix}_min`, `{prefix}_median`, `{prefix}_max` of a raw [N] score.

  The one place these statistics are written: `ScoreStrategy` and
  `uncertainty_mmd` (inside its jitted selection) both log them. jnp
  scalars; callers convert them with `float`.
  """
  return {f"{prefix}_min": jnp.min(v), f"{prefix}_median": jnp.median(v),
          f"{prefix}_max": jnp.max(v)}


_score_stats = jax.jit(score_stats, static_argnums=0)


class ScoreStrategy(Strategy):
  """A strategy that ranks one per-candidate score and picks its top k.

  A subclass defines only `score`; it may set `stat` (the prefix of the
  logged min/median/max of the raw score) and `smallest_first` (pick the
  smallest scores instead of the largest). Ties go to the lower position.

      @register("entropy")
      class Entropy(ScoreStrategy):
        def score(self, pool, rng):
          return entropy_scores(pool.logits)
  """

  stat: ClassVar[str] = "u"
  smallest_first: ClassVar[bool] = False
  # Each candidate's score is a function of its own rows of the pool alone
  # (not of other candidates, the labeled set or the key), so a pool held on
  # the host can be scored a block of rows at a time (`jax_al.stream`).
  rowwise: ClassVar[bool] = False
  requires: Requires = Requires(logits=True)

  @abc.abstractmethod
  def score(self, pool: Pool, rng: jax.Array) -> jax.Array:
    """[N] raw score of every candidate, a deterministic function of
    (pool, rng); larger = picked first (smaller with `smallest_first`)."""

  def stream_refusal(self) -> Refusal | None:
    if self.rowwise:
      return None
    return super().stream_refusal()

  def streamed_score(self, host: HostPool, rng: jax.Array) -> np.ndarray:
    """[N] `score` of a pool held on the host; a rowwise score block by block."""
    from jax_al import stream  # lazy: stream imports this module
    return stream.rowwise(host, lambda p: self.score(p, rng))

  def select_streamed(self, host: HostPool, budget: int, rng: jax.Array) -> Selection:
    if self.stream_refusal() is not None:
      return super().select_streamed(host, budget, rng)
    return self._top(jnp.asarray(self.streamed_score(host, rng)), budget)

  def select(self, pool: Pool, budget: int, rng: jax.Array) -> Selection:
    return self._top(self.score(pool, rng), budget)

  def _top(self, s: jax.Array, budget: int) -> Selection:
    """The `budget` best of the raw scores s, with their values and stats."""
    # top_k's values are the picks' scores. They come back like its indices,
    # also when `s` is sharded over processes, which np.asarray(s) cannot fetch.
    vals, idx = jax.lax.top_k(-s if self.smallest_first else s, budget)
    vals = np.asarray(vals, np.float32)
    stats = {k: float(v) for k, v in _score_stats(self.stat, s).items()}
    return Selection(np.asarray(idx, dtype=np.int64), stats,
                     -vals if self.smallest_first else vals)


_REGISTRY: dict[str, type[Strategy]] = {}


def register(name: str):
  """Class decorator that adds a Strategy subclass to the registry."""

  def wrap(cls: type[Strategy]) -> type[Strategy]:
    if name in _REGISTRY:
      raise ValueError(f"strategy {name!r} is registered twice")
    cls.name = name
    _REGISTRY[name] = cls
    return cls

  return wrap


def names() -> list[str]:
  return sorted(_REGISTRY)


def requires_of(name: str) -> Requires | None:
  """The class-level `requires` of the strategy registered as `name` (what
  it may read under any setting), or None when no strategy has that name."""
  cls = _REGISTRY.get(name)
  return cls.requires if cls is not None else None


def get_strategy(name: str, cfg: Any) -> Strategy:
  """Builds the strategy registered as `name`, or raises the schema's
  ConfigError for an unknown name."""
  from jax_al import config as config_lib  # lazy: the checks import this module

  config_lib.check_field("al.strategy", name)
  return _REGISTRY[name](cfg)


def top_k_indices(scores: jax.Array, k: int) -> np.ndarray:
  """Positions of the k largest scores, ties broken by the lower index."""
  _, idx = jax.lax.top_k(scores, k)
  return np.asarray(idx, dtype=np.int64)
