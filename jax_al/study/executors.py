"""Where the study's jobs run: in this process, or through submitit.

A job is a plain function call, `run_job(config, workdir, timing)`: an
ordinary jax-al run (`loop.run`) of one trial, or of `study.trials_per_job`
vmapped trials, in its own workdir, which
resumes by itself when called again on the same workdir. So an executor
only decides where that call happens:

- `local`: one after another in this process;
- `slurm`: through `submitit.AutoExecutor` (SLURM; `study.slurm.cluster=local`
  runs the jobs as local subprocesses, `debug` in this process). A job that
  SLURM pre-empts or times out is requeued by submitit (`checkpoint()`
  below) and continues after its last finished cycle; a study whose driver
  was stopped is resumed by rerunning the same command: finished jobs are
  skipped, unfinished ones resubmitted and resumed from their checkpoints.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from jax_al import files

try:  # pre-emption support when submitit is installed (the [slurm] extra)
  from submitit.helpers import Checkpointable as _Base
except ImportError:  # pragma: no cover - the local executor needs no submitit
  _Base = object


def job_finished(workdir: Path, config) -> bool:
  """True when `workdir` holds this config's run with all its `num_trials` trials complete."""
  from jax_al import report
  from jax_al import workdir as workdir_lib

  workdir = Path(workdir)
  if not (workdir / "summary.json").is_file() or not workdir_lib.is_ours(workdir):
    return False
  try:
    saved = json.loads((workdir / "config.json").read_text())
    if workdir_lib.comparable(saved) != workdir_lib.comparable(config.to_dict()):
      return False
    return report.load_run(workdir)["complete"] == list(range(int(config.num_trials)))
  except (OSError, ValueError):
    return False


def run_job(config, workdir: str, timing: str) -> dict:
  """Runs (or resumes) one job; writes its timing record; returns it.

  `timing` gets {seconds, cycle_seconds, host, finished}: wall time of this
  call and the part spent in cycles (the rest is start-up, data and
  compilation), which `--plan` uses as measured cost.
  """
  from jax_al import loop

  t0 = time.perf_counter()
  loop.run(config, workdir, quiet=True)
  seconds = time.perf_counter() - t0
  cyc = 0.0
  for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines():
    r = json.loads(line) if line.strip() else {}
    if r.get("kind") == "cycle":
      cyc += float(r.get("total_s", 0.0))
  rec = {"workdir": str(workdir), "seconds": seconds, "cycle_seconds": min(cyc, seconds),
         "host": platform.node(), "pid": os.getpid(), "finished": time.time()}
  Path(timing).parent.mkdir(parents=True, exist_ok=True)
  files.write_json(Path(timing), rec)
  return rec


class SubmititJob(_Base):
  """The callable submitit pickles: `fn` (a module-level function, `run_job` or
  the analysis), requeued as it is on pre-emption (a run resumes after its
  last finished cycle; the analysis starts again)."""

  def __init__(self, fn=run_job):
    self.fn = fn

  def __call__(self, *args):
    return self.fn(*args)

  def checkpoint(self, *args, **kwargs):  # submitit calls this on timeout / pre-emption
    import submitit
    return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def call(kind: str, fn_args: list[tuple], *, fields, folder: Path, log=print, label="jobs",
         fn=run_job):
  """Runs `fn(*args)` for each args tuple with executor `kind`; returns the results.

  The second argument of each call names it in the progress lines.
  """
  if not fn_args:
    return []
  if kind == "local":
    out = []
    for i, args in enumerate(fn_args, 1):
      t = time.perf_counter()
      out.append(fn(*args))
      log(f"  [{i}/{len(fn_args)}] {args[1]}  {time.perf_counter() - t:.1f} s")
    return out
  return _submitit(fn_args, fields=fields, folder=folder, log=log, label=label, fn=fn)


def make_executor(fields, folder: Path):
  """The submitit executor of the study's slurm fields."""
  try:
    import submitit
  except ImportError:
    from jax_al.errors import ConfigError
    raise ConfigError("--executor", "slurm", "submitit is not installed: pip install -e "
                      "\".[slurm]\" (or pip install submitit)") from None
  s = fields.slurm
  cluster = s.cluster or None
  ex = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
  params = dict(timeout_min=int(s.time_min), gpus_per_node=int(s.gpus), cpus_per_task=int(s.cpus),
                mem_gb=int(s.mem_gb), name="jax_al_study", slurm_array_parallelism=int(
                    s.array_parallelism))
  if s.partition:
    params["slurm_partition"] = s.partition
  if s.account:
    params["slurm_account"] = s.account
  extra = {}
  for kv in [x for x in s.extra.split(",") if x.strip()]:
    k, _, v = kv.partition("=")
    extra[k.strip()] = v.strip()
  if extra:
    params["slurm_additional_parameters"] = extra
  if ex.cluster == "local":
    params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    params.pop("mem_gb", None)
  ex.update_parameters(**params)
  return ex


def run_group(fn, calls: list[tuple]) -> list:
  """Several jobs in one submitted task, one after another (each in its own workdir)."""
  return [fn(*args) for args in calls]


def _submitit(fn_args, *, fields, folder: Path, log, label, fn):
  ex = make_executor(fields, folder)
  group = max(1, int(fields.slurm.group))
  tasks = [fn_args[i:i + group] for i in range(0, len(fn_args), group)]
  job_fn = SubmititJob(run_group)
  par = max(1, int(fields.slurm.array_parallelism))
  results = []
  # SLURM throttles an array itself (slurm_array_parallelism); the local and
  # debug clusters start every task at once, so they get chunks of that size.
  chunks = ([tasks] if ex.cluster == "slurm" else
            [tasks[i:i + par] for i in range(0, len(tasks), par)])
  done = 0
  for chunk in chunks:
    with ex.batch():
      jobs = [ex.submit(job_fn, fn, calls) for calls in chunk]
    ids = sorted({str(j.job_id).split("_")[0] for j in jobs})
    log(f"  submitted {sum(map(len, chunk))} {label} in {len(jobs)} task(s) ({ex.cluster}, "
        f"job id {', '.join(ids)}); logs in {folder}")
    for j, calls in zip(jobs, chunk):
      try:
        res = j.result()
      except Exception as e:  # the job's own error, with its log file
        from jax_al.errors import TrainingError
        last = str(e).strip().splitlines()[-1] if str(e).strip() else ""
        raise TrainingError(f"a task of {len(calls)} job(s) from {calls[0][1]} failed "
                            f"({type(e).__name__}: {last}); its log: {j.paths.stderr}; fix it "
                            "and rerun the same command to resume") from None
      for args, r in zip(calls, res):
        results.append(r)
        done += 1
        secs = r.get("seconds") if isinstance(r, dict) else None
        log(f"  [{done}/{len(fn_args)}] {args[1]}" + (f"  {secs:.1f} s" if secs else ""))
  return results
