"""jax_al/checkpoint.py: where checkpoints live, and what a resume refuses to
restore (links out of the workdir, tampered or damaged checkpoints)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import snapshot
from test_safety import cli, one_line_error
from jax_al import checkpoint, loop
from jax_al.errors import DataError


def _expect_refused(run, config, *needles):
  before = snapshot(run)
  with pytest.raises(DataError) as e:
    loop.run(config, run, quiet=True)
  for needle in needles:
    assert needle in str(e.value), str(e.value)
  assert snapshot(run) == before
  return str(e.value)


def test_checkpoint_folder_linking_outside_is_refused(stopped_copy, tmp_path, no_training):
  run, config = stopped_copy
  outside = tmp_path / "elsewhere"
  shutil.move(run / "checkpoints", outside)
  (run / "checkpoints").symlink_to(outside, target_is_directory=True)
  _expect_refused(run, config, "outside the workdir", str(outside.resolve()), "--overwrite")


def test_checkpoint_step_linking_outside_is_refused(stopped_copy, tmp_path, no_training):
  run, config = stopped_copy
  step = checkpoint.root(run, 0) / "1"
  shutil.move(step, tmp_path / "step1")
  step.symlink_to(tmp_path / "step1", target_is_directory=True)
  _expect_refused(run, config, str(step), "outside", "--overwrite")


def test_file_linking_outside_a_step_is_refused(stopped_copy, tmp_path, no_training):
  run, config = stopped_copy
  meta = checkpoint.root(run, 0) / "1" / "meta" / "metadata"
  shutil.move(meta, tmp_path / "metadata")
  meta.symlink_to(tmp_path / "metadata")
  _expect_refused(run, config, str(meta), "symbolic link", "outside")


@pytest.mark.parametrize("edit,needle", [
    (lambda m: m["labeled"].__setitem__(0, 10**6), "labeled indices"),
    (lambda m: m["labeled"].append(m["labeled"][0]), "labeled"),
    (lambda m: m.__setitem__("cycle", 2), "claims trial 0 cycle 2"),
    (lambda m: m["rng"]["select"].__setitem__(0, 1), "random-stream keys"),
    (lambda m: m.__setitem__("config_hash", "0" * 16), "different config"),
    (lambda m: m.pop("metrics"), "metrics"),
], ids=["index_out_of_range", "duplicate", "wrong_cycle", "rng", "config", "missing"])
def test_tampered_checkpoint_meta_is_refused(stopped_copy, no_training, edit, needle):
  run, config = stopped_copy
  meta_file = checkpoint.root(run, 0) / "1" / "meta" / "metadata"
  meta = json.loads(meta_file.read_text())
  edit(meta)
  meta_file.write_text(json.dumps(meta))
  _expect_refused(run, config, str(checkpoint.root(run, 0) / "1"), needle, "--overwrite")


def test_checkpoint_root_stays_under_workdir(tmp_path):
  with pytest.raises(ValueError):
    checkpoint.root(tmp_path, "../../etc")
  with pytest.raises(ValueError):
    checkpoint.root(tmp_path, -1)
  assert checkpoint.root(tmp_path, 3) == (tmp_path / "checkpoints" / "trial3").resolve()


@pytest.mark.slow
def test_damaged_checkpoint_is_one_short_line(tmp_path):
  run = tmp_path / "run"
  args = ["--config", "configs/digits.py:random", f"--workdir={run}", "--config.al.cycles=2",
          "--config.train.epochs=2"]
  assert cli(*args).returncode == 0
  for f in (checkpoint.root(run, 0) / "2" / "state").rglob("*"):
    if f.is_file() and f.parent.name == "d":
      f.write_bytes(os.urandom(64))
  out = cli(*args)
  last = one_line_error(out, str(checkpoint.root(run, 0) / "2"), "cannot be restored",
                        "delete the folder")
  assert len(out.stderr) < 1500 and "TensorStore" not in out.stderr, out.stderr
  assert "Event loop is closed" not in out.stderr and len(last) < 600
