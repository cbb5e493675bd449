"""The data fingerprint a run records (config.json `jax_al_data`): resume,
replay and the study's continue refuse data that changed since, in one line
saying what changed; runs saved before the fingerprint still resume."""

from __future__ import annotations

import json

import pytest

from conftest import Interrupt, count_fits, snapshot, tiny_digits_config
from test_bad_input import _png, folder_config, image_tree

from jax_al import loop, replay
from jax_al import workdir as workdir_lib
from jax_al.errors import DataError


def _add_images(root, n=5):
  added = [root / "train" / "b" / f"new{i}.png" for i in range(n)]
  for i, p in enumerate(added):
    _png(p, 200 + i)
  return added


def _one_line(e, *needles):
  msg = str(e.value)
  assert "\n" not in msg, msg
  for n in needles:
    assert n in msg, (n, msg)


@pytest.mark.slow
def test_resume_after_images_were_added_is_refused_and_the_run_kept(tmp_path, monkeypatch):
  root = image_tree(tmp_path / "data")
  config = folder_config(root, tmp_path, al__cycles=3)
  run = tmp_path / "run"
  with monkeypatch.context() as m:
    count_fits(m, interrupt_at=2)  # stopped in cycle 2
    with pytest.raises(Interrupt):
      loop.run(config, run, quiet=True)
  recorded = json.loads((run / "config.json").read_text())[workdir_lib.DATA_KEY]
  assert recorded["train"] == 12 and recorded["test"] == 6 and recorded["classes"] == ["a", "b", "c"]
  added = _add_images(root)
  before = snapshot(run)
  with pytest.raises(DataError) as e:
    loop.run(config, run, quiet=True)
  _one_line(e, str(run / "config.json"), "training images: 17 now, 12 then", "--overwrite")
  assert snapshot(run) == before
  # Same count, other pixels: the digest says so.
  for p in added:
    p.unlink()
  _png(root / "train" / "a" / "0000.png", 255)
  with pytest.raises(DataError) as e:
    loop.run(config, run, quiet=True)
  _one_line(e, "the training split's images or labels (same count, other content)")
  _png(root / "train" / "a" / "0000.png", 0)  # as image_tree made it: the run resumes
  assert loop.run(config, run, quiet=True)["labeled"] == [3, 5, 7]


@pytest.mark.slow
def test_a_run_saved_before_the_fingerprint_still_resumes(tmp_path, monkeypatch):
  config = tiny_digits_config(al__cycles=3)
  run = tmp_path / "run"
  with monkeypatch.context() as m:
    count_fits(m, interrupt_at=2)
    with pytest.raises(Interrupt):
      loop.run(config, run, quiet=True)
  path = run / "config.json"
  saved = json.loads(path.read_text())
  assert isinstance(saved.pop(workdir_lib.DATA_KEY), dict)  # digits records one too
  path.write_text(json.dumps(saved))
  assert loop.run(config, run, quiet=True)["labeled"] == [20, 40, 60]
  assert workdir_lib.DATA_KEY not in json.loads(path.read_text())  # a resume keeps config.json
  replay.step(run, 0, 1)  # and it replays


@pytest.mark.slow
def test_replay_refuses_changed_data(tmp_path):
  root = image_tree(tmp_path / "data")
  config = folder_config(root, tmp_path)
  run = tmp_path / "run"
  loop.run(config, run, quiet=True)
  replay.step(run, 0, 1)
  _add_images(root)
  with pytest.raises(DataError) as e:
    replay.step(run, 0, 1)
  _one_line(e, str(run / "config.json"), "replay", "training images: 17 now, 12 then")


def test_the_studys_continue_refuses_changed_data(tmp_path):
  from test_study import _study

  from jax_al import study
  from jax_al.data import load_dataset

  st = _study(tmp_path / "study")
  j = st.phase1_jobs()[0]
  cfg = st.run_config(j.run, j.seed)
  fp = load_dataset(cfg.data).fingerprint
  j.workdir.mkdir(parents=True)
  write = lambda data: (j.workdir / "config.json").write_text(
      json.dumps(workdir_lib.config_record(cfg, data)))
  write(fp)
  study.check_jobs(st)  # the same data: the study continues
  write({**fp, "train": fp["train"] - 5, "train_digest": "0" * 32})
  with pytest.raises(DataError) as e:
    study.check_jobs(st)
  _one_line(e, "job runs/", f"training images: {fp['train']} now, {fp['train'] - 5} then",
            "another --out")
  from jax_al import files
  files.write_json(st.out / "study.json", study._record(st))  # as the first command left it
  with pytest.raises(DataError, match="started on other data"):  # before any job runs
    study.run_study(st, log=lambda m: None)


def test_an_embeddings_file_has_a_fingerprint_too(tmp_path):
  from test_embeddings import _config, _digits_arrays, _write

  from jax_al.data import load_dataset
  a = _digits_arrays()
  before = load_dataset(_config(_write(tmp_path, **a)).data).fingerprint
  a["train_features"][3, 7] += 1.0
  after = load_dataset(_config(_write(tmp_path, "b.npz", **a)).data).fingerprint
  assert before["train"] == after["train"] == 1297
  assert workdir_lib.data_changes(before, after) == (
      "the training split's images or labels (same count, other content)")
