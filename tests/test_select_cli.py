"""`jax-al select` on files (issue 25 §3) and the one-line "not a flag" answer
to a stray word (issue 24.12).

Real data: a digits pool scored by scikit-learn's LogisticRegression, saved
as .npz, .npy and Parquet; the command's picks must equal `jax_al.select`'s
on the same arrays. A hypothesis fuzz builds bad pool and labeled files and
checks each is refused with exit code != 0, one line, and nothing written.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import jax_al
from jax_al import select_files

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
  """pool.npz (features, probs, ids), labeled.csv (the first 100 ids), and the arrays."""
  x, y = load_digits(return_X_y=True)
  x = x.astype(np.float32)
  labeled = np.zeros(len(x), bool)
  labeled[:100] = True
  probs = LogisticRegression(max_iter=2000).fit(x[labeled], y[labeled]).predict_proba(x)
  ids = np.asarray([f"scans/digit_{i:04d}.png" for i in range(len(x))])
  d = tmp_path_factory.mktemp("pool")
  np.savez(d / "pool.npz", features=x, probs=probs, ids=ids)
  with open(d / "labeled.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "label"])
    for i in np.flatnonzero(labeled):
      w.writerow([ids[i], int(y[i])])
  return d, x, probs, ids, labeled


def _read_picks(path):
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  return rows


def _select(*args):
  """The command in this process (argv after `select`): picks.json's document."""
  return select_files.run([str(a) for a in args])


@pytest.mark.parametrize("strategy", ["margin", "entropy", "coreset", "badge", "users"])
@pytest.mark.slow
def test_picks_equal_the_api(digits, tmp_path, strategy):
  d, x, probs, ids, labeled = digits
  out = tmp_path / "picks.csv"
  doc = _select("--pool", d / "pool.npz", "--strategy", strategy, "--budget", 15, "--out", out,
                "--labeled", d / "labeled.csv", "--seed", 4)
  ref = jax_al.select(strategy, features=x, probs=probs, labeled=labeled, budget=15, seed=4)
  rows = _read_picks(out)
  assert [r["id"] for r in rows] == [ids[i] for i in ref.indices]
  assert [int(r["rank"]) for r in rows] == list(range(1, 16))
  np.testing.assert_array_equal(np.asarray([float(r["score"]) for r in rows], np.float32),
                                ref.scores)
  assert not labeled[np.searchsorted(ids, [r["id"] for r in rows])].any()
  side = json.loads((tmp_path / "picks.json").read_text())
  assert side["strategy"] == ref.strategy and side["seed"] == 4 and side["budget"] == 15
  assert side["settings"] == json.loads(json.dumps(ref.settings))
  pool_sha = hashlib.sha256((d / "pool.npz").read_bytes()).hexdigest()
  assert side["inputs"]["pool"]["sha256"] == pool_sha
  assert side["inputs"]["labeled"]["rows"] == 100
  assert side["timing"]["select_s"] > 0 and doc["picks"] == "picks.csv"


@pytest.mark.slow
def test_settings_reach_the_selection(digits, tmp_path):
  """--config.al.<field> overrides are config.al fields, as in jax_al.select."""
  d, x, probs, ids, labeled = digits
  _select("--pool", d / "pool.npz", "--strategy", "users", "--budget", 12, "--out",
          tmp_path / "p.csv", "--labeled", d / "labeled.csv", "--config.al.lam=0.5",
          "--config.al.normalize=rank", "--config.al.kmeans.n_init", "2")
  ref = jax_al.select("users", features=x, probs=probs, labeled=labeled, budget=12, lam=0.5,
                      normalize="rank", **{"kmeans.n_init": 2})
  assert [r["id"] for r in _read_picks(tmp_path / "p.csv")] == [ids[i] for i in ref.indices]
  side = json.loads((tmp_path / "p.json").read_text())
  assert side["settings"]["lam"] == 0.5 and side["settings"]["normalize"] == "rank"
  assert side["settings"]["kmeans"]["n_init"] == 2


