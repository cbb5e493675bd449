"""What a round folder shows: `status`'s text and round_<n>/report.md with
plots (labels per class, holdout accuracy per round, the stopping signal's
kappa per round, the time of each phase)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from jax_al import files
from jax_al.rounds import stopping, store


@dataclasses.dataclass(frozen=True)
class RoundRow:
  number: int
  how: str                      # strategy, or "cold start: <method>"
  labels_at_start: int
  asked: int
  merged: int
  holdout_acc: float | None
  kappa: float | None
  seconds: dict


def rows(p: store.Project) -> list[RoundRow]:
  ks = dict(stopping.kappas([(r.number, r.selection.get("stop_predictions"))
                             for r in p.rounds]))
  out = []
  for r in p.rounds:
    sel = r.selection
    timing = store.read_json(store.round_dir(p.dir, r.number) / "timing.json") or {}
    out.append(RoundRow(
        r.number, (f"cold start: {sel['strategy']}" if sel["cold_start"] else sel["strategy"]),
        int(sel["labels_at_start"]), len(r.asked),
        sum(1 for lab in p.labels if lab.round == r.number), sel.get("holdout_acc"),
        ks.get(r.number), timing))
  return out


def class_counts(p: store.Project) -> dict[str, list[int]]:
  """Per class, the labels merged for each round (index 0: merged with no round)."""
  n = len(p.rounds)
  out = {c: [0] * (n + 1) for c in p.classes}
  for lab in p.labels:
    out[lab.label][lab.round] += 1
  return out


def warnings(p: store.Project) -> list[str]:
  k = int(p.meta["min_per_class"])
  out = []
  for c, per_round in class_counts(p).items():
    total = sum(per_round)
    if total == 0:
      out.append(f"class {c!r} has no label yet")
    elif total < k:
      out.append(f"class {c!r} has {total} label(s), fewer than {k}")
  return out


def stop_line(p: store.Project) -> str:
  ks = [(r.number, r.kappa) for r in rows(p) if r.kappa is not None]
  thr, win = float(p.meta["stop_kappa"]), int(p.meta["stop_rounds"])
  if stopping.suggest_stop(ks, thr, win):
    return (f"stop suggested: kappa >= {thr:g} between consecutive rounds' predictions on "
            f"the stop set for the last {win} rounds (stabilizing predictions)")
  run = 0
  for _, k in reversed(ks):
    if k < thr:
      break
    run += 1
  last = f"last kappa {ks[-1][1]:.4f}" if ks else "no kappa yet (two trained rounds needed)"
  return f"keep labeling: {last}; {run} of {win} rounds in a row at >= {thr:g}"


def _fmt(v, spec=".2f") -> str:
  return "-" if v is None else format(v, spec)


def text(p: store.Project) -> str:
  lines = [f"{p.dir}: {len(p.items):,} {p.meta['kind']}, {len(p.labeled):,} labeled, "
           f"{len(p.holdout):,} holdout, {len(p.rounds)} round(s)"]
  rs = rows(p)
  if rs:
    lines.append("round  picked by                 labels  asked  merged  holdout %  kappa")
    for r in rs:
      lines.append(f"{r.number:>5}  {r.how:<24}  {r.labels_at_start:>6}  {r.asked:>5}  "
                   f"{r.merged:>6}  {_fmt(r.holdout_acc):>9}  {_fmt(r.kappa, '.4f'):>5}")
  counts = class_counts(p)
  if counts:
    lines.append("labels per class (this round's merges in brackets): " + ", ".join(
        f"{c} {sum(v)}" + (f" (+{v[-1]})" if len(v) > 1 and v[-1] else "")
        for c, v in counts.items()))
  lines += [f"warning: {w}" for w in warnings(p)]
  op = p.open_round
  if op is not None:
    lines.append(f"round {op.number} is open: {len(op.remaining(set(p.labeled)))} of "
                 f"{len(op.asked)} items wait for labels")
  lines.append(stop_line(p))
  if rs and rs[-1].seconds:
    lines.append("round %d took: " % rs[-1].number + ", ".join(
        f"{k} {v:.1f} s" for k, v in rs[-1].seconds.items()))
  return "\n".join(lines)


def _plots(p: store.Project, folder: Path) -> list[str]:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  rs = rows(p)
  made = []
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
  acc = [(r.labels_at_start, r.holdout_acc) for r in rs if r.holdout_acc is not None]
  ax = axes[0]
  if acc:
    ax.plot(*zip(*acc), "o-")
  ax.set(xlabel="labels", ylabel="holdout accuracy (%)", title="learning curve")
  ax = axes[1]
  ks = [(r.number, r.kappa) for r in rs if r.kappa is not None]
  if ks:
    ax.plot(*zip(*ks), "o-")
  ax.axhline(float(p.meta["stop_kappa"]), color="gray", ls="--", lw=1)
  ax.set(xlabel="round", ylabel="Cohen's kappa", title="stabilizing predictions")
  ax = axes[2]
  counts = class_counts(p)
  names = list(counts)
  bottom = [0] * len(names)
  for k in range(len(p.rounds) + 1):
    h = [counts[c][k] for c in names]
    if any(h):
      ax.bar(names, h, bottom=bottom, label="no round" if k == 0 else f"round {k}")
      bottom = [b + v for b, v in zip(bottom, h)]
  ax.set(xlabel="class", ylabel="labels", title="labels per class")
  if len(names) > 12:
    ax.tick_params(axis="x", labelrotation=90)
  if any(bottom):
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(folder / "report.png", dpi=90, metadata={"Software": None})
  plt.close(fig)
  made.append("report.png")
  return made


def write(p: store.Project) -> Path | None:
  """Writes the latest round's report.md and report.png; None before round 1."""
  if not p.rounds:
    return None
  folder = store.round_dir(p.dir, p.rounds[-1].number)
  pngs = _plots(p, folder)
  md = [f"# Round {p.rounds[-1].number} of {p.dir.name}", "", "```", text(p), "```", ""]
  md += [f"![{n}]({n})" for n in pngs]
  files.atomic_write_text(folder / "report.md", "\n".join(md) + "\n")
  return folder / "report.md"
