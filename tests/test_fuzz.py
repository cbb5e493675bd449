"""Property-based fuzzing of every registered selection strategy.

Random pools (feature scales from 1e-6 to 1e6, constant features, duplicate
points, labeled points copied from the pool) and logit configurations
(uniform, confident, one predicted class, ties) must give exactly `budget`
unique valid indices with finite statistics, the same for the same key, or a
ConfigError from `check` — never NaN, never a crash.

Strategies compile once per array shape, so shapes come from a short menu
(edge cases included) while the values vary freely: about 3 compilations per
strategy keep the file within its time budget.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configs.common import base
from jax_al import strategies
from jax_al.errors import ConfigError

# (pool size N, budget, feature dim d, classes C, labeled size M).
SHAPES = (
    (40, 40, 1, 2, 1),     # budget = whole pool, one feature, two classes
    (300, 1, 16, 10, 40),  # a single pick from the largest pool
    (97, 13, 5, 3, 7),     # odd sizes
)
TOO_LARGE = (12, 20, 4, 3, 5)  # budget > pool: check() must refuse it
SCALES = (1e-6, 1e-3, 1.0, 1e3, 1e6)


@st.composite
def pools(draw):
  n, budget, d, c, m = draw(st.sampled_from(SHAPES + (TOO_LARGE,)))
  seed = draw(st.integers(0, 2**31 - 1))
  rs = np.random.default_rng(seed)
  scale = draw(st.sampled_from(SCALES))
  kind = draw(st.sampled_from(["normal", "constant", "duplicates", "constant_columns",
                               "two_points"]))
  feats = rs.standard_normal((n + m, d))
  if kind == "constant":
    feats[:] = rs.standard_normal(d)
  elif kind == "duplicates":  # a few distinct points, repeated
    feats = feats[rs.integers(0, 3, n + m)]
  elif kind == "constant_columns":
    feats[:, rs.random(d) < 0.5] = 1.0
  elif kind == "two_points":
    feats = np.where(rs.random((n + m, 1)) < 0.5, 0.0, 1.0) * np.ones(d)
  feats = (feats * scale).astype(np.float32)
  if draw(st.booleans()):  # labeled points that also sit in the pool
    feats[n:] = feats[rs.integers(0, n, m)]

  logit_kind = draw(st.sampled_from(["normal", "uniform", "confident", "one_class", "ties",
                                     "huge"]))
  logits = rs.standard_normal((n + m, c))
  if logit_kind == "uniform":
    logits[:] = 0.0
  elif logit_kind == "confident":
    logits = 50.0 * np.eye(c)[rs.integers(0, c, n + m)]
  elif logit_kind == "one_class":
    logits[:, 0] += 30.0
  elif logit_kind == "ties":
    logits = np.round(logits)
  elif logit_kind == "huge":
    logits *= 1e4
  logits = logits.astype(np.float32)
  # Stochastic predictions for bald / variation_ratio: S perturbed copies of
  # the logits, identical ones included (no disagreement at all).
  s, spread = draw(st.integers(1, 6)), draw(st.sampled_from([0.0, 0.1, 3.0]))
  samples = logits[:n][None] + spread * rs.standard_normal((s, n, c)).astype(np.float32)
  # Predicted losses for learning_loss: spread, tied, or all equal.
  loss_kind = draw(st.sampled_from(["normal", "ties", "constant", "huge"]))
  predicted = {"normal": rs.standard_normal(n), "ties": np.round(rs.standard_normal(n)),
               "constant": np.zeros(n), "huge": 1e30 * rs.standard_normal(n)}[loss_kind]
  pool = strategies.Pool(jnp.asarray(feats[:n]), jnp.asarray(logits[:n]),
                         jnp.asarray(feats[n:]), jnp.asarray(logits[n:]), c,
                         sample_logits=jnp.asarray(samples, jnp.float32),
                         predicted_loss=jnp.asarray(predicted, jnp.float32))
  return pool, budget, seed


def _al_config():
  return base().al


@pytest.mark.parametrize("name", strategies.names())
@pytest.mark.slow
def test_strategy_fuzz(name):
  strategy = strategies.get_strategy(name, _al_config())

  @settings(max_examples=18, deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
  @given(pools())
  def check(args):
    pool, budget, seed = args
    n = pool.size
    try:
      strategy.check(n, budget, pool.num_classes, int(pool.labeled_features.shape[0]))
    except ConfigError as e:
      assert "al." in str(e) or "budget" in str(e), str(e)  # names the field
      return
    assert budget <= n, "check() accepted a budget larger than the pool"
    key = jax.random.key(seed)
    try:
      sel = strategy.select(pool, budget, key)
    except ConfigError:
      return
    idx = np.asarray(sel.indices)
    assert idx.shape == (budget,), idx.shape
    assert np.issubdtype(idx.dtype, np.integer), idx.dtype
    assert len(np.unique(idx)) == budget, f"duplicate picks: {np.sort(idx)}"
    assert idx.min() >= 0 and idx.max() < n, idx
    for k, v in sel.stats.items():
      assert math.isfinite(float(v)), f"stat {k} = {v}"
    again = strategy.select(pool, budget, key)
    np.testing.assert_array_equal(np.asarray(again.indices), idx)

  check()


# ------------------------------------------------------- command line fuzz ------
#
# A random config field gets a random bad value on the command line. What
# follows must be a one-line ConfigError/DataError (or the flag parser's
# one-line explanation) with a finished run placed in the workdir unchanged,
# or a run that gets as far as training. Never a traceback, never a change to
# the finished run. Examples stop where training would start.


from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from conftest import REPO, snapshot, tiny_digits_config  # noqa: E402
from jax_al import cli, config as config_lib, loop, train  # noqa: E402
from jax_al.errors import DataError, JaxALError  # noqa: E402

_TEXT_FIELDS = ("data.source", "data.path", "model.name", "al.strategy", "al.transform",
                "al.u_scope", "al.term", "al.normalize", "al.mode", "al.approx",
                "al.estimator", "al.kmeans.init", "compare.strategies", "data.train_split")
FUZZ_FIELDS = tuple(sorted(set(config_lib.FIELDS) | set(_TEXT_FIELDS)))
_ANY = ("", "abc", "é", "日本", "\U0001F600", "None", "true", "[]")
BAD_VALUES = {
    "int": ("-1", "0", "1.5", "nan", "100000000000000000000", "4294967296", "-2147483649"),
    "float": ("nan", "inf", "-inf", "-1", "-1e30", "1e300", "1e400", "-0.0"),
    "ints": ("(1, -2)", "(nan,)", "()", "(1e400,)", "(3, 1)"),
    "floats": ("(nan,)", "(inf, 0.5, 0.5)", "()", "(-1e400,)", "(0.0, 0.0, 0.0)"),
    "other": ("2", "-1", "0", "1e9"),
}


@st.composite
def bad_flags(draw):
  """(field, value): values of the field's own kind first, then anything."""
  field = draw(st.sampled_from(FUZZ_FIELDS))
  spec = config_lib.FIELDS.get(field)
  kind = spec.kind if spec and spec.kind in BAD_VALUES else "other"
  value = draw(st.one_of(st.sampled_from(BAD_VALUES[kind]), st.sampled_from(_ANY)))
  return field, value