def test_npy_is_memory_mapped_and_parquet_matches(digits, tmp_path):
  pa = pytest.importorskip("pyarrow")
  import pyarrow.parquet as pq
  d, x, probs, ids, labeled = digits
  np.save(tmp_path / "features.npy", x)
  assert isinstance(select_files.load_pool(tmp_path / "features.npy")["features"], np.memmap)
  with open(tmp_path / "rows.csv", "w") as f:  # no ids in a .npy: row numbers
    f.write("id,label\n" + "".join(f"{i},0\n" for i in np.flatnonzero(labeled)))
  _select("--pool", tmp_path / "features.npy", "--strategy", "coreset", "--budget", 10,
          "--out", tmp_path / "a.csv", "--labeled", tmp_path / "rows.csv")
  ref = jax_al.select("coreset", features=x, labeled=labeled, budget=10)
  assert [int(r["id"]) for r in _read_picks(tmp_path / "a.csv")] == ref.indices.tolist()

  table = pa.table({"id": ids.tolist(), "embedding": [list(map(float, r)) for r in x],
                    "probs": [list(map(float, r)) for r in probs]})
  pq.write_table(table, tmp_path / "pool.parquet")
  _select("--pool", tmp_path / "pool.parquet", "--strategy", "margin", "--budget", 10,
          "--out", tmp_path / "b.csv", "--labeled", d / "labeled.csv")
  ref = jax_al.select("margin", features=x, probs=probs, labeled=labeled, budget=10)
  assert [r["id"] for r in _read_picks(tmp_path / "b.csv")] == [ids[i] for i in ref.indices]


def test_parquet_without_pyarrow_says_pip_install(digits, tmp_path, monkeypatch):
  import builtins
  real = builtins.__import__

  def no_pyarrow(name, *a, **k):
    if name.startswith("pyarrow"):
      raise ImportError(name)
    return real(name, *a, **k)

  (tmp_path / "p.parquet").write_bytes(b"PAR1")
  monkeypatch.setattr(builtins, "__import__", no_pyarrow)
  with pytest.raises(SystemExit) as e:
    _select("--pool", tmp_path / "p.parquet", "--strategy", "coreset", "--budget", 1, "--out",
            tmp_path / "o.csv")
  assert "pip install pyarrow" in str(e.value.code) and "\n" not in str(e.value.code)


def test_outputs_follow_the_ledger(digits, tmp_path):
  """Its own picks are replaced on a rerun; a file it did not write is not,
  and neither output is written when either is refused."""
  d = digits[0]
  args = ["--pool", d / "pool.npz", "--strategy", "margin", "--budget", 3, "--out",
          tmp_path / "picks.csv"]
  _select(*args)
  _select(*args[:5], 4, *args[6:])  # a rerun replaces what it wrote
  assert len(_read_picks(tmp_path / "picks.csv")) == 4
  (tmp_path / "other.json").write_text("my notes\n")
  with pytest.raises(SystemExit) as e:
    _select(*args[:6], "--out", tmp_path / "other.csv")
  assert "other.json" in str(e.value.code) and "did not write it" in str(e.value.code)
  assert not (tmp_path / "other.csv").exists()
  assert (tmp_path / "other.json").read_text() == "my notes\n"


# ----------------------------------------------------------- bad input ------

N, D, C = 24, 4, 3


def _good(rs):
  x = rs.standard_normal((N, D)).astype(np.float32)
  logits = rs.standard_normal((N, C)).astype(np.float32)
  return {"features": x, "logits": logits, "ids": np.asarray([f"item{i}" for i in range(N)])}


CASES = ("rows", "nan", "inf", "dup_ids", "labeled_missing", "labeled_dup", "probs_sum",
         "probs_range", "sample_classes", "ids_rows", "budget", "missing_logits",
         "missing_samples", "missing_loss", "unknown_field", "bad_value", "unknown_array",
         "no_features", "ragged_parquet", "not_npz", "labeled_no_id", "stray_word",
         "wrong_out", "features_1d", "no_labeled_set")


