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

  f = study.fields.study_defaults()
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


@pytest.mark.slow
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
  from jax_al.study import cost
  e = cost.estimate(st)
  assert e["total_s"] > 0 and all(v > 0 for v in e["per_job_s"].values())
  assert set(e["per_job_s"]) >= {n for n, r in st.runs.items() if r.phase == "select"}
  assert not out.exists()


@pytest.mark.slow
def test_plan_for_a_gpu_states_its_assumption(tmp_path):
  r = _cli("--config", "configs/cifar10.py", "--out", str(tmp_path / "c"), "--plan",
           "--study.device=gpu")
  assert r.returncode == 0, r.stderr
  assert "NOT measured" in r.stdout and "images/s" in r.stdout
  assert "phase 1:" in r.stdout and "resnet18" in r.stdout
  assert "training images/s unknown" in r.stdout and "--study.train_images_per_s" in r.stdout
  assert not (tmp_path / "c").exists()


def test_default_baselines_add_the_bayesian_ones_the_model_runs(tmp_path):
  """Unset --study.baselines: the classic seven, an ensemble always, BALD
  only with dropout, learning loss only on a ResNet; the plan says why one is
  left out. A given list is checked the same way, with the model's field."""
  from configs import cifar10, digits
  from jax_al import study
  from jax_al.errors import ConfigError

  f = study.fields.study_defaults()
  st = study.build(digits.get_config(), f, config_spec="configs/digits.py", mode="full",
                     out=tmp_path / "d")
  assert st.baselines == study.fields.DEFAULT_BASELINES.split(",") + ["ensemble_bald"]
  assert set(st.left_out) == {"bald", "learning_loss"}
  assert "model.dropout" in st.left_out["bald"] and "model.name" in st.left_out["learning_loss"]
  plan = study.plan_text(st)
  assert "default baseline learning_loss left out" in plan and "ensemble_bald" in plan

  c = digits.get_config()
  c.model.dropout = 0.3
  st = study.build(c, f, config_spec="configs/digits.py", mode="full",
                     out=tmp_path / "d2")
  assert "bald" in st.baselines and set(st.left_out) == {"learning_loss"}
  with f.unlocked():  # a throughput: CIFAR's input shape is unknown without its data
    f.train_images_per_s = 20.0
  st = study.build(cifar10.get_config(), f, config_spec="configs/cifar10.py", mode="full",
                   out=tmp_path / "c")
  assert "learning_loss" in st.baselines and set(st.left_out) == {"bald"}
  # The plan of a study with an ensemble costs its members' training.
  e = study.cost.estimate(st)
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
@pytest.mark.slow
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
    (dict(baselines="margin,random,margin"), "study.baselines.*named twice"),
])
def test_bad_study_fields_name_the_field(tmp_path, fields, needle):
  from jax_al.errors import ConfigError

  with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace(r"\.*", ".*")):
    _study(tmp_path / "s", **fields)
  with pytest.raises(ConfigError, match="--executor"):
    _study(tmp_path / "s", executor="pbs")
  assert not (tmp_path / "s").exists()


@pytest.mark.slow
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
  from jax_al.study import cost

  st, f = ci_study
  metrics = {p: p.read_bytes() for p in st.out.glob("runs/*/seed*/metrics.jsonl")}
  again = study.run_study(st, log=lambda m: None)
  assert again["runtime"]["jobs_run"] == 0
  assert again["runtime"]["jobs_skipped"] == len(st.phase1_jobs()) + len(
      st.phase2_jobs(f["q4"]["best"]))
  assert {p: p.read_bytes() for p in metrics} == metrics
  assert _numbers(again) == _numbers(f)
  # With finished cycles under --out, the plan's cost is measured.
  e = cost.estimate(st)
  assert e["measured"] and e["total_s"] > 0 and "measured under" in e["basis"]


