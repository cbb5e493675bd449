"""`jax-al round`: labeling rounds with real annotators.

    jax-al round init DIR (--images FOLDER_OR_TAR | --embeddings FILE)
                      [--config CONFIG[:preset]] [--classes a,b,c] [--holdout labels.csv]
                      [--image-url URL_PREFIX]
    jax-al round next DIR --budget B [--strategy NAME] [--cold-start typiclust]
    jax-al round add DIR LABELS [--extra]      # a CSV id,label or a Label Studio JSON export
    jax-al round status DIR                    # rounds, labels per class, stop signal
    jax-al round undo DIR                      # takes the last merge back

`next` trains the round's model on the labels so far and writes
DIR/round_<n>/to_label.csv (id,path,rank,score), tasks.json (a Label
Studio import) and labeling_config.xml (its project's labeling setup, once
classes are known); `add` merges what the annotators returned into
DIR/labels.jsonl. Bad input stops with one line and changes nothing.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

from jax_al import files
from jax_al.errors import ConfigError, DataError, JaxALError
from jax_al.rounds import labels_in, model, stopping, store
from jax_al.rounds import pool as pool_lib
from jax_al.rounds.labelstudio import LOCAL_FILES

PROG = "jax-al round"


# ------------------------------------------------------------------ init ----


def _default_config(kind: str) -> str:
  import jax_al
  name = "digits.py" if kind == "images" else "embeddings.py"
  path = Path(jax_al.__file__).resolve().parents[1] / "configs" / name
  if not path.is_file():
    raise ConfigError("--config", None, f"the default config ({name}) is not beside this "
                      "installation; pass --config FILE.py[:preset]")
  return str(path)


def _load_config(spec: str):
  from jax_al import cli
  # The repo's config files import `configs.common`: put their parent on the path.
  path = Path(spec.partition(":")[0]).resolve()
  root = str(path.parent.parent)
  if path.parent.name == "configs" and root not in sys.path:
    sys.path.insert(0, root)
  return cli._load_config(spec)  # pylint: disable=protected-access


def _classes(text: str | None) -> list[str]:
  if text is None:
    return []
  names = [c.strip() for c in text.split(",")]
  if any(not c for c in names):
    raise ConfigError("--classes", text, "give class names separated by commas, e.g. "
                      "--classes cat,dog,bird")
  dup = [c for i, c in enumerate(names) if c in names[:i]]
  if dup:
    raise ConfigError("--classes", text, f"names {dup[0]!r} twice; give each class once")
  if len(names) < 2:
    raise ConfigError("--classes", text, "give at least two classes")
  return names


def _image_url(url: str | None, kind: str) -> str | None:
  if url is None:
    return LOCAL_FILES if kind == "images" else None
  if kind != "images":
    raise ConfigError("--image-url", url, "drop it: an embeddings pool's tasks show ids, "
                      "not images")
  if not url.startswith(("http://", "https://", "/")) or any(c.isspace() for c in url):
    raise ConfigError("--image-url", url, "give a URL prefix without spaces, e.g. "
                      "http://host:8081/images/ or /data/local-files/?d=photos/")
  return url


def _holdout(path: str | None, items, classes: list[str]) -> dict[str, str]:
  if path is None:
    return {}
  entries = labels_in.read_csv(Path(path))
  known = {it.id for it in items}
  out: dict[str, str] = {}
  for e in entries:
    if e.id not in known:
      raise DataError(path, f"{e.where}: id {e.id!r} is not in the pool",
                      "give ids of the pool's items (image paths relative to the folder)")
    if classes and e.label not in classes:
      from jax_al.errors import suggest
      raise DataError(path, f"{e.where}: label {e.label!r} is not a class",
                      suggest(e.label, classes))
    if out.get(e.id, e.label) != e.label:
      raise DataError(path, f"{e.where}: id {e.id!r} has two labels", "give each id one label")
    out[e.id] = e.label
  return out


def init(args) -> int:
  d = Path(args.dir)
  if d.exists() and not d.is_dir():
    raise DataError(str(d), "is a file", "pass a new or empty folder for the round")
  if (args.images is None) == (args.embeddings is None):
    raise ConfigError("--images/--embeddings", None, "pass exactly one: --images FOLDER (or "
                      ".tar) of the images to label, or --embeddings FILE of their embeddings")
  kind = "images" if args.images is not None else "embeddings"
  source = os.path.abspath(args.images if kind == "images" else args.embeddings)
  if d.is_dir() and store.is_project(d):
    meta = store.load(d).meta
    if meta["source"] == source and meta["kind"] == kind:
      print(f"{d} is a round folder of {source} already (init ran); next: "
            f"{PROG} next {d} --budget B")
      return 0
    raise DataError(str(d), f"is a round folder of another pool ({meta['source']})",
                    "pass a new or empty folder")
  if d.is_dir():
    other = sorted(p.name for p in d.iterdir() if p.name not in store.INIT_FILES)
    if other:
      raise DataError(str(d), f"is not empty (it holds {', '.join(other[:3])})",
                      "pass a new or empty folder; nothing in it is touched")
  for flag, v, low in (("--stop-set", args.stop_set, 1), ("--stop-rounds", args.stop_rounds, 1),
                       ("--min-per-class", args.min_per_class, 0)):
    if v < low:
      raise ConfigError(flag, v, f"use a whole number >= {low}")
  if not 0.0 < args.stop_kappa <= 1.0:
    raise ConfigError("--stop-kappa", args.stop_kappa, "use a kappa in (0, 1], e.g. 0.99")
  spec = args.config or _default_config(kind)
  config = _load_config(spec)
  config.data.source = "folder" if kind == "images" else "embeddings"
  config.data.path = source
  from jax_al import config as config_lib
  config_lib.check_config(config)
  classes = _classes(args.classes)
  image_url = _image_url(args.image_url, kind)
  if kind == "images":
    max_bytes = int(config.data.max_image_bytes)
    items = pool_lib.list_images(source, max_bytes)
  else:
    items = pool_lib.list_embeddings(source)
  holdout = _holdout(args.holdout, items, classes)
  rest = np.array([it.row for it in items if it.id not in holdout], np.int64)
  if len(rest) == 0:
    raise DataError(args.holdout, "holds every pool item", "keep items to label out of it")
  rng = np.random.default_rng(args.seed)
  stop = np.sort(rng.choice(rest, size=min(args.stop_set, len(rest)), replace=False))
  d.mkdir(parents=True, exist_ok=True)
  with store.Lock(d):
    pool_text = store.items_csv(items)
    files.atomic_write_text(d / store.POOL_CSV, pool_text)
    if holdout:
      files.atomic_write_text(d / store.HOLDOUT_CSV, store.labels_csv(holdout.items()))
    store.phase("init:pool")
    meta = {"tool": store.TOOL, "format": store.FORMAT, "kind": kind, "source": source,
            "config_spec": spec, "config": config.to_dict(), "classes": classes,
            "classes_fixed": bool(classes), "image_url": image_url, "seed": int(args.seed),
            "stop_set": [int(r) for r in stop], "stop_kappa": float(args.stop_kappa),
            "stop_rounds": int(args.stop_rounds), "min_per_class": int(args.min_per_class),
            "pool_sha256": store.digest_bytes(pool_text.encode())}
    files.write_json(d / store.ROUND_JSON, meta)
  print(f"{d}: a pool of {len(items):,} {kind} ({source}), "
        + (f"{len(classes)} fixed classes, " if classes else "classes from the labels, ")
        + (f"{len(holdout):,} holdout labels, " if holdout else "no holdout, ")
        + f"a stop set of {len(stop):,} items.")
  print(f"Next: {PROG} next {d} --budget 20")
  return 0


# ------------------------------------------------------------------ next ----


def _request(args) -> dict:
  return {"budget": int(args.budget), "strategy": args.strategy, "cold_start": args.cold_start}


def _pool_arrays(p: store.Project) -> np.ndarray:
  meta = p.meta
  if meta["kind"] == "images":
    data = meta["config"]["data"]
    return pool_lib.load_images(meta["source"], p.items, data.get("image_size"),
                                int(data["channels"]),
                                int(data.get("max_image_bytes") or 64 * 2**20))
  return pool_lib.load_embeddings(meta["source"], p.items)


def _score_text(s) -> str:
  return "" if s is None or not np.isfinite(s) else f"{float(s):.6g}"


def to_label_csv(p: store.Project, rows, scores) -> str:
  out = io.StringIO()
  w = csv.writer(out, lineterminator="\n")
  w.writerow(["id", "path", "rank", "score"])
  for rank, (r, s) in enumerate(zip(rows, scores), start=1):
    it = p.items[int(r)]
    w.writerow([it.id, it.path or "", rank, _score_text(s)])
  return out.getvalue()


def next_round(args) -> int:
  d = Path(args.dir)
  store.check_project(d)
  if args.budget < 1:
    raise ConfigError("--budget", args.budget, "use a whole number of items >= 1")
  model.check_cold_start(args.cold_start)
  if args.strategy is not None:
    from jax_al import presets
    if args.strategy not in presets.names():
      from jax_al.errors import suggest
      raise ConfigError("--strategy", args.strategy, suggest(args.strategy, presets.names()))
  from jax_al.rounds import report
  with store.Lock(d, args.wait):
    p = store.load(d)
    req = _request(args)
    op = p.open_round
    n = None
    if op is not None:
      merged = [lab for lab in p.labels if lab.round == op.number]
      rd = store.round_dir(d, op.number)
      # report.md is the last file `next` writes: without it the `next` that
      # published this round was cut off, and the same command finishes it.
      if op.selection.get("request") == req and not merged and not (rd / "report.md").exists():
        n = op.number
      elif not args.skip_unlabeled:
        left = len(op.remaining(set(p.labeled)))
        raise DataError(str(d), f"round {op.number} is open: {left} of its "
                        f"{len(op.asked)} items in {rd}/to_label.csv are not labeled yet",
                        f"merge them with {PROG} add {d} LABELS, or pass --skip-unlabeled "
                        "to close the round without them")
      else:
        # Closing is part of this command: a budget or setting it refuses must
        # leave the round open, so they are checked first.
        _check_next(p, args)
        files.write_json(rd / "closed.json", {"unlabeled": op.remaining(set(p.labeled))})
        store.phase("next:closed")
        p = store.load(d)
    if n is None:
      n = _make_round(d, p, args, req)
    report.write(store.load(d))
  rd = store.round_dir(d, n)
  sel = store.read_json(rd / "selection.json")
  acc = sel["holdout_acc"]
  how = (f"cold start ({sel['strategy']} on the raw features: fewer than 2 classes labeled)"
         if sel["cold_start"] else f"{sel['strategy']}, model trained on "
         f"{sel['labels_at_start']} labels" + (f", holdout accuracy {acc:.2f} %"
                                                if acc is not None else ""))
  print(f"round {n}: {len(sel['picks'])} items to label ({how}): {rd}/to_label.csv "
        f"and {rd}/tasks.json (Label Studio)")
  print(f"Next: label them, then {PROG} add {d} LABELS.csv (id,label) or a Label Studio "
        "JSON export")
  return 0


def _check_next(p: store.Project, args):
  """The next round's labeled rows, holdout rows, candidates and config (None
  for a cold start); ConfigError for a budget or a setting that cannot run."""
  row_of = {it.id: it.row for it in p.items}
  lab = p.labeled
  labeled = np.array(sorted(row_of[i] for i in lab), np.int64)
  holdout = np.array([row_of[i] for i in p.holdout], np.int64)
  taken = np.zeros(len(p.items), bool)
  taken[labeled] = True
  taken[holdout] = True
  cands = np.flatnonzero(~taken)
  if args.budget > len(cands):
    raise ConfigError("--budget", args.budget, f"only {len(cands)} pool items are "
                      "unlabeled (outside the holdout); lower the budget")
  config = None
  if len(set(lab.values())) >= 2:
    config = model.config_for(p.meta, num_labeled=len(labeled), budget=args.budget,
                              strategy=args.strategy)
  return labeled, holdout, cands, config


def _make_round(d: Path, p: store.Project, args, req: dict) -> int:
  """Trains (or cold-starts), picks and publishes the next round; its number."""
  n = len(p.rounds) + 1
  t0 = time.perf_counter()
  classes = p.classes
  index = {c: i for i, c in enumerate(classes)}
  row_of = {it.id: it.row for it in p.items}
  lab = p.labeled
  labeled, holdout, cands, config = _check_next(p, args)
  x = _pool_arrays(p)
  t_load = time.perf_counter() - t0
  y = np.zeros(len(p.items), np.int32)
  for i, c in lab.items():
    y[row_of[i]] = index[c]
  seed = int(p.meta["seed"])
  if config is None:
    out = model.cold_start(x, p.meta, labeled, cands, args.budget, args.cold_start, seed, n)
  else:
    hy = np.array([index[c] for c in p.holdout.values()], np.int32)
    out = model.train_and_pick(x, y, config, classes, labeled, cands, holdout, hy,
                               np.asarray(p.meta["stop_set"], np.int64), n)
  store.phase("next:picked")
  stage = store.fresh_staging(d, n)
  picks = [p.items[int(r)] for r in out.rows]
  files.atomic_write_text(stage / "to_label.csv", to_label_csv(p, out.rows, out.scores))
  from jax_al.rounds import labelstudio
  tasks = labelstudio.tasks([{"id": it.id, "path": it.path, "rank": k + 1,
                              "score": None if not np.isfinite(s) else float(s)}
                             for k, (it, s) in enumerate(zip(picks, out.scores))],
                            image_root_url=(p.meta.get("image_url", LOCAL_FILES)
                                            if p.meta["kind"] == "images" else None))
  files.write_json(stage / "tasks.json", tasks)
  if classes:  # a growing list has no choices before the first labels
    files.atomic_write_text(stage / "labeling_config.xml", labelstudio.labeling_config(
        classes, images=p.meta["kind"] == "images"))
  counts = {c: 0 for c in classes}
  for c in lab.values():
    counts[c] += 1
  files.write_json(stage / "selection.json", {
      "round": n, "request": req, "strategy": out.strategy, "cold_start": out.cold_start,
      "picks": [it.id for it in picks], "scores": [float(s) for s in out.scores],
      "labels_at_start": len(labeled), "classes": classes, "label_counts": counts,
      "stop_predictions": out.stop_predictions, "holdout_acc": out.holdout_acc,
      "stats": out.stats})
  files.write_json(stage / "timing.json", {"load": t_load, **out.seconds})
  store.phase("next:staged")
  store.publish_round(d, n)
  store.phase("next:published")
  return n


# ------------------------------------------------------------------- add ----


def add(args) -> int:
  d = Path(args.dir)
  store.check_project(d)
  path = Path(args.labels)
  with store.Lock(d, args.wait):
    p = store.load(d)
    if path.is_file():
      sha = store.digest_file(path)
      done = sorted({lab.merge for lab in p.labels if lab.source_sha256 == sha})
      if done:
        print(f"{path} is merged already (merge {done[0]}); nothing changed")
        return 0
    entries = labels_in.read(path)
    checked = labels_in.check(p, entries, path, args.extra)
    if not checked.new:
      print(f"{path}: all its {checked.already} labels are merged already; nothing changed")
      return 0
    op = p.open_round
    rnd = op.number if op else (p.rounds[-1].number if p.rounds else 0)
    merge, t = p.next_merge, store.now()
    new = [store.Label(e.id, e.label, rnd, merge, t, str(path.resolve()), sha)
           for e in checked.new]
    store.phase("add:checked")
    store.write_labels(d, list(p.labels) + new)
    store.phase("add:written")
  q = store.load(d)
  left = q.rounds[rnd - 1].remaining(set(q.labeled)) if rnd and not q.rounds[rnd - 1].closed \
      else []
  print(f"merged {len(new)} labels from {path} (merge {merge}, round {rnd})"
        + (f"; {checked.already} were merged already" if checked.already else "")
        + (f"; round {rnd} still waits for {len(left)} items" if left else
           f"; round {rnd} is complete. Next: {PROG} next {d} --budget B"))
  return 0


def undo(args) -> int:
  d = Path(args.dir)
  store.check_project(d)
  with store.Lock(d, args.wait):
    p = store.load(d)
    if not p.labels:
      raise DataError(str(d / store.LABELS), "holds no merge", "nothing to undo")
    last = max(lab.merge for lab in p.labels)
    removed = [lab for lab in p.labels if lab.merge == last]
    if not any(u.get("merge") == last for u in p.undone):  # a rerun after a kill: archived
      store.append_undone(d, p.undone, removed)
    store.phase("undo:archived")
    store.write_labels(d, [lab for lab in p.labels if lab.merge != last])
  later = [r.number for r in p.rounds if r.number > removed[0].round]
  print(f"took back merge {last}: {len(removed)} labels from {removed[0].source} "
        f"(kept in {d / store.UNDONE})"
        + (f"; round(s) {', '.join(map(str, later))} were picked with them" if later else ""))
  return 0


def status(args) -> int:
  d = Path(args.dir)
  store.check_project(d)
  from jax_al.rounds import report
  with store.Lock(d, args.wait):
    p = store.load(d)
    path = report.write(p)
  print(report.text(p))
  if path:
    print(f"\nreport: {path}")
  return 0


# ---------------------------------------------------------------- parser ----


def parser() -> argparse.ArgumentParser:
  ap = argparse.ArgumentParser(prog=PROG, description=__doc__.strip(),
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = ap.add_subparsers(dest="command", metavar="{init,next,add,status,undo}")
  sub.required = True

  def cmd(name, help_, fn):
    s = sub.add_parser(name, help=help_, description=help_)
    s.add_argument("dir", metavar="DIR", help="the round folder")
    s.add_argument("--wait", type=float, default=0.0,
                   help="seconds to wait for another round command working on DIR")
    s.set_defaults(fn=fn)
    return s

  s = cmd("init", "record a pool of items to label, with stable ids", init)
  s.add_argument("--images", help="folder or .tar/.tar.gz of JPEG/PNG images (any depth)")
  s.add_argument("--embeddings", help="a .npz (features, optional ids), .npy or .parquet "
                 "file of the items' embeddings")
  s.add_argument("--config", help="config file[:preset] of the model and strategy "
                 "(default: configs/digits.py for images, configs/embeddings.py)")
  s.add_argument("--classes", help="the fixed class list a,b,c (default: grows with the labels)")
  s.add_argument("--holdout", help="CSV id,label of pool items held out to measure accuracy")
  s.add_argument("--image-url", help="what the Label Studio tasks put before an image's "
                 f"path (default {LOCAL_FILES}: Label Studio's local files, with the "
                 "image folder as its document root)")
  s.add_argument("--seed", type=int, default=0, help="the stop set's draw and the models' seed")
  s.add_argument("--stop-set", type=int, default=1000,
                 help="items in the fixed stop set the stopping signal predicts")
  s.add_argument("--stop-kappa", type=float, default=0.99,
                 help="kappa between consecutive rounds' predictions that counts as stable")
  s.add_argument("--stop-rounds", type=int, default=3,
                 help="rounds in a row at --stop-kappa or above before stopping is suggested")
  s.add_argument("--min-per-class", type=int, default=5,
                 help="warn when a class has fewer labels than this")

  s = cmd("next", "train on the labels so far and write the next items to label", next_round)
  s.add_argument("--budget", type=int, required=True, help="items to pick")
  s.add_argument("--strategy", help="strategy or preset (default: the config's)")
  s.add_argument("--cold-start", default="typiclust", help="pick before 2 classes are "
                 f"labeled: {', '.join(model.COLD_STARTS)}")
  s.add_argument("--skip-unlabeled", action="store_true",
                 help="close the open round with its unlabeled items left out")

  s = cmd("add", "merge the labels the annotators returned", add)
  s.add_argument("labels", metavar="LABELS", help="CSV id,label or a Label Studio JSON export")
  s.add_argument("--extra", action="store_true",
                 help="also merge labels of items the open round did not ask for")

  cmd("status", "rounds, labels per class, accuracy, stop signal; writes the report", status)
  cmd("undo", "take the last merge back (kept in undone.jsonl)", undo)
  return ap


def main(argv) -> None:
  """Runs one subcommand. Ctrl-C and SIGTERM end it with one line and exit
  codes 130 and 143; rerunning the same command finishes what it had begun
  (a round folder is left in a state its next command resumes from)."""
  from jax_al.errors import Interrupted, handle_signals

  args = parser().parse_args(argv)
  with handle_signals():
    try:
      code = args.fn(args)
    except Interrupted as e:
      sys.stdout.flush()
      print(f"interrupted by {e.signal_name}; rerun the same command to finish it",
            file=sys.stderr, flush=True)
      raise SystemExit(e.exit_code) from None
    except KeyboardInterrupt:  # arrived before the handlers were installed
      sys.stdout.flush()
      print("interrupted by SIGINT; rerun the same command to finish it", file=sys.stderr,
            flush=True)
      raise SystemExit(130) from None
    except JaxALError as e:
      raise SystemExit(f"error: {e}") from None
  sys.stdout.flush()
  raise SystemExit(code)
