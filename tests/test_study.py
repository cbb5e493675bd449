"""`python -m jax_al.study`: the plan, bad input, a CI-mode study on digits
(content of its findings, resume), submitit's local executor against the
in-process run, and choosing/reporting on the same seeds."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from conftest import REPO, snapshot

BASELINES = "random"  # phase 2 = best + users + random: the smallest real study


def _cli(*args, cwd=REPO, timeout=300):
  return subprocess.run([sys.executable, "-m", "jax_al.study", *args], cwd=cwd,
                        capture_output=True, text=True, timeout=timeout)


def _study(out, mode="ci", executor="local", **fields):
  from configs import digits

  from jax_al import study

  f = study.grid.study_defaults()
  with f.unlocked():
    f.baselines = BASELINES
    for k, v in fields.items():
      node, *rest = k.split("__")
      if rest:
        f[node][rest[0]] = v
      else:
        f[node] = v
  return study.build(digits.get_config(), f, config_spec="configs/digits.py", mode=mode,
                     out=out, executor=executor)


def _numbers(f: dict) -> dict:
  """The findings without what legitimately differs between executions."""
  f = json.loads(json.dumps(f, default=str))
  for k in ("runtime", "executor"):
    f.pop(k, None)
  f.get("study_fields", {}).pop("slurm", None)
  return f


# ------------------------------------------------------------------ plan


def test_plan_runs_nothing_and_lists_every_run(tmp_path):
  out = tmp_path / "s"
  r = _cli("--config", "configs/digits.py", "--out", str(out), "--plan", "--mode", "ci",
           f"--study.baselines={BASELINES}")
  assert r.returncode == 0, r.stderr
  assert not out.exists()  # no workdir, not even --out
  st = _study(out)
  for name, run in st.runs.items():
    if run.phase == "select" or name in st.phase2_runs(None):
      assert f"  {name} " in r.stdout, name
  assert "estimated total:" in r.stdout and "estimate basis:" in r.stdout
  from jax_al.study import grid
  e = grid.estimate(st)
  assert e["total_s"] > 0 and all(v > 0 for v in e["per_job_s"].values())
  assert set(e["per_job_s"]) >= {n for n, r in st.runs.items() if r.phase == "select"}
  assert not out.exists()


def test_plan_for_a_gpu_states_its_assumption(tmp_path):
  r = _cli("--config", "configs/cifar10.py", "--out", str(tmp_path / "c"), "--plan",
           "--study.device=gpu")
  assert r.returncode == 0, r.stderr
  assert "NOT measured" in r.stdout and "images/s" in r.stdout
  assert "phase 1:" in r.stdout and "resnet18" in r.stdout
  assert not (tmp_path / "c").exists()


def test_default_baselines_add_the_bayesian_ones_the_model_runs(tmp_path):
  """Unset --study.baselines: the classic seven, an ensemble always, BALD
  only with dropout, learning loss only on a ResNet; the plan says why one is
  left out. A given list is checked the same way, with the model's field."""
  from configs import cifar10, digits
  from jax_al import study
  from jax_al.errors import ConfigError

  f = study.grid.study_defaults()
  st = study.build(digits.get_config(), f, config_spec="configs/digits.py", mode="full",
                     out=tmp_path / "d")
  assert st.baselines == study.grid.DEFAULT_BASELINES.split(",") + ["ensemble_bald"]
  assert set(st.left_out) == {"bald", "learning_loss"}
  assert "model.dropout" in st.left_out["bald"] and "model.name" in st.left_out["learning_loss"]
  plan = study.plan_text(st)
  assert "default baseline learning_loss left out" in plan and "ensemble_bald" in plan

  c = digits.get_config()
  c.model.dropout = 0.3
  st = study.build(c, f, config_spec="configs/digits.py", mode="full",
                     out=tmp_path / "d2")
  assert "bald" in st.baselines and set(st.left_out) == {"learning_loss"}
  st = study.build(cifar10.get_config(), f, config_spec="configs/cifar10.py", mode="full",
                   out=tmp_path / "c")
  assert "learning_loss" in st.baselines and set(st.left_out) == {"bald"}
  # The plan of a study with an ensemble costs its members' training.
  e = study.grid.estimate(st)
  assert e["per_job_s"]["ensemble_bald"] > 3 * e["per_job_s"]["random"]
  with f.unlocked():
    f.baselines = "random,bald"
  with pytest.raises(ConfigError, match=r"model\.dropout"):
    study.build(digits.get_config(), f, config_spec="configs/digits.py", mode="full",
                out=tmp_path / "d3")
  assert not any((tmp_path / n).exists() for n in ("d", "d2", "c", "d3"))


