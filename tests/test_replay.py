"""replay: a finished run's selection steps rebuilt exactly, from checkpoints or by retraining."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import tiny_digits_config
from jax_al import files, loop, replay
from jax_al.errors import DataError


@pytest.mark.slow
def test_a_step_reproduces_the_runs_picks_and_logged_scores(tmp_path):
  """step + select rebuild a run's selection step exactly, and raw_scores are
  the terms its logged statistics describe."""
  cfg = tiny_digits_config("users", al__cycles=2, al__subset=1000, train__epochs=8,
                           train__milestones=(6,), train__eval_every=8)
  loop.run(cfg, tmp_path / "users", quiet=True)
  step = replay.step(tmp_path / "users", trial=0, cycle=1, config=cfg)
  recorded = replay.selected_sets(tmp_path / "users")[(0, 1)]
  assert step.restored  # cycle 1 of 2: its checkpoint is kept
  assert sorted(step.subset[replay.select(step, cfg)]) == sorted(recorded)
  raw = replay.raw_scores(step, cfg)
  rec = next(r for r in files.read_jsonl(tmp_path / "users" / "metrics.jsonl")
             if r["kind"] == "cycle" and r["cycle"] == 1)
  assert raw["sigma"] == pytest.approx(rec["sigma"], rel=1e-4)
  assert np.median(raw["t"]) == pytest.approx(rec["mmd_median"], rel=1e-4)
  assert raw["u"].max() == pytest.approx(rec["u_max"], rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("reinit", [True, False])
def test_every_step_of_a_run_is_rebuilt_from_checkpoints_or_retraining(tmp_path, reinit):
  """A 4-cycle run keeps checkpoints 3 and 4 only: cycles 1 and 2 are
  retrained (forward from the initial weights when warm-started), cycle 3 is
  restored, and every rebuilt step picks exactly what the run picked."""
  cfg = tiny_digits_config("entropy", al__cycles=4, train__reinit_each_cycle=reinit)
  wd = tmp_path / "run"
  loop.run(cfg, wd, quiet=True)
  recorded = replay.selected_sets(wd)
  restored = []
  for c in (1, 2, 3):
    st = replay.step(wd, trial=0, cycle=c)  # the run's own config.json
    restored.append(st.restored)
    assert len(st.labeled) == 20 * c and not set(st.labeled) & set(st.subset)
    assert sorted(st.subset[replay.select(st)]) == sorted(recorded[(0, c)]), c
  assert restored == [False, False, True]


def test_a_step_refuses_another_config_and_unfinished_cycles(tmp_path):
  cfg = tiny_digits_config("random")
  wd = tmp_path / "run"
  loop.run(cfg, wd, quiet=True)
  with pytest.raises(DataError, match="config.json.*al.budget"):
    replay.step(wd, 0, 1, config=tiny_digits_config("random", al__budget=10))
  with pytest.raises(ValueError, match="cycles 1..1"):
    replay.step(wd, 0, 2)
  with pytest.raises(DataError, match="trial 5 cycle 0"):
    replay.labeled_before(wd, 5, 1)
  (tmp_path / "other").mkdir()
  (tmp_path / "other" / "config.json").write_text(json.dumps({"a": 1}))
  with pytest.raises(DataError, match="not a jax-al run"):
    replay.step(tmp_path / "other", 0, 1)


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
  """Finished tiny random runs (2 cycles) with seeds 0 and 1."""
  root = tmp_path_factory.mktemp("seeds")
  for seed in (0, 1):
    loop.run(tiny_digits_config("random", seed=seed), root / f"seed{seed}", quiet=True)
  return root


def _copy(src, dest):
  import shutil
  shutil.copytree(src, dest, symlinks=True)
  return dest


@pytest.mark.slow
def test_a_checkpoint_from_another_run_is_refused(two_seeds, tmp_path):
  """The checks a resume makes: a seed-1 run's checkpoint in a seed-0 run."""
  import shutil
  wd = _copy(two_seeds / "seed0", tmp_path / "run")
  shutil.rmtree(wd / "checkpoints" / "trial0")
  shutil.copytree(two_seeds / "seed1" / "checkpoints" / "trial0", wd / "checkpoints" / "trial0")
  with pytest.raises(DataError) as e:
    replay.step(wd, 0, 1)
  msg = str(e.value)
  assert "\n" not in msg and "checkpoints/trial0" in msg and "replay" in msg, msg


def test_a_hand_edited_selected_jsonl_is_refused(two_seeds, tmp_path):
  wd = _copy(two_seeds / "seed0", tmp_path / "run")
  replay.step(wd, 0, 1)  # the untouched run replays
  path = wd / "selected.jsonl"
  recs = files.read_jsonl(path)
  first = next(r for r in recs if r["trial"] == 0 and r["cycle"] == 0)
  outside = next(i for i in range(10**6) if i not in first["indices"])
  first["indices"][0] = outside  # one initial image swapped by hand
  files.write_jsonl(path, recs)
  with pytest.raises(DataError) as e:
    replay.step(wd, 0, 1)
  msg = str(e.value)
  assert "\n" not in msg and str(path) in msg and "first at cycle 0" in msg, msg
