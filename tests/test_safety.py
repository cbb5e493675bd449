"""Nothing lost, nothing half-said: bad input refused before --overwrite
touches anything, memory estimates, the report's honesty, and the small
cases (--overwrite itself and files that are not ours: test_workdir.py).

Each test reproduces a path that lost a user's files or printed a traceback
before, and asserts on the outcome: the bytes on disk, the one-line message,
the exit code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, snapshot, tiny_digits_config
from jax_al import loop, memory, preflight, report
from jax_al import workdir as workdir_lib
from jax_al.errors import ConfigError, DataError


def cli(*args, cwd=REPO, module=None, timeout=180):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  cmd = [sys.executable, "-m", module] if module else [sys.executable, str(REPO / "run.py")]
  return subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, env=env,
                        timeout=timeout)


def one_line_error(out, *needles, code=1):
  """The command failed with `code`, printing one error line and no traceback."""
  assert out.returncode == code, (out.returncode, out.stderr[-2000:])
  assert "Traceback" not in out.stderr, out.stderr[-3000:]
  lines = [l for l in out.stderr.strip().splitlines() if l.strip()]
  assert lines, out.stderr
  last = lines[-1]
  for needle in needles:
    assert needle in last, f"{needle!r} not in {last!r}"
  return last


# ------------------------------------------ --overwrite with bad input ----


@pytest.mark.slow
def test_cli_overwrite_with_nan_lr_is_refused_before_anything(victim):
  before = snapshot(victim)
  out = cli("--config", "configs/digits.py:random", f"--workdir={victim}", "--overwrite",
            "--config.train.lr=nan", "--config.al.cycles=2")
  one_line_error(out, "`train.lr`", "nan", "finite")
  assert snapshot(victim) == before


# ------------------------------------------------------------------ memory ----


@pytest.mark.parametrize("fields,field", [
    (dict(train__eval_batch_size=10**9), "train.eval_batch_size"),
    (dict(al__strategy="uncertainty_mmd", al__approx="rff", al__rff_dim=10**9), "al.rff_dim"),
    (dict(num_trials=10_000, compare__parallel="vmap", model__width=16.0), "num_trials"),
    (dict(data__image_size=4096), "data.image_size"),  # 1,797 x 4096^2 bytes = 30 GB
], ids=["eval_chunk", "rff", "vmapped_trials", "decoded_data"])
def test_memory_is_estimated_before_allocating(victim, fields, field, monkeypatch):
  monkeypatch.setattr(memory, "host_available", lambda: 20 * 10**9)  # as on a 24 GB machine
  before = snapshot(victim)
  with pytest.raises(ConfigError) as e:
    loop.run(tiny_digits_config("random", **fields), victim, overwrite=True, quiet=True)
  msg = str(e.value)
  assert f"`{field}`" in msg and "of host memory" in msg and "are free" in msg, msg
  assert snapshot(victim) == before


def test_folder_resize_is_refused_before_decoding(tmp_path, monkeypatch):
  from test_bad_input import folder_config, image_tree

  root = image_tree(tmp_path / "data")
  monkeypatch.setattr(memory, "host_available", lambda: 10**8)
  decoded = []
  from jax_al.data import folder
  real = folder._decode
  monkeypatch.setattr(folder, "_decode", lambda *a: decoded.append(1) or real(*a))
  with pytest.raises(ConfigError, match=r"`data.image_size` = 4096.*18 images"):
    loop.run(folder_config(root, tmp_path, data__image_size=4096), tmp_path / "run", quiet=True)
  assert not decoded and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_shipped_configs_pass_the_memory_check():
  """The CIFAR protocol on a 24 GB CPU machine (this one) and on an H200."""
  from configs import cifar10

  for dtype in ("float32", "bfloat16"):
    c = cifar10.get_config()
    c.train.dtype = dtype
    prof = memory.model_profile(c, 10, (32, 32, 3))
    assert 40e6 < prof.param_bytes < 50e6 and prof.feature_dim == 512
    memory.check_run(c, 50_000, 10_000, 10, (32, 32, 3), 10_000, 17_500, prof)
    with c.unlocked():
      c.num_trials, c.compare.parallel = 3, "vmap"
    memory.check_run(c, 50_000, 10_000, 10, (32, 32, 3), 10_000, 17_500, prof)


# ------------------------------------------------------------------ report ----


@pytest.fixture(scope="module")
def report_runs(tmp_path_factory):
  """A complete 2-trial random run, a 2-trial entropy run whose trial 2 stopped
  after cycle 1 of 3, and a run with nothing but an error record."""
  root = tmp_path_factory.mktemp("cmp")
  loop.run(tiny_digits_config("random", num_trials=2, al__cycles=3), root / "random", quiet=True)
  entropy = root / "entropy"
  loop.run(tiny_digits_config("entropy", num_trials=2, al__cycles=3), entropy, quiet=True)
  recs = [json.loads(l) for l in (entropy / "metrics.jsonl").read_text().splitlines()]
  keep = [r for r in recs if r["trial"] == 0 or r["cycle"] == 1]
  (entropy / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
  (entropy / "summary.json").unlink()  # stopped: the run never ended
  return root


@pytest.mark.slow
def test_report_leaves_partial_trials_out_and_says_so(report_runs, tmp_path):
  warnings = []
  s = report.make_report([report_runs], tmp_path / "out", warn=warnings.append)
  e = s["strategies"]["entropy"]
  assert e["trials"] == [0] and e["partial"] == [1] and e["labeled"] == [20, 40, 60]
  assert any("entropy: 1 partial trial(s) [1] of 3 cycles, left out" in w for w in warnings)
  assert s["strategies"]["random"]["trials"] == [0, 1]
  md = (tmp_path / "out" / "report.md").read_text()
  assert "| entropy | 1 (1 partial left out) |" in md and "| random | 2 |" in md


def test_report_includes_partial_trials_marked(report_runs, tmp_path):
  s = report.make_report([report_runs], tmp_path / "out", include_partial=True)
  e = s["strategies"]["entropy"]
  assert e["partial_included"] == [1] and e["trials"] == [0]  # AUC over complete only
  assert "1 (+1 partial*)" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.slow
def test_report_aligns_by_size_and_explains_missing_pairs(report_runs, tmp_path):
  """A run of other sizes gets its own columns and a note, never a shifted row."""
  other = tmp_path / "cmp"
  shutil.copytree(report_runs / "random", other / "random")
  loop.run(tiny_digits_config("margin", al__budget=30, al__cycles=2), other / "margin", quiet=True)
  s = report.make_report([other], tmp_path / "out")
  assert s["strategies"]["margin"]["labeled"] == [20, 50]
  assert "vs_baseline" not in s["strategies"]["margin"]
  assert any("margin: no paired row, its labeled sizes [20, 50] differ" in n for n in s["notes"])
  header = [l for l in (tmp_path / "out" / "report.md").read_text().splitlines()
            if l.startswith("| strategy | trials |")][0]
  assert "| 20 | 40 | 50 | 60 |" in header
  s = report.make_report([other / "margin"], tmp_path / "out2")
  assert any("no paired table: the baseline 'random' is not among the runs" in n
             for n in s["notes"])


def test_plain_run_in_a_comparison_root_is_reported_with_its_strategies(report_runs, tmp_path):
  root = tmp_path / "root"
  shutil.copytree(report_runs / "random", root / "random")
  for f in ("config.json", "metrics.jsonl", "selected.jsonl", "summary.json"):
    shutil.copy(report_runs / "random" / f, root / f)
  warnings = []
  s = report.make_report([root], tmp_path / "out", warn=warnings.append)
  assert set(s["strategies"]) == {"root", "random"}
  assert any("a plain run was written into a comparison root" in w for w in warnings)


@pytest.mark.parametrize("case", ["empty", "unrelated", "garbage", "error_only", "unwritable",
                                  "a_file"])
def test_report_bad_input_is_one_line_naming_the_file(case, report_runs, tmp_path):
  target, out = tmp_path / "in", tmp_path / "out"
  target.mkdir()
  needles = [str(target)]
  if case == "unrelated":
    (target / "notes.txt").write_text("hello")
    (target / "sub").mkdir()
    needles.append("no run workdir")
  elif case == "empty":
    needles.append("no run workdir")
  elif case == "garbage":
    (target / "metrics.jsonl").write_text('{"kind": "cycle"}\nnot json\n')
    needles = [str(target / "metrics.jsonl") + ":1", "numeric 'trial'"]
  elif case == "error_only":
    (target / "metrics.jsonl").write_text(
        '{"kind": "error", "trial": 0, "cycle": 1, "error": "boom"}\n')
    needles = [str(target / "metrics.jsonl"), "1 error record(s) and no finished trial"]
  elif case == "unwritable":
    target = report_runs / "random"
    out.write_text("a file where the folder should go")
    needles = [str(out), "is a file, not a folder"]
  elif case == "a_file":
    target = report_runs / "random" / "metrics.jsonl"
    needles = [str(target), "is a file"]
  res = cli(str(target), "--out", str(out), module="jax_al.report", timeout=120)
  one_line_error(res, *needles)


# ---------------------------------------------------------- smaller ones ----


@pytest.mark.parametrize("spec,needles", [
    ("README.md", ["'README.md' is not a config file"]),
    ("run.py", ["'run.py' is not a config file", "get_config"]),
    ("configs/digits.py:", ["ends in ':' with no preset name", "users"]),
], ids=["markdown", "run_py", "empty_preset"])
def test_config_argument_that_is_no_config_file(spec, needles, tmp_path):
  out = cli("--config", spec, f"--workdir={tmp_path / 'run'}")
  one_line_error(out, *needles)
  assert not (tmp_path / "run").exists()


def test_empty_strategy_list_is_refused(victim):
  before = snapshot(victim)
  with pytest.raises(ConfigError, match="compare.strategies.*names no strategy"):
    loop.run(tiny_digits_config(compare__strategies=",,,"), victim, quiet=True)
  assert snapshot(victim) == before


def test_lock_is_taken_before_the_data_loads(victim, monkeypatch):
  holder = workdir_lib.Lock(victim)
  monkeypatch.setattr(preflight, "load_dataset", lambda *a: pytest.fail("data loaded"))
  try:
    with pytest.raises(ConfigError, match="another jax-al process"):
      loop.run(tiny_digits_config(), victim, quiet=True)
  finally:
    holder.close()


@pytest.mark.parametrize("content,needle", [
    (b"", "is not a readable JPEG/PNG image (an empty file, 0 bytes)"),
    (b"plain text, not an image", "is not a readable JPEG/PNG image (24 bytes in no format"),
], ids=["zero_bytes", "not_an_image"])
def test_unreadable_image_is_named_plainly(tmp_path, content, needle):
  from test_bad_input import folder_config, image_tree

  root = image_tree(tmp_path / "data")
  bad = root / "train" / "b" / "0001.png"
  bad.write_bytes(content)
  with pytest.raises(DataError) as e:
    loop.run(folder_config(root, tmp_path), tmp_path / "run", quiet=True)
  msg = str(e.value)
  assert str(bad) in msg and needle in msg and "BytesIO" not in msg, msg


def test_a_signal_lost_in_a_gc_callback_is_raised_after_the_next_commit():
  # Python drops an exception raised inside a gc callback (jax runs one):
  # a Ctrl-C there once let a run go on and exit 0.
  from jax_al import errors
  with errors.handle_signals():
    try:
      errors._SIGNALS.handler(2, None)
    except errors.Interrupted:
      pass  # what the gc machinery does with it
    with pytest.raises(errors.Interrupted) as e:
      with errors.critical():
        committed = True
    assert committed and e.value.signum == 2
    with errors.critical():  # raised once, not again
      pass
  # acknowledged (or a fresh handle_signals) clears it
  with errors.handle_signals():
    with errors.critical():
      pass


def _long_program():
  """A compiled program of a few seconds and the seconds it takes."""
  import time

  import jax
  import jax.numpy as jnp
  import numpy as np

  f = jax.jit(lambda x: jax.lax.fori_loop(0, 60, lambda i, a: jnp.tanh(a @ x), x))
  x = jnp.full((1000, 1000), 1e-3)
  np.asarray(f(x))  # compiled
  t0 = time.perf_counter()
  np.asarray(f(x))
  return (lambda: np.asarray(f(x))), time.perf_counter() - t0


@pytest.mark.slow
def test_a_signal_during_a_compiled_selection_is_answered_at_once():
  """Reading a compiled program's result back (np.asarray) holds the main
  thread, and Python runs signal handlers only between bytecodes: a Ctrl-C
  25 s into a 65 s selection of `run.py` was answered 43 s later.
  `errors.answering_signals` (which `cycle.select` runs the strategy in)
  answers it at once; outside `handle_signals` it is a plain call."""
  import signal
  import threading
  import time

  from jax_al import errors
  read_back, seconds = _long_program()
  took = {}
  for how in ("plain", "answering"):
    with errors.handle_signals():
      threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
      t0 = time.perf_counter()
      with pytest.raises(errors.Interrupted):
        if how == "plain":
          read_back()
        else:
          errors.answering_signals(read_back)
        time.sleep(5 * seconds)  # a signal that was lost is still raised here
      took[how] = time.perf_counter() - t0
    time.sleep(seconds)  # the abandoned program ends
  assert took["plain"] > 0.7 * seconds, (took, seconds)  # the problem is real here
  assert took["answering"] < 0.2 + min(1.0, 0.5 * seconds), (took, seconds)
  assert errors.answering_signals(lambda: 7) == 7  # no handlers: a plain call
  with errors.handle_signals(), pytest.raises(ZeroDivisionError):
    errors.answering_signals(lambda: 1 / 0)  # the worker's error, raised here


def test_a_run_selects_where_a_signal_is_answered(tmp_path, monkeypatch):
  """Under the commands' signal handlers, every cycle's strategy runs in
  `errors.answering_signals`' worker thread (not the main thread)."""
  import threading

  from jax_al import errors, strategies
  seen = []
  select = strategies.get_strategy("random", tiny_digits_config().al).__class__.select

  def spy(self, pool, budget, rng):
    seen.append(threading.current_thread().name)
    return select(self, pool, budget, rng)

  monkeypatch.setattr(type(strategies.get_strategy("random", tiny_digits_config().al)),
                      "select", spy)
  with errors.handle_signals():
    loop.run(tiny_digits_config("random"), tmp_path / "run", quiet=True)
  assert seen == ["jax-al-answering-signals"], seen
