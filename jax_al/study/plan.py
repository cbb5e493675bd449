"""The text `--plan` prints: every run and job of a study and its estimated cost."""

from __future__ import annotations

from jax_al.study.cost import TEST_ASSUMED, estimate
from jax_al.study.grid import Study


def fmt_s(s: float | None) -> str:
  if s is None:
    return "unknown"
  if s < 120:
    return f"{s:.0f} s"
  if s < 2 * 3600:
    return f"{s / 60:.1f} min"
  return f"{s / 3600:.1f} h"


def _dearest(e: dict, names) -> float | None:
  """The seconds of the dearest job among runs `names` (None: unknown)."""
  costs = [e["per_job_s"][n] for n in names]
  return None if None in costs else max(costs)


def _jobs_of(st: Study) -> tuple[str, str]:
  """How the plan names a job and its seeds: one trial each, or k trials each."""
  if st.k == 1:
    return ("each job = 1 trial (num_trials=1, its own seed)", "seeds")
  return (f"each job = {st.k} trials of one job seed (num_trials={st.k}, compare.parallel=vmap: "
          f"they train as one vmapped program; a replicate = (job seed, trial))",
          f"job seeds of {st.k} trials")


def _run_note(st: Study, name: str) -> str:
  if st.k > 1 and st.run_config(name, st.select_seeds[0]).compare.parallel != "vmap":
    return f" ({st.k} trials one after another: an ensemble cannot vmap trials)"
  return ""


def plan_text(st: Study) -> str:
  """What --plan prints: every run and job, and the estimated cost."""
  e = estimate(st)
  c = st.base
  each, seeds = _jobs_of(st)
  k = st.k
  if k == 1:
    seed_line = (f"selection seeds {st.select_seeds} (questions 1-3, choosing the best); report "
                 f"seeds {st.report_seeds} (question 4)")
  else:
    seed_line = (f"selection job seeds {st.select_seeds} x {k} trials = "
                 f"{len(st.select_seeds) * k} replicates (questions 1-3, choosing the best); "
                 f"report job seeds {st.report_seeds} x {k} trials = "
                 f"{len(st.report_seeds) * k} replicates (question 4)")
  out = st.out if st.out is not None else "(none: a plan only)"
  lines = [f"study of {st.config_spec} (--mode {st.mode}, --executor {st.executor}), out: {out}",
           f"sizes: {c.al.initial} initial + {c.al.budget} per cycle x {c.al.cycles} cycles, "
           f"{c.train.epochs} epochs, subset {c.al.subset or 'whole pool'}, model {c.model.name} "
           f"(width {c.model.width:g}); {each}", seed_line, ""]
  n1 = [n for n, r in st.runs.items() if r.phase == "select"]
  lines.append(f"phase 1: {len(n1)} runs x {len(st.select_seeds)} selection {seeds} = "
               f"{len(n1) * len(st.select_seeds)} jobs, {fmt_s(e['phase1_s'])}")
  for n in n1:
    r = st.runs[n]
    lines.append(f"  {n:22s} {','.join(r.questions):12s} {fmt_s(e['per_job_s'][n]):>9s}/job  "
                 f"{r.what}{_run_note(st, n)}")
  fixed2 = list(st.phase2_runs(None))
  lines += ["", f"phase 2: {len(fixed2) + 1} runs x {len(st.report_seeds)} report {seeds} = "
            f"{(len(fixed2) + 1) * len(st.report_seeds)} jobs, {fmt_s(e['phase2_s'])}",
            f"  {'<best of phase 1>':22s} {'q4':12s} {fmt_s(_dearest(e, st.candidates())):>9s}/job  (at most) chosen by mean AUC on "
            f"the selection {'seeds' if k == 1 else 'replicates'} among {len(st.candidates())} "
            "candidates"]
  for n in fixed2:
    r = st.runs[n]
    lines.append(f"  {n:22s} {'q4':12s} {fmt_s(e['per_job_s'][n]):>9s}/job  {r.what}"
                 f"{_run_note(st, n)}")
  lines += ["", f"analysis: replays {len(st.probe_cycles)} selection step(s) (cycles "
            f"{st.probe_cycles}) of u_batch on {st.fields.probe_trials} selection "
            f"{'seed' if k == 1 else 'replicate'}(s): "
            f"pick shares, score scales (cycle {st.pca_cycle}), PCA picture, "
            f"{fmt_s(e['analysis_s'])}", "",
            (f"estimated total: {fmt_s(e['total_s'])} of {e['device']} time "
             if e["total_s"] is not None else
             f"estimated total: unknown, as the training throughput on {e['device']} is "
             "unknown: give it with --study.train_images_per_s (images/s of one trial) "
             f"for a cost estimate ")
            + f"({len(n1) * len(st.select_seeds) + (len(fixed2) + 1) * len(st.report_seeds)} "
            "jobs + the analysis), one after another",
            f"estimate basis: {e['basis']}"]
  for b, why in st.left_out.items():
    lines.append(f"default baseline {b} left out: {why}")
  if not e["images"]["pool_known"]:
    lines.append(f"note: the sizes of this dataset (data.source={c.data.source}) are unknown "
                 "before loading it; scoring cost counts al.subset only and the test passes "
                 f"assume {TEST_ASSUMED:,} test images")
  if set(st.select_seeds) & set(st.report_seeds):
    lines.append(f"WARNING: report seeds {sorted(set(st.select_seeds) & set(st.report_seeds))} "
                 "are also selection seeds: question 4 would be reported on seeds it was "
                 "chosen on (--study.report_offset)")
  return "\n".join(lines)
