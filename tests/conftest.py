"""Shared test helpers: tiny digits configs and workdir snapshots."""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `configs` is a top-level package of the repo
  sys.path.insert(0, str(REPO))

# One on-disk XLA compilation cache for the test session and the run.py
# subprocesses it starts, apart from the user's ~/.cache/jax_al/xla (set
# before jax is imported, which reads it from the environment).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _xla_cache = tempfile.mkdtemp(prefix="jax_al_tests_xla_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _xla_cache
  atexit.register(shutil.rmtree, _xla_cache, ignore_errors=True)
# The study plan's throughput measurements (jax_al/study/throughput.py), apart
# from the user's ~/.cache/jax_al/throughput.json, for this session and its subprocesses.
if "JAX_AL_THROUGHPUT_CACHE" not in os.environ:
  _rates = tempfile.mkdtemp(prefix="jax_al_tests_rates_")
  os.environ["JAX_AL_THROUGHPUT_CACHE"] = os.path.join(_rates, "throughput.json")
  atexit.register(shutil.rmtree, _rates, ignore_errors=True)
# Store every program, as `compiles.use_persistent_cache` does for users (it
# leaves a folder set in the environment alone, and JAX's default keeps only
# programs that took >= 1 s): the run.py subprocesses of the tests then load
# the model's ~40 small initialisation programs instead of compiling them.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def set_field(config, dotted: str, value) -> None:
  """`config.a.b = value` for dotted = "a.b"."""
  *path, last = dotted.split(".")
  node = config
  for part in path:
    node = node[part]
  node[last] = value


def tiny_digits_config(strategy: str = "random", **fields):
  """The digits config cut to seconds: 2 cycles of 2 epochs, 20 + 20 labels.

  `fields` are dotted overrides with "__" for ".", e.g. al__cycles=3.
  """
  from configs import digits

  c = digits.get_config(strategy)
  c.al.cycles = 2
  c.train.epochs = 2
  c.train.eval_every = 1
  c.train.milestones = (1,)
  for k, v in fields.items():
    set_field(c, k.replace("__", "."), v)
  return c


def snapshot(root: Path) -> dict[str, str]:
  """{relative path: sha256} of every file under `root` (symlinks by target)."""
  root = Path(root)
  out = {}
  for p in sorted(root.rglob("*")):
    rel = p.relative_to(root).as_posix()
    if p.is_symlink():
      out[rel] = "link:" + str(p.readlink())
    elif p.is_file():
      out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
  return out


@pytest.fixture
def tiny_config():
  """Factory: tiny_config("entropy", al__cycles=3) -> a small digits ConfigDict."""
  return tiny_digits_config


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
  """A finished tiny run (random, 2 cycles) to be protected."""
  from jax_al import loop

  workdir = tmp_path_factory.mktemp("finished") / "run"
  loop.run(tiny_digits_config("random"), workdir, quiet=True)
  return workdir


@pytest.fixture
def victim(finished, tmp_path) -> Path:
  """A private copy of the finished run."""
  dest = tmp_path / "run"
  shutil.copytree(finished, dest)
  return dest


# --------------------------------------------- interrupts and stopped runs ------


class Interrupt(BaseException):
  """Stands for a kill: not an Exception, so nothing catches and logs it."""


def count_calls(monkeypatch, cls, name: str, interrupt_at: int | None = None) -> list:
  """Counts calls of `cls.name`; raises Interrupt in call `interrupt_at`."""
  real = getattr(cls, name)
  calls = []

  def wrapper(*args, **kwargs):
    calls.append(1)
    if len(calls) == interrupt_at:
      raise Interrupt()
    return real(*args, **kwargs)

  monkeypatch.setattr(cls, name, wrapper)
  return calls


def count_fits(monkeypatch, interrupt_at: int | None = None) -> list:
  """Counts Trainer.fit calls (one per cycle); raises Interrupt in call `interrupt_at`."""
  from jax_al import train

  return count_calls(monkeypatch, train.Trainer, "fit", interrupt_at)


@pytest.fixture
def no_training(monkeypatch):
  from jax_al import train

  def fail(*args, **kwargs):
    raise AssertionError("a finished cycle was trained again")
  monkeypatch.setattr(train.Trainer, "fit", fail)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
  """A 3-cycle run stopped after cycle 1 (cycle 2 never finished)."""
  from jax_al import checkpoint, loop

  run = tmp_path_factory.mktemp("stopped") / "run"
  config = tiny_digits_config(al__cycles=3)
  with pytest.MonkeyPatch.context() as m:
    count_fits(m, interrupt_at=2)
    with pytest.raises(Interrupt):
      loop.run(config, run, quiet=True)
  assert checkpoint.latest(run, 0) == 1
  return run, config


@pytest.fixture
def stopped_copy(stopped, tmp_path):
  run, config = stopped
  dest = tmp_path / "run"
  shutil.copytree(run, dest, symlinks=True)
  return dest, config


CIFAR = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture(scope="session")
def cifar_cache(tmp_path_factory) -> Path:
  """A data cache folder holding the decoded ../shared CIFAR-10 copy, one for
  the whole test session (skips when the copy is absent).

  Decoding the copy takes about 7 s, and three test files read it whole. The
  folder sits beside the xdist workers' own temp folders, and the first worker
  decodes into it under a lock while the others wait, so the copy is decoded
  once per session and never into the user's ~/.cache/jax_al.
  """
  if not CIFAR.exists():
    pytest.skip(f"{CIFAR} is absent (the ../shared CIFAR-10 copy)")
  from configs import common
  from jax_al.data import load_dataset

  base = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    base = base.parent  # shared by every worker of this session
  folder = base / "cifar_cache"
  folder.mkdir(exist_ok=True)
  with open(base / "cifar_cache.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    c = common.base().data
    c.source, c.path, c.cache_dir = "folder", str(CIFAR), str(folder)
    load_dataset(c)  # decodes on the first call, a cache hit after
  return folder


# The files that take longest, heaviest first (seconds on the 2-core CPU VM,
# 2026-12-04, `-n 2 --dist loadfile`). pytest-xdist hands out whole files in
# collection order; starting the long ones first keeps one worker from
# running a long file alone at the end (longest-processing-time first).
# Only the order changes: every file still runs, the rest alphabetically.
HEAVY_FILES = ("test_gpu_kit.py", "test_study.py", "test_rounds.py", "test_train.py",
               "test_reliability.py", "test_install.py", "test_sharding.py", "test_parallel.py",
               "test_labelstudio.py", "test_baselines.py", "test_uncertainty_mmd.py",
               "test_compiles.py", "test_scores.py", "test_learning_loss.py", "test_report.py",
               "test_run.py", "test_select_cli.py", "test_stream.py", "test_bench.py",
               "test_fuzz.py")


def pytest_collection_modifyitems(config, items):
  rank = {name: k for k, name in enumerate(HEAVY_FILES)}
  # sort is stable: the tests of one file keep their order.
  items.sort(key=lambda it: rank.get(it.path.name, len(rank)))


def rejected(config, workdir, error, *needles, overwrite=True):
  """Runs and expects `error` whose message holds every needle; returns it."""
  from jax_al import loop

  before = snapshot(workdir) if Path(workdir).is_dir() else None
  with pytest.raises(error) as e:
    loop.run(config, workdir, overwrite=overwrite, quiet=True)
  msg = str(e.value)
  for needle in needles:
    assert needle in msg, f"{needle!r} not in message: {msg}"
  if before is not None:
    assert snapshot(workdir) == before, "bad input changed the existing run"
  return msg