@pytest.mark.slow
def test_submitit_local_executor_gives_the_same_findings(smallest_study, tmp_path):
  """The smallest grid through submitit's local executor (jobs in subprocesses,
  grouped, 2 at a time) gives the in-process study's findings."""
  pytest.importorskip("submitit")
  from jax_al import study

  st, f = smallest_study
  st2 = _tiny_study(tmp_path / "sub", executor="slurm", **SMALLEST, slurm__cluster="local",
                    slurm__gpus=0, slurm__array_parallelism=2, slurm__group=4,
                    slurm__time_min=30)
  assert len(st2.phase1_jobs()) > 4  # more jobs than one group holds
  f2 = study.run_study(st2, log=lambda m: None)
  assert f2["runtime"]["jobs_run"] == len(st2.phase1_jobs()) + len(
      st2.phase2_jobs(f2["q4"]["best"]))
  assert (tmp_path / "sub" / "submitit").is_dir()  # the jobs ran as submitit subprocesses
  timings = [json.loads(p.read_text()) for p in (tmp_path / "sub" / "timing").glob("*.json")]
  import os
  assert timings and all(t["pid"] != os.getpid() for t in timings)
  assert _numbers(f2) == _numbers(f)


@pytest.mark.slow
def test_a_study_stopped_in_phase_2_continues_elsewhere_without_retraining(
    ci_study, tmp_path, monkeypatch):
  """The replays run right after phase 1, from its checkpoints: a study stopped
  in phase 2 and continued where those checkpoints are gone (another machine,
  a carried archive) reuses them and gives the uninterrupted findings."""
  import shutil

  from jax_al import study
  from jax_al.study import executors

  st, f = ci_study
  out = tmp_path / "moved"
  for n, r in st.runs.items():
    if r.phase == "select":
      for s in st.select_seeds:
        shutil.copytree(st.job(n, s, "select").workdir, out / "runs" / n / f"seed{s}")
  shutil.copy(st.out / "study.json", out / "study.json")
  st2 = _study(out)

  class Stop(Exception):
    pass

  real = executors.call

  def stop_in_phase_2(kind, fn_args, **kw):
    if any(str(a[1]).endswith(f"seed{st2.report_seeds[0]}") for a in fn_args):
      raise Stop
    return real(kind, fn_args, **kw)

  monkeypatch.setattr(executors, "call", stop_in_phase_2)
  with pytest.raises(Stop):
    study.run_study(st2, log=lambda m: None)
  monkeypatch.setattr(executors, "call", real)
  replayed = (out / "analysis" / "analysis.json").read_bytes()
  assert not (out / "findings.json").exists()
  for ckpt in list(out.glob("runs/*/seed*/checkpoints")):
    shutil.rmtree(ckpt)
  again = study.run_study(st2, log=lambda m: None)
  assert (out / "analysis" / "analysis.json").read_bytes() == replayed  # reused, not retrained
  assert again["runtime"]["jobs_run"] == len(st2.phase2_jobs(f["q4"]["best"]))
  assert _numbers(again) == _numbers(f)


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


# ------------------------------------------------------- grouped jobs (k > 1)

GOLDEN = REPO / "tests" / "golden" / "study_k1.json"


