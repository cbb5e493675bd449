"""jax_al/workdir.py and jax_al/session.py: what in a workdir is a run's, the
lock, and --overwrite (set aside, restored on a failure before the first
checkpoint, deleted after it), and a run's session on its folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import snapshot, tiny_digits_config
from jax_al import checkpoint, loop, preflight, session, train
from jax_al import workdir as workdir_lib
from jax_al.errors import ConfigError, DataError, Interrupted


def test_overwrite_that_fails_in_cycle_1_leaves_the_old_run_byte_for_byte(victim):
  before = snapshot(victim)
  # Finite but absurd: the loss diverges in cycle 1 (a nan lr is refused up front).
  with pytest.raises(Exception, match="diverged|became nan|non-finite"):
    loop.run(tiny_digits_config("random", train__lr=1e30), victim, overwrite=True, quiet=True)
  assert snapshot(victim) == before
  assert not (victim / workdir_lib.ASIDE).exists()


def test_overwrite_replaces_after_the_first_checkpoint(victim):
  loop.run(tiny_digits_config("random", seed=5), victim, overwrite=True, quiet=True)
  saved = json.loads((victim / "config.json").read_text())
  assert saved["seed"] == 5 and saved["jax_al"] == {"tool": "jax-al", "format": 1}
  assert not (victim / workdir_lib.ASIDE).exists()
  assert checkpoint.latest(victim, 0) == 2


def test_overwrite_killed_before_its_first_checkpoint_is_undone_next_time(victim, monkeypatch):
  """A kill -9 leaves the old run aside; the next command puts it back."""
  before = snapshot(victim)

  class Kill(BaseException):
    pass

  def killed(*a, **k):
    raise Kill()

  real_restore = workdir_lib.Replacement.restore
  with monkeypatch.context() as m:
    m.setattr(train.Trainer, "fit", killed)
    m.setattr(workdir_lib.Replacement, "restore", lambda self: None)  # no chance to clean up
    with pytest.raises(Kill):
      loop.run(tiny_digits_config("random", seed=7), victim, overwrite=True, quiet=True)
  assert (victim / workdir_lib.ASIDE).is_dir()
  assert workdir_lib.Replacement.restore is real_restore
  # The same run as before, resumed: nothing to train, and the old run is back.
  monkeypatch.setattr(train.Trainer, "fit", lambda *a, **k: pytest.fail("trained again"))
  loop.run(tiny_digits_config("random"), victim, quiet=True)
  after = snapshot(victim)
  assert {k: v for k, v in after.items() if k != "log.txt"} == \
      {k: v for k, v in before.items() if k != "log.txt"}
  assert "interrupted --overwrite had set aside" in (victim / "log.txt").read_text()


@pytest.fixture
def foreign(tmp_path) -> Path:
  d = tmp_path / "theirs"
  (d / "checkpoints" / "mymodel").mkdir(parents=True)
  (d / "checkpoints" / "mymodel" / "weights.pt").write_bytes(b"\x00weights")
  (d / "metrics.jsonl").write_text('{"loss": 1.0}\n')
  return d


@pytest.mark.parametrize("overwrite", [False, True], ids=["resume", "overwrite"])
def test_files_without_our_marker_are_refused_and_untouched(foreign, overwrite):
  before = snapshot(foreign)
  with pytest.raises(DataError) as e:
    loop.run(tiny_digits_config(), foreign, overwrite=overwrite, quiet=True)
  msg = str(e.value)
  assert "metrics.jsonl" in msg and "checkpoints/" in msg and "no jax-al run" in msg, msg
  assert snapshot(foreign) == before


def test_overwrite_deletes_only_our_checkpoint_steps(victim):
  mine = victim / "checkpoints" / "mymodel" / "weights.pt"
  mine.parent.mkdir()
  mine.write_bytes(b"keep me")
  (victim / "notes.txt").write_text("mine")
  loop.run(tiny_digits_config("random", seed=3), victim, overwrite=True, quiet=True)
  assert mine.read_bytes() == b"keep me" and (victim / "notes.txt").read_text() == "mine"
  assert checkpoint.latest(victim, 0) == 2


@pytest.mark.parametrize("kill", [False, True], ids=["finished", "killed"])
def test_overwrite_keeps_user_files_inside_trial_and_tensorboard_folders(victim, monkeypatch,
                                                                          kill):
  """Only checkpoint steps and event files are the run's: a user's file in
  checkpoints/trial0/, in a trial folder the run never had, or in tensorboard/
  stays through an --overwrite, also one killed and restored later."""
  mine = {victim / "checkpoints" / "trial0" / "notes.txt": b"in trial0",
          victim / "checkpoints" / "trial7" / "w.pt": b"not a step",
          victim / "tensorboard" / "mine" / "events.out.tfevents.1": b"theirs",
          victim / "tensorboard" / "trial0" / "readme.md": b"theirs too"}
  for p, b in mine.items():
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b)
  before = snapshot(victim)
  if kill:
    class Kill(BaseException):
      pass

    def killed(*a, **k):
      raise Kill()

    with monkeypatch.context() as m:
      m.setattr(train.Trainer, "fit", killed)
      m.setattr(workdir_lib.Replacement, "restore", lambda self: None)
      with pytest.raises(Kill):
        loop.run(tiny_digits_config("random", seed=7), victim, overwrite=True, quiet=True)
    loop.run(tiny_digits_config("random"), victim, quiet=True)  # restores the old run
    after = snapshot(victim)
    assert {k: v for k, v in after.items() if k != "log.txt"} == \
        {k: v for k, v in before.items() if k != "log.txt"}
  else:
    loop.run(tiny_digits_config("random", seed=3), victim, overwrite=True, quiet=True)
    assert checkpoint.latest(victim, 0) == 2
  for p, b in mine.items():
    assert p.read_bytes() == b, p


def test_run_written_before_the_marker_is_still_recognised(victim, monkeypatch):
  saved = json.loads((victim / "config.json").read_text())
  saved.pop("jax_al")
  (victim / "config.json").write_text(json.dumps(saved))
  assert workdir_lib.is_ours(victim)
  monkeypatch.setattr(train.Trainer, "fit", lambda *a, **k: pytest.fail("trained again"))
  assert loop.run(tiny_digits_config("random"), victim, quiet=True)["labeled"] == [20, 40]


def test_rerun_of_a_finished_run_keeps_its_summary(victim):
  before = (victim / "summary.json").read_bytes()
  loop.run(tiny_digits_config("random"), victim, quiet=True)
  assert (victim / "summary.json").read_bytes() == before


def test_second_process_on_same_workdir_is_refused(tmp_path):
  run = tmp_path / "run"
  loop.run(tiny_digits_config(), run, quiet=True)
  holder = workdir_lib.Lock(run)
  try:
    with pytest.raises(ConfigError, match="another jax-al process"):
      loop.run(tiny_digits_config(), run, quiet=True)
  finally:
    holder.close()


def _sigint_in_fit(monkeypatch, at: int) -> None:
  import signal

  from jax_al.errors import Interrupted
  real, calls = train.Trainer.fit, []

  def fit(*args, **kwargs):
    calls.append(1)
    if len(calls) == at:
      raise Interrupted(signal.SIGINT)
    return real(*args, **kwargs)

  monkeypatch.setattr(train.Trainer, "fit", fit)


def test_sigint_before_the_first_checkpoint_of_an_overwrite_says_the_old_run_is_back(
    victim, monkeypatch):
  from jax_al.errors import Interrupted
  before = snapshot(victim)
  _sigint_in_fit(monkeypatch, 1)
  with pytest.raises(Interrupted) as e:
    loop.run(tiny_digits_config("entropy"), victim, overwrite=True, quiet=True)
  msg = e.value.message()
  assert snapshot(victim) == before
  assert "\n" not in msg and "rerun the same command" not in msg, msg
  assert f"the previous run in {victim} is back as it was" in msg and "--overwrite" in msg, msg


def test_sigint_after_an_overwrite_replaced_the_run_says_so(victim, monkeypatch):
  from jax_al.errors import Interrupted
  config = tiny_digits_config("entropy")
  with monkeypatch.context() as m:
    _sigint_in_fit(m, 2)  # cycle 1 checkpointed: the old run is gone
    with pytest.raises(Interrupted) as e:
      loop.run(config, victim, overwrite=True, quiet=True)
  msg = e.value.message()
  assert "replaced the previous one" in msg and "rerun without --overwrite to resume" in msg, msg
  assert not (victim / ".jax_al_replaced").exists()
  assert loop.run(config, victim, quiet=True)["labeled"] == [20, 40]  # the advice holds


# ------------------------------------------------------------ the session ------


def test_a_session_that_fails_before_a_checkpoint_restores_the_set_aside_run(victim, capsys):
  before = snapshot(victim)
  config = tiny_digits_config("random", seed=9)
  with pytest.raises(RuntimeError, match="boom"):
    with session.Session(config, victim, preflight.check_run(config, victim, True),
                         overwrite=True) as ses:
      assert ses.replacement.active and (victim / workdir_lib.ASIDE).is_dir()
      assert json.loads((victim / "config.json").read_text())["seed"] == 9
      assert "Starting random" in (victim / "log.txt").read_text()
      raise RuntimeError("boom")
  assert snapshot(victim) == before and not (victim / workdir_lib.ASIDE).exists()
  assert capsys.readouterr().err.strip() == (
      f"The previous run in {victim} is back as it was: the new one stopped before its "
      "first checkpoint.")
  workdir_lib.Lock(victim).close()  # the session let its lock go


def test_a_session_interrupted_after_its_first_checkpoint_keeps_the_new_run(victim):
  config = tiny_digits_config("random", seed=9)
  with pytest.raises(Interrupted) as e:
    with session.Session(config, victim, preflight.check_run(config, victim, True),
                         overwrite=True, quiet=True) as ses:
      ses.checkpointed()  # the old outputs go
      assert not (victim / workdir_lib.ASIDE).exists()
      raise Interrupted(2, 0, 1)
  assert "replaced the previous one" in e.value.outcome
  assert "rerun without --overwrite to resume it" in e.value.message()
  assert json.loads((victim / "config.json").read_text())["seed"] == 9
  workdir_lib.Lock(victim).close()


def test_a_changed_test_split_is_not_blamed_on_the_labeled_indices(tmp_path):
  """check_data says what a change costs: other training data moves the
  recorded labeled indices; another test split only the accuracies (found by
  a hostile pass: both read "labeled indices")."""
  fp = {"train": 12, "test": 6, "classes": ["a", "b"], "shape": [8, 8, 3], "dtype": "uint8",
        "train_digest": "t1", "test_digest": "s1"}
  (tmp_path / "config.json").write_text(json.dumps({workdir_lib.DATA_KEY: fp}))
  workdir_lib.check_data(tmp_path, dict(fp))  # the same data: no error
  with pytest.raises(DataError) as e:
    workdir_lib.check_data(tmp_path, {**fp, "test": 7})
  msg = str(e.value)
  assert "test images: 7 now, 6 then" in msg and "accuracies so far" in msg, msg
  assert "labeled indices" not in msg
  with pytest.raises(DataError) as e:
    workdir_lib.check_data(tmp_path, {**fp, "train_digest": "t2"})
  assert "labeled indices would point at other images" in str(e.value)
