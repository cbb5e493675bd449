"""An installed, non-editable wheel runs every documented `python -m jax_al...`
entry point from a folder outside the repository (issue #15).

The wheel is built offline from a copy of the sources, installed with
`pip install --no-deps --target SITE`, and every entry point runs in a
subprocess whose working folder is a temporary one, with the repository
unreachable:

* The test venv holds jax-al as an *editable* install: setuptools wrote
  `__editable__.jax_al-*.pth`, which, when `site` processes it at start-up,
  installs an import finder mapping `jax_al` to this checkout (other setups
  write a .pth that puts the checkout itself on sys.path). So the
  subprocesses run with `python -S` (no `site`: no .pth file is processed,
  hence no editable hook) and an explicit `PYTHONPATH` of SITE followed by the
  venv's site-packages folders, for the dependencies. Each command goes
  through a prelude (below) that asserts, in the very process that then runs
  the entry point, that `jax_al` comes from SITE, that `import configs` fails,
  that no editable finder is on `sys.meta_path` and that the checkout is not
  on `sys.path`; it then runs the module as `python -m` would (runpy).
* The config files a user passes are a copy of configs/ in another temporary
  folder (never the working folder, where `import configs` would find them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# What the subprocess runs first: checks that the installed copy is the one
# imported and the repository is out of reach, then the module as `-m` would.
PRELUDE = r"""
import importlib.util, runpy, sys
from pathlib import Path
site, repo, module, *args = sys.argv[1:]
import jax_al
assert Path(jax_al.__file__).resolve().is_relative_to(Path(site).resolve()), jax_al.__file__
try:
  import configs
except ImportError:
  pass
else:
  raise AssertionError(f"the repository's configs package is importable: {configs.__path__}")
hooks = [f for f in sys.meta_path if "editable" in repr(f).lower()]
assert not hooks, hooks
assert not any(p and Path(p).resolve() == Path(repo).resolve() for p in sys.path), sys.path
print("INSTALLED_JAX_AL", jax_al.__file__, flush=True)
sys.argv = [module, *args]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""

# Every `python -m MODULE` the README and docs/ document, with what this test
# runs for each: `--help`, and a tiny real run where that is quick.
DOCUMENTED = {"jax_al", "jax_al.bench", "jax_al.bench.scaling", "jax_al.bench.parallel",
              "jax_al.export", "jax_al.report", "jax_al.study", "jax_al.rounds.demo"}


def _documented_modules() -> set[str]:
  texts = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
  found = set()
  for t in texts:
    found |= set(re.findall(r"python3? -m (jax_al[\w.]*)", t.read_text()))
  return found


def test_every_documented_entry_point_is_covered():
  assert _documented_modules() <= DOCUMENTED, _documented_modules() - DOCUMENTED


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  """The package's wheel, built offline from a copy of the sources."""
  pytest.importorskip("setuptools")  # the build backend, used offline (no isolation)
  tmp = tmp_path_factory.mktemp("wheel")
  src = tmp / "src"  # build from a copy: nothing is written into the checkout
  src.mkdir()
  for name in ("pyproject.toml", "README.md"):
    shutil.copy2(ROOT / name, src / name)
  shutil.copytree(ROOT / "jax_al", src / "jax_al",
                  ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
  pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
  p = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                      "--no-cache-dir", "-w", str(tmp / "dist"), str(src)],
                     capture_output=True, text=True, timeout=600)
  assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
  (built,) = (tmp / "dist").glob("jax_al-*.whl")
  return built


