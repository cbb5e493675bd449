"""TensorBoard event files (`log.tensorboard`, jax_al/events.py), read back
with TensorFlow's own event reader."""

import json
import sys

import numpy as np
import pytest

from conftest import tiny_digits_config
from jax_al import config as config_lib, events, loop, workdir as workdir_lib
from jax_al.errors import ConfigError


def _read(folder):
  """{tag: [(step, value)]} of every event file in `folder`, in file order."""
  tf = pytest.importorskip("tensorflow")
  out = {}
  files = sorted(folder.glob("events.out.tfevents.*"))
  assert files, list(folder.iterdir())
  for f in files:
    for e in tf.compat.v1.train.summary_iterator(str(f)):
      for v in e.summary.value:
        out.setdefault(v.tag, []).append((e.step, v.simple_value))
  return out


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
  """A real run: digits, 1 trial, 2 cycles of 3 epochs, entropy (score stats)."""
  wd = tmp_path_factory.mktemp("events") / "run"
  c = tiny_digits_config("entropy", train__epochs=3, log__tensorboard=True)
  loop.run(c, wd, quiet=True)
  records = [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines()]
  return c, wd, records


@pytest.mark.slow
def test_records_of_a_real_run_read_back(digits_run, tmp_path):
  config, wd, records = digits_run
  evals = [r for r in records if r["kind"] == "eval"]
  cycles = [r for r in records if r["kind"] == "cycle"]
  assert len(evals) == 6 and [c["cycle"] for c in cycles] == [1, 2]
  assert {"u_min", "u_median", "u_max"} <= set(cycles[0]), cycles[0]  # entropy's stats

  writer = events.from_config(config, tmp_path)
  assert isinstance(writer, events.EventWriter)
  with writer:  # as the loop calls it: eval per evaluation, cycle per cycle
    for r in records:
      if r["kind"] == "eval":
        writer.eval(r["trial"], r["cycle"], {k: v for k, v in r.items()
                                              if k not in ("kind", "trial", "cycle")})
      elif r["kind"] == "cycle":
        writer.cycle(r)
  got = _read(tmp_path / "tensorboard" / "trial0")

  # Per-epoch scalars at the global epoch: cycle 2's epochs follow cycle 1's.
  steps = [(r["cycle"] - 1) * 3 + r["epoch"] for r in evals]
  assert steps == [1, 2, 3, 4, 5, 6]
  for key in ("train_loss", "test_acc", "test_loss", "best_acc", "lr", "seconds"):
    assert [s for s, _ in got[f"epoch/{key}"]] == steps
    np.testing.assert_allclose([v for _, v in got[f"epoch/{key}"]], [r[key] for r in evals],
                               rtol=1e-6)  # float32 in the event file
  assert "epoch/epoch" not in got

  # Per-cycle scalars at the labeled count: every number of the cycle record.
  numbers = {k for r in cycles for k, v in r.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)}
  assert {t for t in got if t.startswith("cycle/")} == {
      f"cycle/{k}" for k in numbers - {"trial", "cycle", "labeled"}}
  assert [s for s, _ in got["cycle/test_acc"]] == [c["labeled"] for c in cycles] == [20, 40]
  assert got["cycle/test_acc"][-1][1] == pytest.approx(cycles[-1]["test_acc"], rel=1e-6)
  for key in ("train_s", "select_s"):
    np.testing.assert_allclose([v for _, v in got[f"cycle/{key}"]], [c[key] for c in cycles],
                               rtol=1e-6)
  # The score statistics come from the selection after cycle 1 (none after the last).
  assert got["cycle/u_median"] == [(20, pytest.approx(cycles[0]["u_median"], rel=1e-6))]


@pytest.mark.slow
def test_turning_it_on_or_off_resumes_the_same_run(digits_run):
  """log.tensorboard is execution-only: the finished run resumes either way."""
  config, wd, _ = digits_run
  before = (wd / "summary.json").read_text()
  off = tiny_digits_config("entropy", train__epochs=3)
  assert off.log.tensorboard is False
  loop.run(off, wd, quiet=True)  # raises on a config mismatch
  assert (wd / "summary.json").read_text() == before


