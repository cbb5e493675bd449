"""Bad input is rejected before any training, with a message that names the
field or file, the value and the fix, and without touching a previous run.

Most cases go through `jax_al.loop.run` with `overwrite=True` on a copy of a
finished run: the harshest setting, since a check that came after the
overwrite would delete that run. tests/test_data.py covers the loaders' own
messages in detail; here each data error is checked end to end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import REPO, rejected, tiny_digits_config
from jax_al import data as data_lib
from jax_al import loop, train
from jax_al.errors import ConfigError, DataError


@pytest.fixture
def no_training(monkeypatch):
  """Fails the test if any training starts."""
  def fail(*args, **kwargs):
    raise AssertionError("training started despite bad input")
  monkeypatch.setattr(train.Trainer, "fit", fail)


# ------------------------------------------------------------ config ------


CONFIG_CASES = {
    # id: (overrides, error, needles: field, value, fix)
    "unknown_strategy": (dict(al__strategy="entrpy"), ConfigError,
                         ("al.strategy", "'entrpy'", "Did you mean 'entropy'")),
    "zero_budget": (dict(al__budget=0), ConfigError, ("al.budget", "= 0", ">= 1")),
    "negative_initial": (dict(al__initial=-5), ConfigError, ("al.initial", "-5", ">= 1")),
    "zero_batch_size": (dict(train__batch_size=0), ConfigError,
                        ("train.batch_size", "= 0", ">= 1")),
    "negative_epochs": (dict(train__epochs=-1), ConfigError, ("train.epochs", "-1", ">= 1")),
    "zero_cycles": (dict(al__cycles=0), ConfigError, ("al.cycles", "= 0", ">= 1")),
    "pad_labeled_typo": (dict(al__strategy="coreset", al__pad_labeled="runn"), ConfigError,
                         ("al.pad_labeled", "'runn'", "Did you mean 'run'")),
    "negative_lr": (dict(train__lr=-0.1), ConfigError, ("train.lr", "-0.1", "> 0")),
    "negative_seed": (dict(seed=-1), ConfigError, ("seed", "-1", ">= 0")),
    "zero_trials": (dict(num_trials=0), ConfigError, ("num_trials", "= 0", ">= 1")),
    "bool_as_int": (dict(train__eval_every=True), ConfigError,
                    ("train.eval_every", "True", "integer")),
    "momentum_out_of_range": (dict(train__momentum=1.5), ConfigError,
                              ("train.momentum", "1.5", "[0, 1)")),
    "unknown_dtype": (dict(train__dtype="float64"), ConfigError,
                      ("train.dtype", "'float64'", "bfloat16")),
    "milestones_not_sorted": (dict(train__milestones=(50, 10)), ConfigError,
                              ("train.milestones", "(50, 10)", "increasing")),
    "milestones_wrong_type": (dict(train__milestones=("x",)), ConfigError,
                              ("train.milestones", "'x'", "epoch numbers")),
    "zero_std": (dict(data__std=(0.0,)), ConfigError, ("data.std", "0.0", "> 0")),
    "two_channels": (dict(data__channels=2), ConfigError, ("data.channels", "2", "use 1")),
    "unknown_source": (dict(data__source="folders"), ConfigError,
                       ("data.source", "'folders'", "'folder'")),
    "unknown_model": (dict(model__name="resnet"), ConfigError,
                      ("model.name", "'resnet'", "Did you mean 'resnet18'")),
    "zero_model_width": (dict(model__width=0.0), ConfigError,
                         ("model.width", "0.0", "positive width")),
    "zero_image_size": (dict(data__image_size=0), ConfigError,
                        ("data.image_size", "0", "positive")),
    "num_test_too_small": (dict(data__num_test=5), ConfigError,
                           ("data.num_test", "5", "hold out")),
    "unknown_compare_strategy": (dict(compare__strategies="random,nope"), ConfigError,
                                 ("compare.strategies", "'nope'", "choose one of")),
    "budget_above_pool": (dict(al__budget=2000), ConfigError,
                          ("al.budget", "2000", "1297 training images", "lower al.budget")),
    "budgets_exceed_pool_over_cycles": (
        dict(al__initial=500, al__budget=300, al__cycles=4), ConfigError,
        ("al.budget", "300", "1400", "lower al.budget, al.cycles or al.initial")),
    "initial_is_whole_pool": (dict(al__initial=1297), ConfigError,
                              ("al.initial", "1297", "fewer initial labels")),
    "subset_below_budget": (dict(al__subset=10), ConfigError,
                            ("al.subset", "10", "al.budget = 20", "raise al.subset")),
    # Checked by the strategy against the labeled count of the first selection,
    # before cycle 1 trains (it used to fail in cycle 1's selection).
    "too_few_labeled_for_the_mmd": (
        dict(al__strategy="uncertainty_mmd", al__initial=1, al__term="decrease",
             al__estimator="unbiased"), ConfigError,
        ("al.initial", "= 1", "needs at least 2 labeled points", "raise al.initial")),
    # Rules between strategy fields hold whatever the strategy.
    "greedy_with_a_batch_scope": (dict(al__mode="greedy", al__mmd_scope="batch"), ConfigError,
                                  ("al.mmd_scope", "'batch'", "al.mmd_scope='global'")),
    "odd_rff_dim": (dict(al__rff_dim=7), ConfigError, ("al.rff_dim", "7", "even integer")),
    "term_typo": (dict(al__term="witnes"), ConfigError, ("al.term", "'witnes'", "'witness'")),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
@pytest.mark.slow
def test_bad_config_field(case, victim, no_training):
  overrides, error, needles = CONFIG_CASES[case]
  rejected(tiny_digits_config("random", **overrides), victim, error, *needles)


def test_bad_config_leaves_no_new_workdir(tmp_path, no_training):
  fresh = tmp_path / "new" / "run"  # neither folder exists yet
  rejected(tiny_digits_config(al__budget=0), fresh, ConfigError, "al.budget")
  rejected(tiny_digits_config(data__num_test=5), fresh, ConfigError, "data.num_test")
  assert not fresh.parent.exists()


# ------------------------------------------------------------- data -------


def _png(path: Path, value: int, size=(8, 8)):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.new("L", size, value).save(path, format="PNG")


def image_tree(root: Path, classes=("a", "b", "c"), n_train=4, n_test=2) -> Path:
  for split, n in (("train", n_train), ("test", n_test)):
    for c, cls in enumerate(classes):
      for i in range(n):
        _png(root / split / cls / f"{i:04d}.png", 40 * c + i)
  return root


def folder_config(path, tmp_path, **fields):
  return tiny_digits_config(data__source="folder", data__path=str(path),
                            data__cache_dir=str(tmp_path / "cache"), al__initial=3,
                            al__budget=2, **fields)


@pytest.mark.slow
def test_folder_source_runs(tmp_path):
  """The baseline the data cases below break: a valid tree trains fine."""
  root = image_tree(tmp_path / "data")
  summary = loop.run(folder_config(root, tmp_path), tmp_path / "run", quiet=True)
  assert summary["labeled"] == [3, 5]


def test_missing_data_path(victim, tmp_path, no_training):
  missing = tmp_path / "nope"
  rejected(folder_config(missing, tmp_path), victim, DataError, str(missing),
           "does not exist", "set data.path")


def test_tar_that_is_not_a_tar(victim, tmp_path, no_training):
  bogus = tmp_path / "data.tar.gz"
  bogus.write_bytes(b"PK\x03\x04 a zip, not a tar")
  rejected(folder_config(bogus, tmp_path), victim, DataError, str(bogus),
           "not a readable tar", "data.path")


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_corrupt_image_is_named(victim, tmp_path, no_training, ext):
  root = image_tree(tmp_path / "data")
  bad = root / "train" / "b" / f"0002{ext}"
  bad.write_bytes(b"\xff\xd8\xff\xe0 truncated" if ext == ".jpg" else b"\x89PNG\r\n garbage")
  rejected(folder_config(root, tmp_path), victim, DataError, str(bad),
           "not a readable JPEG/PNG", "replace or remove the file")


def test_mixed_image_sizes_without_resize(victim, tmp_path, no_training):
  root = image_tree(tmp_path / "data")
  _png(root / "train" / "c" / "big.png", 9, size=(12, 10))
  rejected(folder_config(root, tmp_path), victim, DataError, "big.png", "12x10",
           "data.image_size")


def test_empty_class(victim, tmp_path, no_training):
  root = image_tree(tmp_path / "data")
  (root / "train" / "d").mkdir()
  (root / "test" / "d").mkdir()
  rejected(folder_config(root, tmp_path), victim, DataError, "train/d",
           "empty class folder", "add images")


def test_empty_split(victim, tmp_path, no_training):
  root = image_tree(tmp_path / "data")
  shutil.rmtree(root / "test")
  (root / "test").mkdir()
  rejected(folder_config(root, tmp_path), victim, DataError, "test",
           "has no class folders", "split/class/image")


def test_single_class(victim, tmp_path, no_training):
  root = image_tree(tmp_path / "data", classes=("only",))
  rejected(folder_config(root, tmp_path), victim, DataError, str(root),
           "only 1 class", "at least 2 classes")


def test_labels_out_of_range(victim, monkeypatch, no_training):
  real = data_lib.LOADERS["digits"]

  def broken(*args, **kwargs):
    ds = real(*args, **kwargs)
    ds.train_labels[7] = 10  # one label past the 10 classes
    return ds

  monkeypatch.setitem(data_lib.LOADERS, "digits", broken)
  rejected(tiny_digits_config(), victim, DataError, "digits", "label 10",
           "outside [0, 10)", "labels must index class_names")


# ---------------------------------------------------------- workdir -------


def test_workdir_under_a_regular_file(tmp_path, no_training):
  blocker = tmp_path / "afile"
  blocker.write_text("keep me")
  rejected(tiny_digits_config(), blocker / "sub", ConfigError, "--workdir",
           str(blocker / "sub"), "choose a writable folder")
  assert blocker.read_text() == "keep me"


def test_workdir_is_a_regular_file(tmp_path, no_training):
  blocker = tmp_path / "afile"
  blocker.write_text("keep me")
  rejected(tiny_digits_config(), blocker, ConfigError, "--workdir", "writable folder")
  assert blocker.read_text() == "keep me"


def test_workdir_on_a_read_only_filesystem(no_training):
  target = Path("/proc/jax_al_test_run")  # /proc refuses new folders even to root
  rejected(tiny_digits_config(), target, ConfigError, "--workdir", str(target),
           "choose a writable folder")


def test_no_resume_on_existing_run_is_refused(victim, no_training):
  rejected(tiny_digits_config(resume=False), victim, ConfigError, "resume", "False",
           "already holds a run", "--overwrite", overwrite=False)


def test_resume_with_another_config_is_refused(victim, no_training):
  rejected(tiny_digits_config(al__budget=10), victim, ConfigError, "--workdir",
           str(victim), "different config", "al.budget: 20 there, 10 now", "--overwrite",
           overwrite=False)


def test_overwrite_replaces_only_our_outputs(victim):
  (victim / "notes.txt").write_text("mine")
  loop.run(tiny_digits_config(seed=3), victim, overwrite=True, quiet=True)
  assert (victim / "notes.txt").read_text() == "mine"
  assert '"seed": 3' in (victim / "config.json").read_text()


# -------------------------------------------------------------- CLI -------


def cli(*args, cwd=REPO):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=cwd,
                        capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("args,needles", [
    (["--config.al.budgt=5"],
     ["unknown config field `al.budgt`", "--config.al.budgt=5", "did you mean --config.al.budget"]),
    (["--config.al.budget=abc"],
     ["`al.budget`", "'abc'", "expected an integer", "--config.al.budget=20"]),
    (["--config.resume=maybe"], ["`resume`", "'maybe'", "true or false"]),
    (["--config.al.budget=0"], ["`al.budget`", "= 0", ">= 1"]),
], ids=["unknown_field", "wrong_type", "wrong_bool", "zero_size"])
@pytest.mark.slow
def test_cli_bad_flag(tmp_path, args, needles):
  workdir = tmp_path / "run"
  out = cli("--config", "configs/digits.py:random", f"--workdir={workdir}", *args)
  assert out.returncode == 1
  err = out.stderr.strip().splitlines()
  assert err and err[-1].startswith("error: "), out.stderr
  assert "Traceback" not in out.stderr
  for needle in needles:
    assert needle in err[-1], err[-1]
  assert not workdir.exists()


@pytest.mark.slow
def test_cli_bad_preset_and_missing_config_file(tmp_path):
  out = cli("--config", "configs/digits.py:entrpy", f"--workdir={tmp_path / 'run'}")
  assert out.returncode == 1 and "Traceback" not in out.stderr
  last = out.stderr.strip().splitlines()[-1]
  assert "'entrpy'" in last and "Did you mean 'entropy'" in last, last
  out = cli("--config", "configs/nope.py", f"--workdir={tmp_path / 'run'}")
  last = out.stderr.strip().splitlines()[-1]
  assert out.returncode == 1 and "configs/nope.py" in last and "does not exist" in last, last
  assert not (tmp_path / "run").exists()