@pytest.fixture(scope="module")
def installed(tmp_path_factory, wheel):
  """(run, site, configs): the wheel installed in `site`; run(module, *args)
  runs one entry point from a temporary working folder; `configs` is the
  user's copy of the config files."""
  tmp = tmp_path_factory.mktemp("install")
  pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
  site = tmp / "site"
  p = subprocess.run([*pip, "install", "--no-deps", "--no-index", "--no-compile", "--target",
                      str(site), str(wheel)], capture_output=True, text=True, timeout=600)
  assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
  assert (site / "jax_al" / "bench" / "__main__.py").is_file()
  assert not (site / "configs").exists()  # the repository's configs are not packaged

  user_configs = tmp / "userconfigs" / "configs"  # the user's config files, elsewhere
  shutil.copytree(ROOT / "configs", user_configs,
                  ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
  work = tmp / "work"  # the working folder of every command
  work.mkdir()
  deps = [sysconfig.get_paths()[k] for k in ("purelib", "platlib")]
  env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
  env.update(PYTHONPATH=os.pathsep.join(dict.fromkeys([str(site), *deps])),
             JAX_PLATFORMS="cpu", PYTHONDONTWRITEBYTECODE="1",
             MPLCONFIGDIR=str(tmp / "mpl"))

  def run(module: str, *args: str, ok: bool = True, timeout: int = 600):
    p = subprocess.run([sys.executable, "-S", "-c", PRELUDE, str(site), str(ROOT), module,
                        *args], cwd=work, env=env, capture_output=True, text=True,
                       timeout=timeout)
    out = p.stdout + p.stderr
    assert f"INSTALLED_JAX_AL {site}" in p.stdout, out[-3000:]
    if ok:
      assert p.returncode == 0, out[-4000:]
    return p

  return run, site, user_configs, work


@pytest.mark.parametrize("module, args", [
    ("jax_al.bench", ["--help"]),
    ("jax_al.bench", ["selection", "--help"]),
    ("jax_al.bench", ["scaling", "--help"]),
    ("jax_al.bench", ["parallel", "--help"]),
    ("jax_al.bench", ["acquisitions", "--help"]),
    ("jax_al.bench.scaling", ["--help"]),
    ("jax_al.bench.parallel", ["--help"]),
    ("jax_al.report", ["--help"]),
])
@pytest.mark.slow
def test_help(installed, module, args):
  run = installed[0]
  p = run(module, *args)
  assert "usage: python -m jax_al." in p.stdout


def test_export_help(installed):
  """The absl entry point: short --help, exit 0."""
  p = installed[0]("jax_al.export", "--help")
  assert "--out" in p.stdout and "--helpfull" in p.stdout and len(p.stdout.splitlines()) < 30


@pytest.mark.slow
def test_no_config_names_the_flag(installed):
  """Outside a checkout there is no default config: one line naming --config."""
  run = installed[0]
  for module, args in [("jax_al.bench", ["train", "--quick"]),
                       ("jax_al.bench", ["protocol", "--quick"])]:
    p = run(module, *args, ok=False)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(err) == 1, p.stdout[-2000:] + p.stderr[-2000:]
    assert err[0].startswith("error: flag --config:") and "--config PATH" in err[0], err


@pytest.mark.slow
def test_bench_parts_and_report(installed):
  """Tiny real runs of the bench (train, features, selection, scaling with its
  simulated-device child process, protocol) and a report of the real run folder."""
  run, site, cfg, work = installed
  cifar, digits = str(cfg / "cifar10.py"), str(cfg / "digits.py")
  tiny = ["--quick", "--models", "mlp", "--cnn-width", "0.25", "--dtypes", "float32",
          "--batch", "32", "--n-train", "64", "--sizes", "32", "--repeats", "1"]
  run("jax_al.bench", "train,features", *tiny, "--variants", "step", "--pool", "64",
      "--eval-batch", "32", "--config", cifar, "--json", "tf.json")
  doc = json.loads((work / "tf.json").read_text())
  assert [r["labeled"] for r in doc["train"]] == [32] and doc["train"][0]["images_per_s"] > 0
  assert doc["features"][0]["pool"] == 64

  run("jax_al.bench", "selection", "--quick", "--sizes", "64", "--dim", "8", "--labeled", "32",
      "--budget", "8", "--preset-n", "64", "--repeats", "1", "--variants", "preset",
      "--config", cifar, "--json", "sel.json")
  rows = json.loads((work / "sel.json").read_text())["selection"]
  assert [r["variant"] for r in rows] == ["preset"] and rows[0]["jax_ms"] > 0

  # Two simulated devices: scaling re-runs itself in a child process, which
  # must import the same installed jax_al (and find the relative --config).
  rel = os.path.relpath(cifar, work)
  run("jax_al.bench", "scaling", "--quick", "--devices", "1,2", "--no-select", "--model", "mlp",
      "--width", "0.25", "--batch", "32", "--n-train", "64", "--repeats", "1",
      "--config", rel, "--json", "scaling.json")
  rows = json.loads((work / "scaling.json").read_text())["scaling"]
  assert [r["devices"] for r in rows] == [1, 2] and all(r["images_per_s"] > 0 for r in rows)

  # parallel loads its config as train does (jax_al.bench.train.make_config):
  # test_help covers its entry point; a real run would add half a minute.

  run("jax_al.bench", "protocol", "--config", digits, "--config.al.strategy=random",
      "--config.al.cycles=2",
      "--config.train.epochs=2", "--config.train.eval_every=1", "--quiet",
      "--workdir", "run", "--json", "protocol.json")
  p = json.loads((work / "protocol.json").read_text())["protocol"]
  assert p["status"] == "done" and [c["cycle"] for c in p["cycles"]] == [1, 2]
  assert (work / "run" / "metrics.jsonl").is_file()

  r = run("jax_al.report", "run", "--out", "report")
  assert (work / "report").is_dir() and any((work / "report").iterdir())
  assert "random" in r.stdout  # the run's strategy, in the printed table


@pytest.mark.slow
def test_study_plans_from_the_installed_package(installed):
  """`python -m jax_al.study --plan` with the user's config file, outside the
  repository: it prints every run and a cost, and creates nothing."""
  run, site, cfg, work = installed
  p = run("jax_al.study", "--config", str(cfg / "digits.py"), "--out", str(work / "study"),
          "--plan", "--mode", "ci")
  assert "estimated total:" in p.stdout and "u_batch" in p.stdout, p.stdout[-2000:]
  assert not (work / "study").exists()


# ------------------------------------------- the installed `jax-al` command ---
# A fresh venv with the wheel installed by pip (so pip writes the `jax-al`
# console script), no network: `--no-deps --no-index`. The venv sees the test
# venv's packages (the dependencies) through a .pth file that lists their
# folders; a plain path line in a .pth only extends sys.path, so the test
# venv's editable-install hook (its own .pth) is never processed there.
COMMANDS = ("run", "select", "report", "study", "bench")


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel):
  """(jax_al(*args), python, work, configs): run the installed console
  script from a working folder outside the repository."""
  tmp = tmp_path_factory.mktemp("venv")
  v = tmp / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(v)], check=True,
                 timeout=300)
  py = v / "bin" / "python"
  env = {k: v_ for k, v_ in os.environ.items() if not k.startswith("PYTHON")}
  env.update(JAX_PLATFORMS="cpu", MPLCONFIGDIR=str(tmp / "mpl"))
  vsite = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                          "['purelib'])"], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
  deps = [sysconfig.get_paths()[k] for k in ("purelib", "platlib")]
  Path(vsite, "_test_venv_dependencies.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
  p = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input",
                      "--python", str(py), "install", "--no-deps", "--no-index", "--no-compile",
                      str(wheel)], capture_output=True, text=True, timeout=600, env=env)
  assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
  script = v / "bin" / "jax-al"
  assert script.is_file() and script.read_text().startswith(f"#!{py}")
  assert not any((Path(vsite) / "jax_al").glob("__editable__*"))
  configs = tmp / "userconfigs" / "configs"
  shutil.copytree(ROOT / "configs", configs, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
  work = tmp / "work"
  work.mkdir()
  # The interpreter the script runs imports the installed copy, not the checkout.
  p = subprocess.run([str(py), "-c", "import jax_al, importlib.util as u; print(jax_al.__file__);"
                      " print(u.find_spec('configs'))"], cwd=work, env=env, capture_output=True,
                     text=True, check=True)
  where, configs_spec = p.stdout.split()
  assert Path(where).resolve().is_relative_to(Path(vsite).resolve()), where
  assert configs_spec == "None"

  def jax_al(*args, ok=True, timeout=600):
    p = subprocess.run([str(script), *map(str, args)], cwd=work, env=env, capture_output=True,
                       text=True, timeout=timeout)
    if ok:
      assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    return p

  return jax_al, py, work, configs, env


@pytest.mark.slow
def test_jax_al_help_for_every_command(venv):
  jax_al, py, work, _, env = venv
  top = jax_al("--help").stdout
  for name in COMMANDS:
    assert f"\n  {name} " in top, top
  for name in COMMANDS:
    p = jax_al(name, "--help")
    lines = p.stdout.strip().splitlines()
    assert 3 < len(lines) <= 40, (name, p.stdout)  # short: the long listing is --helpfull
  # `python -m jax_al` is the same command.
  p = subprocess.run([str(py), "-m", "jax_al", "--help"], cwd=work, env=env,
                     capture_output=True, text=True, timeout=120)
  assert p.returncode == 0 and p.stdout == top


@pytest.mark.slow
def test_jax_al_run_select_report_study(venv):
  """A tiny run on digits (2 cycles), a selection from an .npz made with
  scikit-learn, a report of the run and a study plan, all from the console script."""
  from sklearn.datasets import load_digits
  from sklearn.linear_model import LogisticRegression

  jax_al, py, work, cfg, _ = venv
  p = jax_al("run", "--config", f"{cfg / 'digits.py'}:random", "--config.al.cycles=2",
             "--config.train.epochs=2", "--config.train.eval_every=1", "--workdir", "run")
  cycles = [json.loads(l) for l in (work / "run" / "metrics.jsonl").read_text().splitlines()]
  assert [c["cycle"] for c in cycles if c.get("kind") == "cycle"] == [1, 2]
  assert "resume:  jax-al run --config" in p.stdout  # the summary names this command
  assert "report:  jax-al report run --out" in p.stdout

  x, y = load_digits(return_X_y=True)
  model = LogisticRegression(max_iter=500).fit(x[:200], y[:200])
  np.savez(work / "pool.npz", features=x.astype(np.float32), probs=model.predict_proba(x))
  (work / "labeled.csv").write_text("id,label\n" + "".join(f"{i},{y[i]}\n" for i in range(200)))
  jax_al("select", "--pool", "pool.npz", "--strategy", "margin", "--budget", "7", "--out",
         "picks.csv", "--labeled", "labeled.csv")
  rows = (work / "picks.csv").read_text().splitlines()
  assert rows[0] == "id,rank,score" and len(rows) == 8
  assert all(int(r.split(",")[0]) >= 200 for r in rows[1:])  # never a labeled row
  assert json.loads((work / "picks.json").read_text())["strategy"] == "margin"

  r = jax_al("report", "run", "--out", "report")
  assert "random" in r.stdout and any((work / "report").iterdir())
  p = jax_al("study", "--config", cfg / "digits.py", "--plan", "--mode", "ci")
  assert "estimated total:" in p.stdout
  p = jax_al("bench", "selection", "--help")
  assert "usage:" in p.stdout


@pytest.mark.slow
def test_jax_al_round_from_the_installed_wheel(venv):
  """Two labeling rounds on the demo's digits embeddings from the console
  script; without a config beside the installation, init asks for one."""
  jax_al, py, work, cfg, _ = venv
  env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
  subprocess.run([str(py), "-m", "jax_al.rounds.demo", "digits-embeddings", "demo"], cwd=work,
                 env=env, check=True, capture_output=True, timeout=300)
  p = jax_al("round", "init", "r", "--embeddings", "demo/embeddings.npz", ok=False)
  assert p.returncode == 1 and "pass --config FILE.py[:preset]" in p.stderr, p.stderr
  assert not (work / "r" / "round.json").exists()
  jax_al("round", "init", "r", "--embeddings", "demo/embeddings.npz", "--config",
         f"{cfg / 'embeddings.py'}:margin", "--holdout", "demo/holdout.csv")
  for n in (1, 2):
    out = jax_al("round", "next", "r", "--budget", "10").stdout
    assert f"round {n}: 10 items to label" in out
    subprocess.run([str(py), "-m", "jax_al.rounds.demo", "annotate", "demo/truth.csv",
                    f"r/round_{n}/to_label.csv", f"l{n}.csv"], cwd=work, env=env, check=True,
                   capture_output=True, timeout=300)
    jax_al("round", "add", "r", f"l{n}.csv")
  status = jax_al("round", "status", "r").stdout
  assert "20 labeled, 360 holdout, 2 round(s)" in status
  assert "margin" in status and "cold start: typiclust" in status