@pytest.mark.parametrize("args,needle", [
    (["--study.trialz=3"], "unknown study field `trialz`"),
    (["--study.norms=none,fancy"], "study.norms"),
    (["--mode=fast"], "--mode"),
    (["--config.al.lam=nan"], "al.lam"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, needle):
  out = tmp_path / "s"
  r = _cli("--config", "configs/digits.py", "--out", str(out), "--mode", "ci", *args)
  assert r.returncode == 1, (r.stdout, r.stderr)
  lines = [x for x in r.stderr.splitlines() if x.strip()]
  assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], r.stderr
  assert "Fix" in lines[0] or "fix" in lines[0] or "choose" in lines[0] or "use" in lines[0]
  assert not out.exists()


@pytest.mark.parametrize("fields,needle", [
    (dict(trials=0), "study.trials"), (dict(lams="-1"), "study.lams"),
    (dict(baselines="random,nope"), "study.baselines"), (dict(sign_norm="l2"), "study.sign_norm"),
    (dict(probe_cycles="7"), "study.probe_cycles"), (dict(slurm__group=0), "study.slurm.group"),
    (dict(slurm__cluster="pbs"), "study.slurm.cluster"), (dict(candidates="nope"),
                                                           "study.candidates"),
])
def test_bad_study_fields_name_the_field(tmp_path, fields, needle):
  from jax_al.errors import ConfigError

  with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
    _study(tmp_path / "s", **fields)
  with pytest.raises(ConfigError, match="--executor"):
    _study(tmp_path / "s", executor="pbs")
  assert not (tmp_path / "s").exists()


def test_refuses_an_out_with_other_files(tmp_path):
  out = tmp_path / "mine"
  out.mkdir()
  (out / "notes.txt").write_text("my notes")
  before = snapshot(out)
  r = _cli("--config", "configs/digits.py", "--out", str(out), "--mode", "ci")
  assert r.returncode == 1
  assert "--out" in r.stderr and "notes.txt" in r.stderr and len(r.stderr.strip().splitlines()) == 1
  assert snapshot(out) == before


# -------------------------------------------------------------- the study


@pytest.fixture(scope="module")
def ci_study(tmp_path_factory):
  from jax_al import study

  out = tmp_path_factory.mktemp("study") / "ci"
  st = _study(out)
  f = study.run_study(st, log=lambda m: None)
  return st, f


@pytest.mark.slow
def test_ci_study_findings(ci_study):
  st, f = ci_study
  out = st.out
  # Question 1: lam = 0 keeps every uncertainty-only pick; replays reproduce the runs.
  assert f["q1"]["lam0_shares_with_u_only"] == 1.0
  assert f["q1"]["replay_reproduces_runs"] is True
  sweep = {(r["norm"], r["lam"]): r for r in f["q1"]["sweep"]}
  assert set(sweep) == {(n, lam) for n in st.fields.norms for lam in (0.0, *st.fields.lams)}
  for r in f["q1"]["sweep"]:
    assert 0.0 <= r["share_changed"] <= 1.0
    if r["lam"] == 0:
      assert r["share_changed"] == 0.0
  # Raw scores at lam 1: the users' run; its share is measured, not assumed.
  assert sweep[("none", 1.0)]["run"] == "users"
  sc = f["q1"]["scales"]
  assert sc["u_max"] >= sc["u_cut"] >= sc["u_min"] and sc["t_max"] >= sc["t_min"]
  if f["q2"]["users_equals_u_only"]:  # same picks, same models: the users' run logged these terms
    rec = [json.loads(x) for x in (out / "runs" / "users" / f"seed{sc['seed']}" /
                                   "metrics.jsonl").read_text().splitlines()]
    rec = next(r for r in rec if r["kind"] == "cycle" and r["cycle"] == sc["cycle"])
    for a, b in (("u_min", "u_min"), ("u_median", "u_median"), ("u_max", "u_max"),
                 ("t_min", "mmd_min"), ("t_median", "mmd_median"), ("t_max", "mmd_max")):
      assert sc[a] == pytest.approx(rec[b], rel=1e-5), a
  # Paired intervals are finite with 2 seeds (where the runs differ).
  for p in [*f["q2"]["vs_u_batch"].values(), *f["q4"]["best_vs"].values(),
            f["q3"]["greedy"]["vs_u_only"], f["q3"]["witness"]["vs_u_only"]]:
    assert p["pairs"] == 2
    assert math.isfinite(p["lo"]) and math.isfinite(p["hi"]) and p["lo"] <= p["diff"] <= p["hi"]
  # Question 4: chosen on the selection seeds, reported on fresh ones.
  q4 = f["q4"]
  assert q4["chosen_on_seeds"] == st.select_seeds == [0, 1]
  assert q4["reported_on_seeds"] == st.report_seeds == [1000, 1001]
  assert not set(q4["chosen_on_seeds"]) & set(q4["reported_on_seeds"])
  assert q4["chosen_and_reported_on_same_seeds"] is False
  assert q4["best"] == max(q4["candidates"], key=q4["candidates"].get)
  assert set(q4["best_vs"]) == {"users", "random"} - {q4["best"]}
  for row in q4["table"]:
    assert row["seeds"] == st.report_seeds
  choice = json.loads((out / "choice.json").read_text())
  assert choice["best"] == q4["best"] and choice["chosen_on_seeds"] == [0, 1]
  # The best's report jobs are new runs on the report seeds.
  for s in st.report_seeds:
    assert (out / "runs" / q4["best"] / f"seed{s}" / "summary.json").is_file()
  md = (out / "findings.md").read_text()
  for h in ("## 1. Scale", "## 2. Scope", "## 3. Sign", "## 4. The best variant"):
    assert h in md
  assert f"**{q4['best']}**" in md and "which it was not chosen on" in md and "NOT fresh" not in md
  assert "CI mode" in md
  for name in ("learning_curves.png", "paired_auc.png", "score_scales.png", "pca_step.png"):
    assert (out / name).stat().st_size > 10_000
  saved = json.loads((out / "findings.json").read_text())
  assert _numbers(saved) == _numbers(f)


@pytest.mark.slow
def test_ci_study_resumes_without_rerunning(ci_study):
  from jax_al import study
  from jax_al.study import grid

  st, f = ci_study
  metrics = {p: p.read_bytes() for p in st.out.glob("runs/*/seed*/metrics.jsonl")}
  again = study.run_study(st, log=lambda m: None)
  assert again["runtime"]["jobs_run"] == 0
  assert again["runtime"]["jobs_skipped"] == len(st.phase1_jobs()) + len(
      st.phase2_jobs(f["q4"]["best"]))
  assert {p: p.read_bytes() for p in metrics} == metrics
  assert _numbers(again) == _numbers(f)
  # With finished cycles under --out, the plan's cost is measured.
  e = grid.estimate(st)
  assert e["measured"] and e["total_s"] > 0 and "measured under" in e["basis"]


@pytest.mark.slow
def test_submitit_local_executor_gives_the_same_findings(ci_study, tmp_path):
  pytest.importorskip("submitit")
  from jax_al import study

  st, f = ci_study
  st2 = _study(tmp_path / "sub", executor="slurm", slurm__cluster="local", slurm__gpus=0,
               slurm__array_parallelism=2, slurm__group=8, slurm__time_min=30)
  f2 = study.run_study(st2, log=lambda m: None)
  assert f2["runtime"]["jobs_run"] == len(st2.phase1_jobs()) + len(
      st2.phase2_jobs(f2["q4"]["best"]))
  assert (tmp_path / "sub" / "submitit").is_dir()  # the jobs ran as submitit subprocesses
  timings = [json.loads(p.read_text()) for p in (tmp_path / "sub" / "timing").glob("*.json")]
  import os
  assert timings and all(t["pid"] != os.getpid() for t in timings)
  assert _numbers(f2) == _numbers(f)


@pytest.mark.slow
def test_same_seeds_are_flagged(ci_study):
  """Forcing the report seeds onto the selection seeds is allowed and said."""
  from jax_al import study

  st, _ = ci_study
  st3 = _study(st.out, report_offset=0)
  f3 = study.run_study(st3, log=lambda m: None)
  assert f3["q4"]["chosen_and_reported_on_same_seeds"] is True
  assert f3["q4"]["reported_on_seeds"] == f3["q4"]["chosen_on_seeds"] == [0, 1]
  md = (st.out / "findings.md").read_text()
  assert "NOT fresh" in md and "optimistic" in md
  assert "WARNING: report seeds" in study.plan_text(st3)