@st.composite
def bad_inputs(draw, case):
  """One bad input of kind `case`, its details drawn: (case, pool arrays,
  labeled.csv lines or None, pool file name, strategy, budget, extra flags,
  a word the one line must contain, the bad row)."""
  rs = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
  arrays = _good(rs)
  labeled = None
  strategy, budget, extra = "margin", 3, []
  row = draw(st.integers(0, N - 1))

  name = "pool.npz"
  want = "pool.npz"
  if case == "rows":
    arrays["logits"] = arrays["logits"][:draw(st.integers(1, N - 1))]
    want = "logits"
  elif case in ("nan", "inf"):
    which = draw(st.sampled_from(["features", "logits"]))
    arrays[which][row, draw(st.integers(0, arrays[which].shape[1] - 1))] = \
        np.nan if case == "nan" else -np.inf
    want = f"row {row}"
  elif case == "dup_ids":
    other = draw(st.integers(0, N - 1).filter(lambda r: r != row))
    arrays["ids"][other] = arrays["ids"][row]
    want = "repeats id"
  elif case == "labeled_missing":
    labeled = ["id,label", "item1,0", f"nosuch{row},1"]
    want = f"nosuch{row}"
  elif case == "labeled_dup":
    labeled = ["id,label", f"item{row},0", "item0,1", f"item{row},2"]
    want = f"item{row}"
  elif case == "probs_sum":
    p = rs.random((N, C)).astype(np.float32) + 0.1
    p /= p.sum(1, keepdims=True)
    p[row] *= draw(st.sampled_from([0.5, 1.5, 3.0]))
    p[row] = np.minimum(p[row], 1.0)
    arrays["probs"] = p
    del arrays["logits"]
    want = f"row {row}"
  elif case == "probs_range":
    p = np.full((N, C), 1 / C, np.float32)
    p[row] = [1.5, -0.25, -0.25]
    arrays["probs"] = p
    del arrays["logits"]
    want = f"row {row}"
  elif case == "sample_classes":
    arrays["sample_logits"] = rs.standard_normal((2, N, C + 1)).astype(np.float32)
    strategy = "bald"
    want = "sample_logits"
  elif case == "ids_rows":
    arrays["ids"] = arrays["ids"][:-draw(st.integers(1, 5))]
    want = "ids"
  elif case == "budget":
    labeled = ["id,label"] + [f"item{i},0" for i in range(10)]
    budget = draw(st.integers(N - 9, 3 * N))
    want = "--budget"
  elif case == "missing_logits":
    del arrays["logits"]
    strategy = draw(st.sampled_from(["margin", "entropy", "badge", "users"]))
    want = "logits"
  elif case == "missing_samples":
    strategy = draw(st.sampled_from(["bald", "variation_ratio", "ensemble_entropy"]))
    want = "sample_logits"
  elif case == "missing_loss":
    strategy = "learning_loss"
    want = "predicted_loss"
  elif case == "unknown_field":
    field = draw(st.sampled_from(["lamm", "kmean.n_init", "normalise", "rff", "sigmaa"]))
    extra = [f"--config.al.{field}=1"]
    want = field
  elif case == "bad_value":
    field, value = draw(st.sampled_from([("lam", "abc"), ("normalize", "sideways"),
                                         ("kmeans.n_init", "0"), ("lam", "nan")]))
    extra = [f"--config.al.{field}={value}"]
    strategy = "users"
    want = field
  elif case == "unknown_array":
    arrays["logit"] = arrays.pop("logits")
    want = "logit"
  elif case == "no_features":
    arrays["embeddings"] = arrays.pop("features")
    want = "features"
  elif case == "features_1d":
    arrays["features"] = arrays["features"][:, 0]
    want = "features"
  elif case == "ragged_parquet":
    name = want = "pool.parquet"
  elif case == "not_npz":
    want = "pool.npz"
  elif case == "labeled_no_id":
    labeled = ["name,label", "item1,0"]
    want = "'id'"
  elif case == "stray_word":
    extra = ["config.al.lam=0.5"]
    want = "--config.al.lam=0.5"
  elif case == "wrong_out":
    want = "--out"
  elif case == "no_labeled_set":  # the MMD term reads the labeled set
    strategy = draw(st.sampled_from(["users", "witness", "greedy"]))
    want = "--labeled"
  return case, arrays, labeled, name, strategy, budget, extra, want, row


