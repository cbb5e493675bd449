"""The greedy set-level preset's pluggable utility (al.utility, al.prefilter).

Features are scikit-learn digits pixels, logits noisy one-hot of the true
labels (as in test_uncertainty_mmd.py).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jax_al.errors import ConfigError
from jax_al.strategies import get_strategy
from jax_al.strategies import uncertainty_mmd as um
from test_uncertainty_mmd import al_config, check_all, digits_pool

GREEDY = dict(mode="greedy", term="decrease", mmd_scope="global", normalize="rank",
              u_scope="global")


def test_softmax_utilities_match_their_definitions():
  pool = digits_pool()
  p = np.asarray(jax.nn.softmax(pool.logits, -1), np.float64)
  top = np.sort(p, -1)[:, ::-1]
  np.testing.assert_allclose(um.softmax_utility(pool.logits, kind="margin"),
                             top[:, 1] - top[:, 0], atol=1e-6)
  np.testing.assert_allclose(um.softmax_utility(pool.logits, kind="least_confidence"),
                             1 - top[:, 0], atol=1e-6)
  np.testing.assert_allclose(um.softmax_utility(pool.logits, kind="entropy"),
                             -(p * np.log(p)).sum(-1), atol=1e-5)


@pytest.mark.parametrize("utility", ["margin", "entropy"])
@pytest.mark.slow
def test_prefilter_keeps_picks_among_the_most_uncertain(utility):
  pool = digits_pool()
  u = np.asarray(um.softmax_utility(pool.logits, kind=utility))
  top = set(np.argsort(-u, kind="stable")[:60].tolist())
  strat = get_strategy("uncertainty_mmd", al_config(utility=utility, prefilter=60,
                                                    greedy_weight=0.0, **GREEDY))
  sel = strat.select(pool, 25, jax.random.key(0))
  assert len(set(sel.indices.tolist())) == 25
  assert set(sel.indices.tolist()) <= top
  # Without the pre-filter the pure MMD greedy leaves that set.
  free = get_strategy("uncertainty_mmd", al_config(utility=utility, greedy_weight=0.0,
                                                   **GREEDY))
  assert not set(free.select(pool, 25, jax.random.key(0)).indices.tolist()) <= top


def test_utility_weight_moves_picks_towards_the_utility():
  pool = digits_pool()
  u = np.asarray(um.softmax_utility(pool.logits, kind="margin"))
  mean_u = []
  for w in (0.0, 1.0, 100.0):
    s = get_strategy("uncertainty_mmd", al_config(utility="margin", greedy_weight=w, **GREEDY))
    mean_u.append(u[s.select(pool, 25, jax.random.key(0)).indices].mean())
  assert mean_u[0] < mean_u[1] < mean_u[2]
  # A huge weight is margin sampling: the 25 most uncertain.
  s = get_strategy("uncertainty_mmd", al_config(utility="margin", greedy_weight=1e6, **GREEDY))
  assert set(s.select(pool, 25, jax.random.key(0)).indices.tolist()) == set(
      np.argsort(-u, kind="stable")[:25].tolist())


def test_bad_utility_fields():
  # check_all: config.check_al (fields, rules between them), then the sizes.
  pool = digits_pool()
  with pytest.raises(ConfigError, match="al.utility.*margin"):
    check_all(get_strategy("uncertainty_mmd", al_config(utility="margn", **GREEDY)),
              pool.size, 25, 10)
  with pytest.raises(ConfigError, match="al.prefilter"):
    check_all(get_strategy("uncertainty_mmd", al_config(prefilter=10, **GREEDY)),
              pool.size, 25, 10)
  with pytest.raises(ConfigError, match="al.prefilter"):
    check_all(get_strategy("uncertainty_mmd", al_config(prefilter=60)), pool.size, 25, 10)
