"""A labeling project to try `jax-al round` on, and a simulated annotator.

    python -m jax_al.rounds.demo digits OUT
        writes OUT/images/ (scikit-learn's 1,797 digits as 8x8 PNG files,
        d0000.png ...), OUT/truth.csv (id,label of every image) and
        OUT/holdout.csv (every 5th image, 360 labels)
    python -m jax_al.rounds.demo digits-embeddings OUT
        the same items as OUT/embeddings.npz (features [1797, 64]
        standardised, ids item0000 ...), OUT/truth.csv, OUT/holdout.csv
    python -m jax_al.rounds.demo annotate TRUTH TO_LABEL OUT [--fraction F]
        the annotator: labels the first F of TO_LABEL's rows (a round's
        to_label.csv) from TRUTH (CSV id,label) and writes OUT (id,label)

Nothing is downloaded; OUT must not exist yet (nothing is overwritten).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path


def _new_folder(out: str) -> Path:
  p = Path(out)
  if p.exists():
    raise SystemExit(f"error: {p}: exists already. Fix: pass a new folder (nothing is "
                     "overwritten)")
  p.mkdir(parents=True)
  return p


def _write_labels(path: Path, pairs) -> None:
  with open(path, "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["id", "label"])
    w.writerows(pairs)


def digits(out: str, embeddings: bool = False) -> None:
  import numpy as np
  from sklearn.datasets import load_digits

  x, y = load_digits(return_X_y=True)
  p = _new_folder(out)
  if embeddings:
    ids = [f"item{i:04d}" for i in range(len(x))]
    z = (x - x.mean(0)) / (x.std(0) + 1e-6)
    np.savez(p / "embeddings.npz", features=z.astype(np.float32), ids=np.array(ids))
  else:
    from PIL import Image
    (p / "images").mkdir()
    ids = [f"d{i:04d}.png" for i in range(len(x))]
    for name, im in zip(ids, x):
      Image.fromarray((im * 16).clip(0, 255).astype(np.uint8)).save(p / "images" / name)
  pairs = [(i, int(label)) for i, label in zip(ids, y)]
  _write_labels(p / "truth.csv", pairs)
  _write_labels(p / "holdout.csv", pairs[::5])
  what = "embeddings.npz" if embeddings else "images/"
  print(f"{p}: {what} ({len(ids)} items), truth.csv, holdout.csv ({len(pairs[::5])} labels)")


def annotate(truth: str, to_label: str, out: str, fraction: float = 1.0) -> None:
  with open(truth, newline="") as f:
    known = {r["id"]: r["label"] for r in csv.DictReader(f)}
  with open(to_label, newline="") as f:
    asked = [r["id"] for r in csv.DictReader(f)]
  take = asked[:round(len(asked) * fraction)]
  if Path(out).exists():
    raise SystemExit(f"error: {out}: exists already. Fix: pass a new file name")
  _write_labels(Path(out), [(i, known[i]) for i in take])
  print(f"{out}: {len(take)} of {len(asked)} items labeled")


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(prog="python -m jax_al.rounds.demo", description=__doc__)
  sub = ap.add_subparsers(dest="cmd", required=True)
  s = sub.add_parser("digits")
  s.add_argument("out")
  s = sub.add_parser("digits-embeddings")
  s.add_argument("out")
  s = sub.add_parser("annotate")
  s.add_argument("truth")
  s.add_argument("to_label")
  s.add_argument("out")
  s.add_argument("--fraction", type=float, default=1.0)
  a = ap.parse_args(argv)
  if a.cmd == "annotate":
    annotate(a.truth, a.to_label, a.out, a.fraction)
  else:
    digits(a.out, embeddings=a.cmd == "digits-embeddings")


if __name__ == "__main__":
  main(sys.argv[1:])