TINY = ("--config.al.cycles=2", "--config.train.epochs=2", "--config.train.eval_every=1",
        "--config.train.milestones=(1,)")


class ReachedTraining(BaseException):
  """Raised where training would start: the config passed every check."""


def _parse(argv):
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True,
                                  sys_argv=argv)
  fv(argv)
  fv.config.keys()
  return fv.config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  wd = tmp_path_factory.mktemp("fuzz") / "run"
  loop.run(tiny_digits_config("random"), wd, quiet=True)
  return wd


def test_command_line_fuzz(finished_run, monkeypatch):
  monkeypatch.chdir(REPO)

  def reached(*a, **k):
    raise ReachedTraining()

  monkeypatch.setattr(train.Trainer, "fit", reached)
  before = snapshot(finished_run)
  log_before = (finished_run / "log.txt").read_text()

  @settings(max_examples=80, deadline=None, database=None, derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
  @given(bad_flags(), st.booleans())
  def check(field_value, overwrite):
    field, value = field_value
    argv = ["run.py", "--config", "configs/digits.py:random", *TINY,
            f"--config.{field}={value}"]
    try:
      config = _parse(argv)
    except Exception as e:  # pylint: disable=broad-except  # what run.py explains
      msg = cli.explain_flag_error(argv, e)
      assert "\n" not in msg and field.split(".")[-1] in msg, (field, value, msg)
      return
    try:
      loop.run(config, finished_run, overwrite=overwrite, quiet=True)
    except JaxALError as e:
      assert isinstance(e, (ConfigError, DataError)), (field, value, repr(e))
      assert "\n" not in str(e), (field, value, str(e))
    except ReachedTraining:
      spec = config_lib.FIELDS.get(field)
      assert not (spec and spec.kind in ("float", "floats") and value in ("nan", "inf", "-inf")), \
          f"{field}={value} reached training: a non-finite value must be refused up front"
    # A value that leaves the config as it was (an execution-only field such as
    # train.flat_state) resumes the finished run: it trains nothing and only
    # appends its "Resuming" lines to log.txt.
    after = snapshot(finished_run)
    log = (finished_run / "log.txt").read_text()
    assert log.startswith(log_before), (field, value, overwrite)
    assert {k: v for k, v in after.items() if k != "log.txt"} == \
        {k: v for k, v in before.items() if k != "log.txt"}, (field, value, overwrite)

  check()
