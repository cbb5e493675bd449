"""The short summary a run prints when it ends: what happened and what next.

Final accuracy and AUC (mean ± sample std over the complete trials; no ±
for a single trial), the wall time of this process, the workdir with its main files, and the next
commands: the report, a resume (the same command) and a comparison.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np

from jax_al import workdir as workdir_lib


def _command(workdir: Path, argv: list[str]) -> tuple[str, str, list] | None:
  """(the resume command, the --config spec, the run command's words) when run.py or `jax-al run`
  (`python -m jax_al run`: jax_al/commands.py sets that argv[0]) started this process."""
  if argv and Path(argv[0]).name == "run.py":
    head = ["python", "run.py"]
  elif argv and argv[0] in ("jax-al run", "python -m jax_al run"):
    head = argv[0].split()
  else:
    return None
  args = [a for a in argv[1:] if a not in ("--overwrite", "--nooverwrite")]
  spec = next((a.split("=", 1)[1] for a in args if a.startswith("--config=")), None)
  if spec is None and "--config" in args[:-1]:
    spec = args[args.index("--config") + 1]
  if not any(a == "--workdir" or a.startswith("--workdir=") for a in args):
    args += ["--workdir", str(workdir)]
  return shlex.join([*head, *args]), spec or "CONFIG", head


def lines(config, summary: dict, workdir, seconds: float, argv=None) -> list[str]:
  """The summary's lines for `summary` (report.run_summary) of the run in `workdir`."""
  from jax_al import report

  workdir = Path(workdir)
  argv = sys.argv if argv is None else argv
  sizes, n = summary["labeled"], summary["trials"]
  full = [a for a in summary["test_acc"] if len(a) == len(sizes)]
  out = [f"Finished {config.al.strategy}: {n} trial(s), {len(sizes)} cycle(s), "
         f"{sizes[0] if sizes else 0} -> {sizes[-1] if sizes else 0} labels"]
  if full:
    acc = np.asarray(full, float)
    auc = report.auc(sizes, acc)
    # One trial has no spread: "± 0.00" would read as a measured zero.
    pm = (lambda x: f" ± {float(np.std(x, ddof=1)):.2f}") if len(full) > 1 else (lambda x: "")
    out.append(f"  final accuracy {acc[:, -1].mean():.2f}{pm(acc[:, -1])} % at "
               f"{sizes[-1]} labels; AUC {auc.mean():.2f}{pm(auc)} "
               f"(over {len(full)} complete trial(s))")
  out.append(f"  wall time {seconds:.1f} s (this process)")
  names = [n for n in workdir_lib.RESULTS if (workdir / n).exists()]
  names += [n + "/" for n in (workdir_lib.CHECKPOINTS, workdir_lib.EVENTS)
            if (workdir / n).exists()]
  out.append(f"  workdir {workdir}: {', '.join(names)}")
  cmd = _command(workdir, list(argv))
  out.append("Next:")
  # The next commands in the form the user ran: `jax-al run` -> `jax-al report`.
  run_words = cmd[2] if cmd else ["python", "run.py"]
  report_words = (run_words[:-1] + ["report"] if run_words[-1] == "run"
                  else ["python", "-m", "jax_al.report"])
  out.append(f"  report:  {shlex.join(report_words)} {shlex.quote(str(workdir))} "
             f"--out {shlex.quote(str(workdir / 'report'))}")
  if cmd:
    out.append(f"  resume:  {cmd[0]}  (the same command continues after the last "
               "finished cycle)")
    spec = cmd[1]
  else:
    out.append("  resume:  call the same run again with the same workdir")
    spec = "CONFIG"
  other = "random,entropy" if config.al.strategy == "random" else f"random,{config.al.strategy}"
  # The run's own --config.* flags (a data path, sizes) define the data and
  # the protocol: the comparison keeps them; only the strategies change.
  kept = shlex.join(_config_flags(list(argv)[1:])) if cmd else ""
  out.append(f"  compare: {shlex.join(run_words)} --config {shlex.quote(spec)} "
             f"--config.compare.strategies={other}{' ' + kept if kept else ''} --workdir "
             f"{shlex.quote(str(workdir) + '_compare')}")
  return out


def _config_flags(args: list[str]) -> list[str]:
  """The `--config.<field>` flags of `args` (with a separate value where one
  is given as the next word), `compare.strategies` and `al.strategy` left
  out: a comparison sets those itself."""
  out, i = [], 0
  while i < len(args):
    a = args[i]
    if a.startswith("--config."):
      name = a[len("--config."):].split("=", 1)[0]
      words = [a] if "=" in a or i + 1 == len(args) else [a, args[i + 1]]
      if name not in ("compare.strategies", "al.strategy"):
        out += words
      i += len(words)
    else:
      i += 1
  return out


CURVE = "learning_curve.png"


def write_curve(summary: dict, workdir) -> Path | None:
  """Writes <workdir>/learning_curve.png: test accuracy against labeled-set
  size, every trial and the mean. Atomic (temp file, renamed); None when no
  cycle finished."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  sizes = summary["labeled"]
  if not sizes:
    return None
  path = Path(workdir) / CURVE
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for t, acc in enumerate(summary["test_acc"]):
    ax.plot(sizes[:len(acc)], acc, color="0.7", lw=1, label="trials" if t == 0 else None)
  if summary["mean"]:
    ax.plot(sizes, summary["mean"], marker="o", ms=3, color="C0", label="mean")
  ax.set_xlabel("labeled images")
  ax.set_ylabel("test accuracy (%)")
  ax.set_title(f"{summary['strategy']}, seed {summary['seed']}")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  import io

  from jax_al import files
  buf = io.BytesIO()
  try:
    fig.savefig(buf, format="png", dpi=100)
  finally:
    plt.close(fig)
  files.atomic_write_bytes(path, buf.getvalue())  # a full disk: one line (files.WriteError)
  return path