def test_off_by_default_and_digests_unchanged():
  c = tiny_digits_config("random")
  assert c.log.tensorboard is False and events.from_config(c, "/nonexistent") is None
  d = c.to_dict()
  without = {k: v for k, v in d.items() if k != "log"}  # a run saved before the field
  on = json.loads(json.dumps(d))
  on["log"]["tensorboard"] = True
  assert workdir_lib.comparable(d) == workdir_lib.comparable(without) \
      == workdir_lib.comparable(on)
  # A config file without the section is refused in one line before any run
  # (every field is the schema's); a saved run without it reads the default.
  c2 = c.copy_and_resolve_references()
  del c2["log"]
  with pytest.raises(ConfigError, match=r"`log\.tensorboard` = 'missing'") as e:
    config_lib.check_config(c2)
  assert "\n" not in str(e.value)


def test_the_field_is_checked_as_a_bool():
  c = tiny_digits_config("random")
  c.log.tensorboard = True
  config_lib.check_config(c)
  with pytest.raises(ConfigError, match="log.tensorboard"):
    config_lib.check_field("log.tensorboard", "yes")


def test_missing_tensorboardx_is_one_line_naming_the_field(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import raises ImportError
  c = tiny_digits_config("random", log__tensorboard=True)
  with pytest.raises(ConfigError) as e:
    events.from_config(c, tmp_path)
  msg = str(e.value)
  assert "log.tensorboard" in msg and "pip install tensorboardX" in msg and "\n" not in msg
  assert not (tmp_path / "tensorboard").exists()


def test_one_folder_per_trial(tmp_path):
  c = tiny_digits_config("random", log__tensorboard=True)
  with events.from_config(c, tmp_path) as w:
    for trial in (0, 1):
      w.eval(trial, 1, {"epoch": 1, "train_loss": 1.0, "test_acc": 50.0})
      w.cycle({"kind": "cycle", "trial": trial, "cycle": 1, "labeled": 20, "test_acc": 50.0})
    assert w.global_epoch(3, 2) == 2 * c.train.epochs + 2
  assert sorted(p.name for p in (tmp_path / "tensorboard").iterdir()) == ["trial0", "trial1"]
  assert all(list(p.glob("events.out.tfevents.*")) for p in (tmp_path / "tensorboard").iterdir())


@pytest.mark.slow
def test_the_loop_writes_them_and_overwrite_replaces_them(digits_run, tmp_path):
  """loop.run itself writes the event files; --overwrite treats the folder as
  the run's output (set aside, then deleted), never mixing two runs' events."""
  config, wd, records = digits_run
  got = _read(wd / "tensorboard" / "trial0")
  cycles = [r for r in records if r["kind"] == "cycle"]
  assert [s for s, _ in got["cycle/test_acc"]] == [20, 40]
  assert got["cycle/test_acc"][-1][1] == pytest.approx(cycles[-1]["test_acc"], rel=1e-6)
  assert len(got["epoch/train_loss"]) == 6

  run = tmp_path / "run"
  loop.run(config, run, quiet=True)
  old = sorted((run / "tensorboard" / "trial0").glob("events.out.tfevents.*"))
  loop.run(tiny_digits_config("random", train__epochs=3, log__tensorboard=True), run,
           overwrite=True, quiet=True)
  new = sorted((run / "tensorboard" / "trial0").glob("events.out.tfevents.*"))
  assert len(new) == 1 and not set(old) & set(new)
  assert len(_read(run / "tensorboard" / "trial0")["epoch/train_loss"]) == 6  # the new run's only
  assert not (run / workdir_lib.ASIDE).exists()


def test_writers_in_the_same_second_keep_their_own_files(tmp_path):
  """A resume right after a crash opens a second writer on the same folder,
  often within the same second: both event files survive, neither truncated."""
  c = tiny_digits_config("random", log__tensorboard=True)
  for epoch in (1, 2):  # two writers, as two processes of one run would open them
    with events.from_config(c, tmp_path) as w:
      w.eval(0, 1, {"epoch": epoch, "train_loss": float(epoch)})
  files = list((tmp_path / "tensorboard" / "trial0").glob("events.out.tfevents.*"))
  assert len(files) == 2, files
  assert sorted(_read(tmp_path / "tensorboard" / "trial0")["epoch/train_loss"]) == [(1, 1.0), (2, 2.0)]