@pytest.mark.slow
def test_one_trial_per_job_plans_and_jobs_are_unchanged():
  """k = 1 (the default) plans, job workdirs and run configs are those the code
  wrote before grouped jobs existed (tests/golden/study_k1.json)."""
  r = subprocess.run([sys.executable, "tests/golden/make_study_k1.py"], cwd=REPO,
                     capture_output=True, text=True, timeout=120,
                     env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
  assert r.returncode == 0, r.stderr
  now, then = json.loads(r.stdout), json.loads(GOLDEN.read_text())
  assert set(now) == set(then)
  for key in then:
    assert _rate_source_left_out(now[key]["plan"]) == _rate_source_left_out(
        then[key]["plan"]), key
    assert now[key]["jobs"] == then[key]["jobs"], key


def _rate_source_left_out(plan: str) -> str:
  """A plan with where its training throughput came from left out: the
  golden plans assumed a table's rates, the generator now gives them
  (--study.train_images_per_s) and the plan says "given by"; every number
  and every other word stays compared."""
  import re
  out = re.sub(r"training images/s \(.*?\); a forward pass", "training images/s (SOURCE); "
               "a forward pass", plan)
  assert out.count("(SOURCE)") == 1, plan
  return out


@pytest.mark.parametrize("args,field", [
    (["--study.trials_per_job=3"], "study.trials"),  # ci mode: 2 selection replicates
    (["--study.trials_per_job=2", "--study.report_trials=3"], "study.report_trials"),
    (["--study.trials_per_job=0"], "study.trials_per_job"),
    (["--study.trials_per_job=2", "--config.mesh.data=2"], "study.trials_per_job"),
])
@pytest.mark.slow
def test_bad_trials_per_job_is_one_line_and_writes_nothing(tmp_path, args, field):
  out = tmp_path / "s"
  r = _cli("--config", "configs/digits.py", "--out", str(out), "--mode", "ci", *args)
  assert r.returncode == 1, (r.stdout, r.stderr)
  lines = [x for x in r.stderr.splitlines() if x.strip()]
  assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
  assert f"`{field}`" in lines[0] and "use" in lines[0], lines[0]
  assert not out.exists()


def test_grouped_plan_costs_vmapped_trials(tmp_path):
  """A job of k vmapped trials costs its training at the vmapped total
  throughput; an ensemble's k trials run one after another and say so."""
  from configs import digits
  from jax_al import study

  def plan(**fields):
    f = study.fields.study_defaults()
    with f.unlocked():
      f.update(dict(baselines="random,ensemble_bald", device="cpu", trials=3, report_trials=3,
                    train_images_per_s=1000.0, job_overhead_s=0.0, **fields))
    st = study.build(digits.get_config(), f, config_spec="configs/digits.py", mode="full",
                     out=tmp_path / "p")
    return st, study.cost.estimate(st), study.plan_text(st)

  st1, e1, _ = plan()
  st3, e3, text = plan(trials_per_job=3, vmap_images_per_s=4000.0)
  assert st1.select_seeds == [0, 1, 2] and st3.select_seeds == [0]
  assert st3.report_seeds == [1000]
  assert st3.phase1_jobs()[0].workdir.name == "seed0x3"
  c = st3.run_config("random", 0)
  assert (c.num_trials, c.compare.parallel) == (3, "vmap")
  ens = st3.run_config("ensemble_bald", 1000)
  assert (ens.num_trials, ens.compare.parallel) == (3, "none")
  img = study.cost.job_images(st1.run_config("random", 0))
  # One-trial job: train / 1000 + infer / 3000; a grouped job: 3 x train / 4000 + 3 x infer / 3000.
  assert e1["per_job_s"]["random"] == pytest.approx(img["train"] / 1000 + img["infer"] / 3000)
  assert e3["per_job_s"]["random"] == pytest.approx(3 * img["train"] / 4000 +
                                                    img["infer"] / 1000)
  # The ensemble's trials are sequential: three times one trial's cost.
  assert e3["per_job_s"]["ensemble_bald"] == pytest.approx(3 * e1["per_job_s"]["ensemble_bald"])
  assert "given by --study.vmap_images_per_s" in text and "4,000 training images/s in all" in text
  assert "3 trials one after another" in text and "replicates" in text
  _, e_assumed, text = plan(trials_per_job=3)
  assert "NOT measured" in text and e_assumed["vmap_images_per_s"] == pytest.approx(
      1000 * study.cost.VMAP_GAIN["cpu"])
  assert not (tmp_path / "p").exists()


@pytest.fixture(scope="module")
def grouped_study(tmp_path_factory):
  from jax_al import study

  out = tmp_path_factory.mktemp("grouped") / "k2"
  st = _study(out, trials_per_job=2, baselines="random,ensemble_bald")
  f = study.run_study(st, log=lambda m: None)
  return st, f


@pytest.mark.slow
def test_grouped_study_runs_and_pairs_by_replicate(grouped_study, ci_study):
  st, f = grouped_study
  out = st.out
  assert st.select_seeds == [0] and st.report_seeds == [1000]
  reps_sel, reps_rep = ["0:0", "0:1"], ["1000:0", "1000:1"]
  assert f["trials_per_job"] == 2
  assert f["select_replicates"] == reps_sel and f["report_replicates"] == reps_rep
  assert not set(reps_sel) & set(reps_rep) and not f["missing"]
  # One workdir per (run, job seed), k trials in it; no one-trial job folders.
  dirs = sorted(p.parent.relative_to(out / "runs").as_posix()
                for p in out.glob("runs/*/*/config.json"))
  assert dirs == sorted([f"{j.run}/seed0x2" for j in st.phase1_jobs()] +
                        [f"{j.run}/seed1000x2" for j in st.phase2_jobs(f["q4"]["best"])])
  for d in dirs:
    cfg = json.loads((out / "runs" / d / "config.json").read_text())
    assert cfg["num_trials"] == 2
    assert cfg["compare"]["parallel"] == ("none" if d.startswith("ensemble_bald") else "vmap")
  # Every paired interval has 2 replicates, paired by (seed, trial).
  q4 = f["q4"]
  for row in q4["table"]:
    assert row["seeds"] == reps_rep and len(row["per_seed_auc"]) == 2
  assert set(q4["best_vs"]) == {"users", "random", "ensemble_bald"} - {q4["best"]}
  for p in [*f["q2"]["vs_u_batch"].values(), *q4["best_vs"].values()]:
    assert p["pairs"] == 2 and p["seeds"] in (reps_sel, reps_rep)
  choice = json.loads((out / "choice.json").read_text())
  assert choice["chosen_on_replicates"] == reps_sel and choice["trials_per_job"] == 2
  # The replays rebuild the steps of trial 0 of the grouped u_batch job.
  assert f["q1"]["replay_reproduces_runs"] is True and f["q1"]["lam0_shares_with_u_only"] == 1.0
  assert f["q1"]["scales"]["trial"] == 0
  # Replicate (0, 0) is the one-trial job of seed 0: same initial set, same picks.
  from jax_al import replay
  k1, _ = ci_study
  one = replay.selected_sets(k1.job("u_batch", 0, "select").workdir)
  grouped = replay.selected_sets(st.job("u_batch", 0, "select").workdir)
  assert set(grouped) == {(t, c) for t in (0, 1) for c in range(3)}
  for c in range(3):
    assert grouped[(0, c)].tolist() == one[(0, c)].tolist(), c
  assert grouped[(1, 0)].tolist() != grouped[(0, 0)].tolist()  # trial 1: its own initial set
  md = (out / "findings.md").read_text()
  assert "a replicate is (job seed, trial)" in md and "2 selection and 2 report replicates" in md
  timings = sorted(p.name for p in (out / "timing").glob("*.json"))
  assert "u_batch__seed0x2.json" in timings and len(timings) == len(dirs)


@pytest.mark.slow
def test_grouped_study_resumes_and_needs_every_trial(grouped_study, tmp_path):
  import shutil

  from jax_al import study
  from jax_al.study import cost, executors, findings

  st, f = grouped_study
  metrics = {p: p.read_bytes() for p in st.out.glob("runs/*/seed*/metrics.jsonl")}
  again = study.run_study(st, log=lambda m: None)
  assert again["runtime"]["jobs_run"] == 0
  assert again["runtime"]["jobs_skipped"] == len(st.phase1_jobs()) + len(
      st.phase2_jobs(f["q4"]["best"])) == 12
  assert {p: p.read_bytes() for p in metrics} == metrics
  assert _numbers(again) == _numbers(f)
  # A grouped job with one trial unfinished is not finished, and its replicate is missing.
  job = st.job("u_batch", 0, "select")
  cut = tmp_path / "cut"
  shutil.copytree(job.workdir, cut, ignore=shutil.ignore_patterns("checkpoints", ".lock"))
  lines = (cut / "metrics.jsonl").read_text().splitlines()
  keep = [x for x in lines if not (json.loads(x).get("trial") == 1 and
                                   json.loads(x).get("kind") == "cycle" and
                                   json.loads(x).get("cycle") == 3)]
  assert len(keep) < len(lines)
  (cut / "metrics.jsonl").write_text("\n".join(keep) + "\n")
  (cut / "summary.json").unlink()
  cfg = st.run_config("u_batch", 0)
  assert executors.job_finished(job.workdir, cfg)
  assert not executors.job_finished(cut, cfg)
  r = findings.combine("u_batch", {"0:0": (cut, 0), "0:1": (cut, 1)})
  assert r["trials"] == ["0:0"] and r["missing"] == ["0:1"]
  # The plan's cost is measured from the grouped cycles.
  e = cost.estimate(st)
  assert e["measured"] and "measured over" in e["basis"] and "vmapped cycles" in e["basis"]
  assert e["vmap_images_per_s"] > 0


# ------------------------------------------------- configs/cifar10_short.py

_FLAGS = """
import json, sys
from absl import flags
from ml_collections import config_flags
config_flags.DEFINE_config_file("config", None, "", lock_config=True)
flags.FLAGS(["x"] + sys.argv[1:])
print(json.dumps(flags.FLAGS.config.to_dict()))
"""


def _parsed(*args) -> dict:
  """The config as the command line resolves it (config_flags, overrides applied)."""
  r = subprocess.run([sys.executable, "-c", _FLAGS, "--config=configs/cifar10_short.py", *args],
                     cwd=REPO, capture_output=True, text=True, timeout=120,
                     env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
  assert r.returncode == 0, r.stderr
  return json.loads(r.stdout)


@pytest.mark.slow
def test_short_cifar_config_is_the_protocol_in_fewer_epochs():
  from configs import cifar10, cifar10_short

  from jax_al import config as config_lib

  c, full = cifar10_short.get_config(), cifar10.get_config()
  config_lib.check_config(c)
  assert (c.train.epochs, tuple(c.train.milestones), c.train.eval_every) == (20, (16,), 20)
  assert (c.num_trials, c.compare.parallel) == (3, "vmap")
  same = lambda d: {k: v for k, v in d.items() if k not in ("epochs", "milestones",
                                                             "eval_every", "dtype")}
  assert same(c.train.to_dict()) == same(full.train.to_dict())
  for section in ("al", "model", "data", "augment"):
    assert c[section].to_dict() == full[section].to_dict(), section
  # Overrides on the command line: the decay stays at 80 % of the epochs and the
  # evaluation at the last; explicit fields win.
  t = _parsed("--config.train.epochs=30")["train"]
  assert (t["epochs"], t["milestones"], t["eval_every"]) == (30, [24], 30)
  t = _parsed("--config.train.epochs=30", "--config.train.milestones=(7,)")["train"]
  assert (t["epochs"], t["milestones"]) == (30, [7])
  t = _parsed("--config.train.eval_every=5")["train"]
  assert (t["epochs"], t["milestones"], t["eval_every"]) == (20, [16], 5)
  p = _parsed("--config.train.epochs=25")
  assert p["train"]["milestones"] == [20] and p["al"]["strategy"] == "uncertainty_mmd"
  assert _parsed("--config=configs/cifar10_short.py:greedy_margin")["al"]["utility"] == "margin"


@pytest.mark.slow
def test_short_cifar_study_plan_with_grouped_jobs(tmp_path):
  """The plan needs no data: TFDS cifar10's sizes come from the prepared
  dataset where there is one, else the plan says they are unknown."""
  out = tmp_path / "c"
  r = _cli("--config", "configs/cifar10_short.py", "--out", str(out), "--plan",
           "--study.trials_per_job=3", "--study.trials=3", "--study.report_trials=3",
           "--study.device=gpu", "--study.vmap_images_per_s=60000",
           "--config.train.epochs=25")
  assert r.returncode == 0, r.stderr
  assert "each job = 3 trials of one job seed" in r.stdout and "25 epochs" in r.stdout
  assert "60,000 training images/s in all (given by --study.vmap_images_per_s)" in r.stdout
  assert "ensemble_bald" in r.stdout and "3 trials one after another" in r.stdout
  assert "learning_loss" in r.stdout and "estimated total:" in r.stdout
  assert not out.exists()


# ------------------------------------------- the README's grids and list edges

# The smallest four-question grid of the README, in ci mode at 2 cycles, one
# seed per phase: 8 phase-1 jobs, the replays, then phase 2.
SMALLEST = dict(lams="1", norms="rank", sign_lams="1", trials=1, report_trials=1)


def _tiny_study(out, executor="local", **fields):
  from configs import digits

  from jax_al import study

  f = study.fields.study_defaults()
  with f.unlocked():
    f.baselines = BASELINES
    for k, v in fields.items():
      node, *rest = k.split("__")
      if rest:
        f[node][rest[0]] = v
      else:
        f[node] = v
  c = digits.get_config()
  c.al.cycles = 2
  return study.build(c, f, config_spec="configs/digits.py", mode="ci", out=out,
                     given={"al.cycles"}, executor=executor)


@pytest.fixture(scope="module")
def smallest_study(tmp_path_factory):
  from jax_al import study

  st = _tiny_study(tmp_path_factory.mktemp("smallest") / "s", **SMALLEST)
  return st, study.run_study(st, log=lambda m: None)


@pytest.mark.slow
def test_smallest_grid_runs_to_its_findings(smallest_study):
  """--study.norms=rank leaves `none` (the users' run) out of the sweep: the
  replays still give that run its lam = 0 reference (was KeyError: 'none')."""
  st, f = smallest_study
  assert "none" not in st.fields.norms
  assert {r["norm"] for r in f["q1"]["sweep"]} == {"rank"}
  assert f["q1"]["lam0_shares_with_u_only"] == 1.0
  assert f["q1"]["replay_reproduces_runs"] is True
  assert (st.out / "findings.md").is_file() and f["q4"]["best"] in f["q4"]["candidates"]


@pytest.mark.slow
@pytest.mark.parametrize("fields,new_runs", [
    (dict(norms="minmax"), {"minmax_lam1"}),      # one norm, neither none nor rank
    (dict(lams="0"), set()),                      # no sweep run at all
    (dict(baselines=""), set()),                  # no baselines: best vs the users' method
    (dict(sign_lams="1,0.5", baselines="none"), {"rank_lam0.5", "rank_lam0.5_small"}),
])
def test_list_edges_run_on_the_smallest_grid(smallest_study, fields, new_runs):
  """Edges of the study lists, each a study on the smallest grid's --out: its
  finished jobs are reused, only the new runs train."""
  from jax_al import study

  st0, _ = smallest_study
  st = _tiny_study(st0.out, **{**SMALLEST, **fields})
  assert {n for n, r in st.runs.items() if r.phase == "select"} - set(st0.runs) == new_runs
  f = study.run_study(st, log=lambda m: None)
  assert f["q1"]["lam0_shares_with_u_only"] == 1.0
  if "baselines" in fields:
    assert st.baselines == [] and [r["name"] for r in f["q4"]["table"]] == list(
        dict.fromkeys([f["q4"]["best"], "users"]))
  if fields.get("lams") == "0":
    assert all(r["lam"] == 0 for r in f["q1"]["sweep"]) and f["q1"]["best"] is None


@pytest.mark.parametrize("field", ["lams", "norms", "sign_lams", "candidates", "probe_cycles"])
@pytest.mark.slow
def test_an_empty_list_is_refused_in_one_line(tmp_path, field):
  r = _cli("--config", "configs/digits.py", "--out", str(tmp_path / "s"), "--mode", "ci",
           f"--study.{field}=")
  assert r.returncode == 1, (r.stdout, r.stderr)
  lines = [x for x in r.stderr.splitlines() if x.strip()]
  assert len(lines) == 1 and f"`study.{field}` = ''" in lines[0] and "empty list" in lines[0]
  assert not (tmp_path / "s").exists()


def test_an_empty_baseline_list_means_none(tmp_path):
  st = _study(tmp_path / "s", baselines="")
  assert st.baselines == [] and list(st.phase2_runs(None)) == ["users"]
  assert "phase 2: 2 runs" in study_plan(st)
  assert _study(tmp_path / "s", baselines="none").baselines == []
  from jax_al import study
  d = study.build(__import__("configs.digits").digits.get_config(),
                  study.fields.study_defaults(), config_spec="configs/digits.py", mode="ci",
                  out=tmp_path / "s")
  assert d.baselines[:7] == study.fields.DEFAULT_BASELINES.split(",")  # unset: the default


def study_plan(st) -> str:
  from jax_al import study
  return study.plan_text(st)


def test_every_readme_grid_builds_and_plans(tmp_path):
  """The grids the README names: the full default, the ci default, the
  smallest four-question grid, each with the default and given baselines."""
  from configs import cifar10, digits

  from jax_al import study

  for cfg, mode, fields in [(digits, "full", {}), (digits, "ci", {}),
                            (digits, "full", dict(lams="1", norms="rank", sign_lams="1")),
                            (cifar10, "full", dict(lams="1", norms="rank", sign_lams="1",
                                                   trials_per_job=3, trials=3,
                                                   report_trials=3))]:
    f = study.fields.study_defaults()
    with f.unlocked():
      for k, v in fields.items():
        f[k] = v
    st = study.build(cfg.get_config(), f, config_spec="c", mode=mode, out=None)
    text = study.plan_text(st)
    assert "estimated total:" in text and "out: (none: a plan only)" in text


@pytest.mark.slow
def test_plan_needs_no_out_and_help_exits_0(tmp_path):
  r = _cli("--config", str(REPO / "configs" / "digits.py"), "--plan", "--mode", "ci", cwd=tmp_path)
  assert r.returncode == 0, r.stderr
  assert "estimated total:" in r.stdout and "no --out given" in r.stdout
  assert list(tmp_path.iterdir()) == []
  r = _cli("--config", "configs/digits.py", "--mode", "ci")
  assert r.returncode == 1 and "--out is required" in r.stderr
  assert len(r.stderr.strip().splitlines()) == 1
  for flag in ("--help", "-h"):
    r = _cli(flag)
    assert r.returncode == 0, r.stderr
    assert "--out" in r.stdout and "--helpfull" in r.stdout
    assert "array_parallelism" not in r.stdout and len(r.stdout.splitlines()) < 30
  r = _cli("--helpfull")
  assert r.returncode == 0 and "array_parallelism" in r.stdout
  r = subprocess.run([sys.executable, "run.py", "--help"], cwd=REPO, capture_output=True,
                     text=True, timeout=120)
  assert r.returncode == 0 and "--workdir" in r.stdout and "--helpfull" in r.stdout


# ------------------------------------------- the cost model's dataset sizes


def test_digits_sizes_come_from_the_source_without_loading():
  from configs import digits
  from jax_al import data
  c = digits.get_config()
  with c.unlocked():
    c.data.num_test = 500
  assert data.sizes(c.data) == (1297, 500)
  assert data.input_shape(c.data) == (8, 8, 1)


def _image_folder(root, counts):
  from PIL import Image
  import numpy as np
  for split, per_class in counts.items():
    for cls, n in per_class.items():
      d = root / split / cls
      d.mkdir(parents=True)
      for i in range(n):
        Image.fromarray(np.full((6, 5, 3), i, np.uint8)).save(d / f"{i}.png")


def test_folder_sizes_count_the_split_folders_of_a_directory_and_a_tar(tmp_path):
  import tarfile
  from configs import digits
  from jax_al import data
  root = tmp_path / "imgs" / "wrap"
  _image_folder(root, {"train": {"a": 3, "b": 2}, "test": {"a": 1, "b": 2}})
  (root / "train" / "a" / "notes.txt").write_text("not an image")
  c = digits.get_config()
  with c.unlocked():
    c.data.source, c.data.path, c.data.channels = "folder", str(tmp_path / "imgs"), 3
  assert data.sizes(c.data) == (5, 3)
  assert data.input_shape(c.data) == (6, 5, 3)  # the first image's header
  tar = tmp_path / "imgs.tar.gz"
  with tarfile.open(tar, "w:gz") as t:
    t.add(root, arcname="wrap")
  with c.unlocked():
    c.data.path = str(tar)
  assert data.sizes(c.data) == (5, 3)
  with c.unlocked():
    c.data.path = str(tmp_path / "absent")
  assert data.sizes(c.data) is None


def test_embeddings_sizes_read_the_npz_headers(tmp_path):
  import numpy as np
  from configs import embeddings
  from jax_al import data
  path = tmp_path / "e.npz"
  np.savez(path, train_features=np.zeros((37, 12), np.float32),
           train_labels=np.zeros(37, np.int32), test_features=np.zeros((9, 12), np.float32),
           test_labels=np.zeros(9, np.int32))
  c = embeddings.get_config()
  with c.unlocked():
    c.data.path = str(path)
  assert data.sizes(c.data) == (37, 9)
  assert data.input_shape(c.data) == (1, 12, 1)


def test_a_plan_of_a_source_of_unknown_size_says_so(tmp_path):
  from configs import digits
  from jax_al import study
  c = digits.get_config()
  with c.unlocked():
    c.data.source, c.data.path, c.data.channels = "folder", str(tmp_path / "absent"), 1
  f = study.fields.study_defaults()
  with f.unlocked():
    f.baselines, f.train_images_per_s = "random", 1000.0
  st = study.build(c, f, config_spec="configs/digits.py", mode="ci", out=None)
  text = study.plan_text(st)
  assert "sizes of this dataset (data.source=folder) are unknown before loading it" in text



# ------------------------------------------- the cost model's measured throughput


def test_the_throughput_probe_is_cached_per_model_and_machine(tmp_path, monkeypatch):
  from configs import digits
  from jax_al.study import throughput
  monkeypatch.setenv(throughput.ENV, str(tmp_path / "rates.json"))
  calls = []
  real = throughput.measure
  monkeypatch.setattr(throughput, "measure",
                      lambda config, shape: calls.append(shape) or real(config, shape))
  c = digits.get_config()
  rate, src = throughput.train_images_per_s(c, "cpu" if _backend() == "cpu" else "gpu")
  assert rate > 0 and "measured on this machine" in src and calls == [(8, 8, 1)]
  again, src = throughput.train_images_per_s(c, "cpu" if _backend() == "cpu" else "gpu")
  assert again == rate and "cached in" in src and len(calls) == 1  # the second plan measures nothing
  c.train.batch_size = 16  # another batch size is another measurement
  throughput.train_images_per_s(c, "cpu" if _backend() == "cpu" else "gpu")
  assert len(calls) == 2 and len(json.loads((tmp_path / "rates.json").read_text())) == 2


def _backend() -> str:
  import jax
  return jax.default_backend()


def test_a_plan_for_another_device_states_its_throughput_unknown(monkeypatch):
  from configs import digits
  from jax_al import study
  from jax_al.study import throughput
  monkeypatch.setattr(throughput, "measure", lambda *a: pytest.fail("measured another device"))
  other = "gpu" if _backend() == "cpu" else "cpu"
  f = study.fields.study_defaults()
  with f.unlocked():
    f.baselines, f.device = "random", other
  st = study.build(digits.get_config(), f, config_spec="configs/digits.py", mode="ci", out=None)
  e = study.cost.estimate(st)
  assert e["total_s"] is None and all(v is None for v in e["per_job_s"].values())
  text = study.plan_text(st)
  assert "training images/s unknown (NOT measured" in text
  assert f"estimated total: unknown, as the training throughput on {other} is unknown" in text
  assert "--study.train_images_per_s" in text
  with f.unlocked():  # given, it prices the plan without a measurement
    f.train_images_per_s = 1000.0
  st = study.build(digits.get_config(), f, config_spec="configs/digits.py", mode="ci", out=None)
  assert study.cost.estimate(st)["total_s"] > 0
  assert "given by --study.train_images_per_s" in study.plan_text(st)


def test_a_plan_on_this_machine_says_its_throughput_was_measured(tmp_path, monkeypatch):
  from configs import digits
  from jax_al import study
  from jax_al.study import throughput
  monkeypatch.setattr(throughput, "measure", lambda config, shape: 12_345.0)
  (tmp_path / "a_file").write_text("")
  monkeypatch.setenv(throughput.ENV, str(tmp_path / "a_file" / "rates.json"))  # unwritable
  f = study.fields.study_defaults()
  with f.unlocked():
    f.baselines = "random"
  st = study.build(digits.get_config(), f, config_spec="configs/digits.py", mode="ci", out=None)
  text = study.plan_text(st)
  assert "measured on this machine" in text and "training images/s" in text
  assert study.cost.estimate(st)["total_s"] > 0


@pytest.mark.slow
def test_a_plan_with_an_out_that_is_a_file_is_one_line(tmp_path):
  """A plan reads the rates measured under --out: a file there is refused, as
  the study itself would refuse it, not silently planned over."""
  f = tmp_path / "notes.txt"
  f.write_text("mine")
  r = _cli("--config", "configs/digits.py", "--out", str(f), "--mode", "ci", "--plan")
  assert r.returncode == 1, (r.stdout, r.stderr)
  lines = [x for x in r.stderr.splitlines() if x.strip()]
  assert len(lines) == 1 and "--out" in lines[0] and "it is a file" in lines[0], r.stderr
  assert f.read_text() == "mine"