def _write_case(folder: Path, case, arrays, labeled, name):
  pool = folder / name
  if case == "ragged_parquet":
    import pyarrow as pa
    import pyarrow.parquet as pq
    emb = [list(map(float, r)) for r in arrays["features"]]
    emb[3] = emb[3][:-1]
    pq.write_table(pa.table({"id": arrays["ids"].tolist(), "embedding": emb}), pool)
  elif case == "not_npz":
    pool.write_bytes(b"PK\x03\x04 this is not a zip archive")
  else:
    np.savez(pool, **arrays)
  if labeled is not None:
    (folder / "labeled.csv").write_text("\n".join(labeled) + "\n")
  return pool


@pytest.mark.parametrize("case", CASES)
def test_fuzz_bad_files_one_line_nothing_written(capsys, case):
  pytest.importorskip("pyarrow")

  @settings(max_examples=10, deadline=None, database=None, derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
  @given(bad_inputs(case))
  def check(drawn):
    case, arrays, labeled, name, strategy, budget, extra, want, _ = drawn
    with tempfile.TemporaryDirectory() as tmp:
      folder = Path(tmp)
      pool = _write_case(folder, case, arrays, labeled, name)
      out = folder / "out" / ("picks.txt" if case == "wrong_out" else "picks.csv")
      argv = ["--pool", str(pool), "--strategy", strategy, "--budget", str(budget),
              "--out", str(out), *extra]
      if labeled is not None:
        argv += ["--labeled", str(folder / "labeled.csv")]
      before = sorted(p.name for p in folder.rglob("*"))
      with pytest.raises(SystemExit) as e:
        select_files.run(argv)
      msg = e.value.code
      assert isinstance(msg, str) and msg.startswith("error: "), (case, msg)
      assert "\n" not in msg and want in msg, (case, msg)
      if case not in ("unknown_field", "bad_value"):  # a setting: its fix as select words it
        assert "Fix:" in msg, (case, msg)
      assert sorted(p.name for p in folder.rglob("*")) == before, case
      captured = capsys.readouterr()
      assert captured.out == "" and captured.err == "", (case, captured)

  check()


def test_bad_file_from_the_command_line(tmp_path):
  """The installed command's contract in a real process: exit 1, one line on
  stderr, nothing written."""
  arrays = _good(np.random.default_rng(0))
  arrays["features"][5, 1] = np.nan
  np.savez(tmp_path / "pool.npz", **arrays)
  p = subprocess.run([sys.executable, "-m", "jax_al", "select", "--pool", "pool.npz",
                      "--strategy", "margin", "--budget", "2", "--out", "picks.csv"],
                     cwd=tmp_path, capture_output=True, text=True, timeout=300,
                     env=dict(os.environ, JAX_PLATFORMS="cpu"))
  err = p.stderr.strip().splitlines()
  assert p.returncode == 1 and len(err) == 1, p.stderr
  assert "pool.npz" in err[0] and "features" in err[0] and "row 5" in err[0]
  assert sorted(os.listdir(tmp_path)) == ["pool.npz"]


# ------------------------------------------------ a stray word (24.12) ------


_SLOW = pytest.mark.slow


# run.py, the study and export are in the fast tier: their __main__ modules
# run only in subprocesses, and this is their fastest test.
@pytest.mark.parametrize("cmd", [
    ["run.py", "--config", "configs/digits.py"],
    pytest.param(["-m", "jax_al", "run", "--config", "configs/digits.py"], marks=_SLOW),
    ["-m", "jax_al.study", "--config", "configs/digits.py", "--plan"],
    pytest.param(["-m", "jax_al", "study", "--config", "configs/digits.py", "--plan"],
                 marks=_SLOW),
    pytest.param(["-m", "jax_al", "select", "--pool", "p.npz", "--strategy", "margin",
                  "--budget", "1", "--out", "o.csv"], marks=_SLOW),
    pytest.param(["-m", "jax_al", "bench", "selection", "--quick"], marks=_SLOW),
    pytest.param(["-m", "jax_al", "bench", "train", "--quick"], marks=_SLOW),
    ["-m", "jax_al.export", "--config", "configs/digits.py", "--out", "x.npz"],
], ids=["run.py", "jax-al run", "study", "jax-al study", "jax-al select", "jax-al bench",
        "jax-al bench train", "export"])
def test_a_stray_word_is_one_line_naming_the_flag(tmp_path, cmd):
  p = subprocess.run([sys.executable, *cmd, "config.al.budget=10"], cwd=ROOT,
                     capture_output=True, text=True, timeout=300,
                     env=dict(os.environ, JAX_PLATFORMS="cpu"))
  err = p.stderr.strip().splitlines()
  assert p.returncode != 0 and len(err) == 1, p.stdout[-2000:] + p.stderr[-2000:]
  assert "'config.al.budget=10' is not a flag" in err[0] and "--config.al.budget=10" in err[0]
  assert p.stdout == ""


def test_jax_al_help_lists_the_commands():
  p = subprocess.run([sys.executable, "-m", "jax_al", "--help"], cwd=ROOT, capture_output=True,
                     text=True, timeout=120)
  assert p.returncode == 0
  for name in ("run", "select", "report", "study", "bench"):
    assert f"\n  {name} " in p.stdout
  p = subprocess.run([sys.executable, "-m", "jax_al", "selct"], cwd=ROOT, capture_output=True,
                     text=True, timeout=120)
  assert p.returncode == 2 and p.stderr.count("\n") == 1 and "'select'" in p.stderr


@pytest.mark.slow
def test_the_readme_example_runs(digits, tmp_path, monkeypatch):
  """The README's `jax-al select` command, word for word, on the digits pool."""
  import shlex
  import shutil

  text = (ROOT / "README.md").read_text()
  block = next(b.split("```", 1)[0] for b in text.split("```bash\n")[1:]
               if "jax-al select --pool" in b)
  words = shlex.split(block.replace("\\\n", " "))
  assert words[:2] == ["jax-al", "select"]
  d = digits[0]
  for name in ("pool.npz", "labeled.csv"):
    shutil.copy(d / name, tmp_path / name)
  monkeypatch.chdir(tmp_path)
  doc = select_files.run(words[2:])
  assert len(_read_picks(tmp_path / "picks.csv")) == doc["budget"] == 20
  assert doc["settings"]["lam"] == 0.5 and (tmp_path / "picks.json").is_file()


def test_a_failed_write_is_one_line(digits, tmp_path, monkeypatch):
  """Disk full while writing picks.json: one line saying what was written."""
  import errno

  from jax_al import files

  def full(path, obj):
    raise OSError(errno.ENOSPC, "No space left on device", str(path))

  monkeypatch.setattr(files, "write_output_json", full)
  with pytest.raises(SystemExit) as e:
    _select("--pool", digits[0] / "pool.npz", "--strategy", "margin", "--budget", 2, "--out",
            tmp_path / "picks.csv")
  msg = str(e.value.code)
  assert "\n" not in msg and "No space left" in msg and "picks.csv was written" in msg
  assert not (tmp_path / "picks.json").exists()


def test_an_empty_pool_and_an_unwritable_out_are_one_line(tmp_path, monkeypatch):
  # Found by a hostile pass: a 0-row pool raised a reshape ValueError, and a
  # write refused by the filesystem (/sys, /proc) an uncaught WriteError.
  from jax_al import files

  np.savez(tmp_path / "empty.npz", features=np.zeros((0, 8), np.float32),
           probs=np.zeros((0, 3), np.float32))
  with pytest.raises(SystemExit) as e:
    select_files.run(["--pool", str(tmp_path / "empty.npz"), "--strategy", "margin",
                      "--budget", "2", "--out", str(tmp_path / "o" / "picks.csv")])
  assert "0 rows" in e.value.code and "\n" not in e.value.code
  arrays = _good(np.random.default_rng(0))
  np.savez(tmp_path / "pool.npz", **arrays)

  def refuse(path, raw):
    raise files.WriteError(str(path), "cannot be written (Permission denied)", "make it writable")

  monkeypatch.setattr(files, "_atomic_write_bytes", refuse)
  with pytest.raises(SystemExit) as e:
    select_files.run(["--pool", str(tmp_path / "pool.npz"), "--strategy", "margin",
                      "--budget", "2", "--out", str(tmp_path / "o2" / "picks.csv")])
  assert e.value.code.startswith("error: --out") and "nothing was written" in e.value.code
  assert "\n" not in e.value.code


@pytest.mark.parametrize("argv, usage_line", [
    (["jax-al", "report", "--help"], "usage: jax-al report "),
    (["jax-al", "bench", "select", "--help"], "usage: jax-al bench select "),
    (["python -m jax_al", "report", "--help"], "usage: python -m jax_al report "),
])
def test_subcommand_help_names_the_command_as_called(argv, usage_line, capsys, monkeypatch):
  from jax_al import commands
  monkeypatch.setattr(sys, "argv", list(argv))
  with pytest.raises(SystemExit) as e:
    commands.main(argv)
  assert e.value.code == 0
  out = capsys.readouterr().out
  assert out.startswith(usage_line), out[:200]
  assert "python -m jax_al.report" not in out and "python -m jax_al.bench" not in out.split("\n")[0]


def test_a_far_slower_setting_is_one_warning_line(digits, tmp_path, capsys):
  d = digits[0]
  _select("--pool", d / "pool.npz", "--strategy", "coreset", "--budget", 5, "--out",
          tmp_path / "picks.csv", "--labeled", d / "labeled.csv", "--config.al.block=1")
  err = capsys.readouterr().err
  lines = [l for l in err.splitlines() if "x the work" in l]
  assert len(lines) == 1 and lines[0].startswith("warning: block=1 (default 1024)"), err
  assert "SlowSettingsWarning" not in err


@pytest.mark.parametrize("flag, says", [
    ("--config.train.lr=0.1", "unknown flag --config.train.lr: train.* configures the "
                              "simulated loop's train"),
    ("--config.al.lam=nan", "--config.al.lam=nan: use a finite number"),
    ("--config.al.lam=abc", "--config.al.lam=abc: is not a number. Fix: e.g. --config.al.lam=1.0"),
])
def test_a_wrong_setting_flag_is_one_line_with_its_fix(digits, tmp_path, flag, says):
  d = digits[0]
  with pytest.raises(SystemExit) as e:
    _select("--pool", d / "pool.npz", "--strategy", "users", "--budget", 5, "--out",
            tmp_path / "picks.csv", flag)
  msg = str(e.value)
  assert says in msg and "\n" not in msg and "cannot be casted" not in msg, msg
  assert not (tmp_path / "picks.csv").exists()


# ---- Ctrl-C while a compiled selection holds the thread -----------------------

_LONG_SELECT = r"""
import sys
import jax, jax.numpy as jnp
from jax_al import select_files

@jax.jit
def _hours(x):  # one compiled program that runs for hours: JAX holds its thread
  return jax.lax.fori_loop(0, 10**7, lambda i, x: jnp.tanh(x @ x), x)

def run(argv):
  x = jnp.ones((256, 256)) / 256
  _hours.lower(x).compile()  # compiled before the signal: only the run is left
  print("selecting", flush=True)
  return _hours(x).block_until_ready()

select_files.run = run
select_files.entry(sys.argv[1:])
"""


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
@pytest.mark.slow
def test_a_signal_during_a_long_selection_stops_the_command_at_once(tmp_path, signame):
  """Ctrl-C or SIGTERM while one compiled program runs for hours: the command
  says nothing was written and exits with the signal's code within seconds
  (it used to wait for the program to end)."""
  import signal
  import time

  p = subprocess.Popen([sys.executable, "-c", _LONG_SELECT, "--pool", "x.npz"], cwd=tmp_path,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
  try:
    assert p.stdout.readline().strip() == "selecting"
    time.sleep(0.5)  # inside the program
    t0 = time.perf_counter()
    p.send_signal(getattr(signal, signame))
    _, err = p.communicate(timeout=60)
    waited = time.perf_counter() - t0
  finally:
    p.kill()
  num = int(getattr(signal, signame))
  assert p.returncode in (128 + num, -num), (p.returncode, err)
  assert f"interrupted by {signame} before writing anything" in err, err
  assert "Traceback" not in err and "terminate called" not in err, err
  assert waited < 20, waited
  assert list(tmp_path.iterdir()) == []


def test_a_cancelled_command_writes_nothing(digits, tmp_path, monkeypatch):
  """After a signal said "nothing was written", a selection that ends later
  does not write its picks."""
  d, *_ = digits
  monkeypatch.setattr(select_files, "_CANCELLED", True)
  out = tmp_path / "picks.csv"
  select_files.run(["--pool", str(d / "pool.npz"), "--strategy", "margin", "--budget", "5",
                    "--out", str(out)])
  assert list(tmp_path.iterdir()) == []


def test_a_folder_pool_and_a_one_class_pool_say_what_is_wrong(tmp_path):
  """A folder as --pool is not "no such file"; margin on 1-class logits is
  not "not a strategy or preset" (both found by a hostile pass)."""
  (tmp_path / "adir").mkdir()
  with pytest.raises(SystemExit) as e:
    select_files.run(["--pool", str(tmp_path / "adir"), "--strategy", "random",
                      "--budget", "2", "--out", str(tmp_path / "picks.csv")])
  assert "is a folder" in e.value.code and "no such file" not in e.value.code
  rng = np.random.default_rng(0)
  np.savez(tmp_path / "one.npz", features=rng.standard_normal((50, 4)).astype(np.float32),
           logits=rng.standard_normal((50, 1)).astype(np.float32))
  with pytest.raises(SystemExit) as e:
    select_files.run(["--pool", str(tmp_path / "one.npz"), "--strategy", "margin",
                      "--budget", "5", "--out", str(tmp_path / "picks.csv")])
  msg = e.value.code
  assert "not a strategy or preset" not in msg and "1 class" in msg and "\n" not in msg, msg
  assert not (tmp_path / "picks.csv").exists()


def test_an_empty_or_ambiguous_parquet_pool_is_one_plain_line(tmp_path):
  """A 0-row Parquet file and one with two columns of one name: one line in
  the tool's words (the second used to print pyarrow's whole schema)."""
  pa = pytest.importorskip("pyarrow")
  import pyarrow.parquet as pq

  pq.write_table(pa.table({"id": pa.array([], pa.string()),
                           "embedding": pa.array([], pa.list_(pa.float32()))}),
                 tmp_path / "empty.parquet")
  emb = pa.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], pa.list_(pa.float32()))
  pq.write_table(pa.Table.from_arrays([pa.array(["a", "b", "c"]), emb, emb],
                                      names=["id", "embedding", "embedding"]),
                 tmp_path / "dup.parquet")
  for name, needle in (("empty", "has 0 rows"), ("dup", "has 2 columns named 'embedding'")):
    with pytest.raises(SystemExit) as e:
      select_files.run(["--pool", str(tmp_path / f"{name}.parquet"), "--strategy", "random",
                        "--budget", "2", "--out", str(tmp_path / "picks.csv")])
    msg = e.value.code
    assert needle in msg and "\n" not in msg and "Fix:" in msg, msg
  assert not (tmp_path / "picks.csv").exists()
