"""`jax-al round`: labeling rounds with a simulated annotator (issue 26).

Real data throughout: scikit-learn's digits as a folder of PNG images and as
an embeddings file. The annotator is a separate process
(`python -m jax_al.rounds.demo annotate`) that reads a round's
to_label.csv and writes a labels CSV from the true labels.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from jax_al.rounds import commands, demo, stopping, store
from tests.conftest import snapshot

REPO = Path(__file__).resolve().parents[1]
# Files of a round folder that are views, not state: seconds, and the report
# (whose text quotes them); the lock file is empty.
DERIVED = ("timing.json", "report.md", "report.png", store.LOCK)


def state(d: Path) -> dict[str, str]:
  return {k: v for k, v in snapshot(d).items() if Path(k).name not in DERIVED}


def rnd(*argv) -> str:
  """`jax-al round ARGV` in this process; returns what it printed (raises on error)."""
  import contextlib
  import io
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    with pytest.raises(SystemExit) as e:
      commands.main([str(a) for a in argv])
  if e.value.code not in (0, None):
    raise AssertionError(f"round {argv} exited {e.value.code!r}; printed {out.getvalue()}")
  return out.getvalue()


def refused(*argv) -> str:
  """The one error line of a refused command (asserts it was refused)."""
  with pytest.raises(SystemExit) as e:
    commands.main([str(a) for a in argv])
  msg = e.value.code
  assert isinstance(msg, str) and msg.startswith("error: "), msg
  assert "\n" not in msg, msg
  return msg


def annotate(truth: Path, to_label: Path, out: Path, fraction: float = 1.0) -> Path:
  """The simulated annotator, as its own process."""
  r = subprocess.run([sys.executable, "-m", "jax_al.rounds.demo", "annotate", str(truth),
                      str(to_label), str(out), "--fraction", str(fraction)],
                     capture_output=True, text=True, cwd=REPO, timeout=120)
  assert r.returncode == 0, r.stderr
  return out


def read_csv(path: Path) -> list[dict]:
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def fast_config(tmp: Path, preset: str = "margin") -> str:
  """The digits embeddings config (an MLP head) at 20 epochs, as a config file."""
  path = tmp / "fast_embeddings.py"
  path.write_text(
      "from configs import embeddings\n"
      "def get_config(preset='margin'):\n"
      "  c = embeddings.get_config(preset)\n"
      "  c.train.epochs = 20\n"
      "  c.train.milestones = (15,)\n"
      "  c.train.eval_every = 20\n"
      "  return c\n")
  return f"{path}:{preset}"


@pytest.fixture(scope="module")
def emb(tmp_path_factory) -> Path:
  d = tmp_path_factory.mktemp("emb") / "demo"
  demo.digits(str(d), embeddings=True)
  return d


@pytest.fixture(scope="module")
def imgs(tmp_path_factory) -> Path:
  d = tmp_path_factory.mktemp("imgs") / "demo"
  demo.digits(str(d))
  return d


# ------------------------------------------------------------- workflow ----


@pytest.mark.slow
def test_six_rounds_on_a_digits_image_folder(imgs, tmp_path):
  d = tmp_path / "project"
  # docs/rounds.md's walk-through, whose numbers it quotes.
  rnd("init", d, "--images", imgs / "images", "--holdout", imgs / "holdout.csv",
      "--classes", ",".join(map(str, range(10))))
  truth = {r["id"]: r["label"] for r in read_csv(imgs / "truth.csv")}
  merged = {}
  for n in range(1, 7):
    out = rnd("next", d, "--budget", 20)
    assert f"round {n}: 20 items to label" in out
    to_label = d / f"round_{n}" / "to_label.csv"
    rows = read_csv(to_label)
    assert [int(r["rank"]) for r in rows] == list(range(1, 21))
    assert all(r["id"] == r["path"] and (imgs / "images" / r["path"]).is_file() for r in rows)
    assert not set(r["id"] for r in rows) & set(merged), "an item was asked twice"
    tasks = json.loads((d / f"round_{n}" / "tasks.json").read_text())
    assert [t["data"]["jax_al_id"] for t in tasks] == [r["id"] for r in rows]
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=" + rows[0]["path"]
    xml = (d / f"round_{n}" / "labeling_config.xml").read_text()
    assert '<Image name="image"' in xml and xml.count("<Choice ") == 10
    rnd("add", d, annotate(imgs / "truth.csv", to_label, tmp_path / f"labels_{n}.csv"))
    merged.update({r["id"]: truth[r["id"]] for r in rows})
  ledger = [json.loads(line) for line in (d / "labels.jsonl").read_text().splitlines()]
  assert {r["id"]: r["label"] for r in ledger} == merged and len(ledger) == 120
  assert [r["round"] for r in ledger] == [n for n in range(1, 7) for _ in range(20)]
  sel = [json.loads((d / f"round_{n}" / "selection.json").read_text()) for n in range(1, 7)]
  assert sel[0]["cold_start"] and sel[0]["strategy"] == "typiclust"
  assert not any(s["cold_start"] for s in sel[1:])
  acc = [s["holdout_acc"] for s in sel[1:]]
  assert acc[-1] > acc[0] + 5, acc
  # docs/rounds.md quotes 79.44, 84.72, 86.39, 90.28, 88.33 (2-core CPU VM, 2026-12-04).
  assert np.allclose(acc, [79.44, 84.72, 86.39, 90.28, 88.33], atol=3), acc
  status = rnd("status", d)
  assert "120 labeled, 360 holdout, 6 round(s)" in status
  assert "keep labeling" in status or "stop suggested" in status
  assert (d / "round_6" / "report.md").is_file() and (d / "round_6" / "report.png").is_file()


@pytest.mark.slow
def test_six_rounds_on_an_embeddings_file_with_growing_classes(emb, tmp_path):
  d = tmp_path / "project"
  rnd("init", d, "--embeddings", emb / "embeddings.npz", "--holdout", emb / "holdout.csv",
      "--config", fast_config(tmp_path), "--stop-set", 300, "--stop-kappa", 0.5,
      "--stop-rounds", 2)
  for n in range(1, 7):
    rnd("next", d, "--budget", 25)
    # The holdout's labels start the growing class list.
    xml = (d / f"round_{n}" / "labeling_config.xml").read_text()
    assert '<Text name="text"' in xml and xml.count("<Choice ") == len(store.load(d).classes)
    rnd("add", d, annotate(emb / "truth.csv", d / f"round_{n}" / "to_label.csv",
                           tmp_path / f"l{n}.csv"))
  p = store.load(d)
  assert len(p.labeled) == 150
  assert sorted(p.classes, key=int) == [str(c) for c in range(10)]
  accs = [r.selection["holdout_acc"] for r in p.rounds[1:]]
  assert accs[-1] > accs[0], accs
  ks = stopping.kappas([(r.number, r.selection["stop_predictions"]) for r in p.rounds])
  assert [n for n, _ in ks] == [3, 4, 5, 6]
  status = rnd("status", d)
  expect = stopping.suggest_stop(ks, 0.5, 2)
  assert ("stop suggested" in status) == expect, (ks, status)
  assert f"{ks[-1][1]:.4f}" in status


@pytest.mark.slow
def test_the_same_commands_give_the_same_picks(emb, tmp_path):
  picks = []
  for k in range(2):
    d = tmp_path / f"p{k}"
    rnd("init", d, "--embeddings", emb / "embeddings.npz", "--config", fast_config(tmp_path))
    rnd("next", d, "--budget", 15)
    rnd("add", d, annotate(emb / "truth.csv", d / "round_1" / "to_label.csv",
                           tmp_path / f"a{k}.csv"))
    rnd("next", d, "--budget", 15)
    # No class is known before the first labels: no labeling setup for Label Studio.
    assert not (d / "round_1" / "labeling_config.xml").exists()
    assert (d / "round_2" / "labeling_config.xml").read_text().count("<Choice ") == len(
        store.load(d).classes) >= 2
    picks.append([(d / f"round_{n}" / "to_label.csv").read_text() for n in (1, 2)])
  assert picks[0] == picks[1]


@pytest.mark.slow
def test_one_class_so_far_takes_the_cold_start_again(emb, tmp_path):
  d = tmp_path / "p"
  rnd("init", d, "--embeddings", emb / "embeddings.npz", "--config", fast_config(tmp_path))
  rnd("next", d, "--budget", 20)
  truth = {r["id"]: r["label"] for r in read_csv(emb / "truth.csv")}
  asked = [r["id"] for r in read_csv(d / "round_1" / "to_label.csv")]
  one = [i for i in asked if truth[i] == truth[asked[0]]]
  part = tmp_path / "one_class.csv"
  demo._write_labels(part, [(i, truth[i]) for i in one])  # pylint: disable=protected-access
  out = rnd("add", d, part)
  assert f"round 1 still waits for {20 - len(one)} items" in out
  msg = refused("next", d, "--budget", 20)
  assert "round 1 is open" in msg and "--skip-unlabeled" in msg
  out = rnd("next", d, "--budget", 20, "--skip-unlabeled", "--cold-start", "coreset")
  assert "cold start (coreset" in out
  assert (d / "round_1" / "closed.json").is_file()
  sel = json.loads((d / "round_2" / "selection.json").read_text())
  assert sel["cold_start"] and sel["labels_at_start"] == len(one)
  assert not set(sel["picks"]) & set(one)


@pytest.mark.slow
def test_an_image_archive_gives_the_folder_ids_and_a_changed_image_is_refused(imgs, tmp_path):
  tar = tmp_path / "digits.tar.gz"
  with tarfile.open(tar, "w:gz") as t:
    for name in sorted(os.listdir(imgs / "images"))[:300]:
      t.add(imgs / "images" / name, arcname=f"batch1/{name}")
  d = tmp_path / "p"
  # An archive's images are served by something else, e.g. a web server on its
  # extracted copy: the tasks put --image-url before each quoted path.
  rnd("init", d, "--images", tar, "--image-url", "http://127.0.0.1:8081/digit%20images/")
  items = read_csv(d / "pool.csv")
  assert len(items) == 300 and items[0]["id"] == "batch1/d0000.png"
  rnd("next", d, "--budget", 10)
  rows = read_csv(d / "round_1" / "to_label.csv")
  assert all(r["id"].startswith("batch1/") for r in rows)
  tasks = json.loads((d / "round_1" / "tasks.json").read_text())
  assert [t["data"]["image"] for t in tasks] == [
      "http://127.0.0.1:8081/digit%20images/" + r["path"] for r in rows]
  folder = tmp_path / "copy"
  shutil.copytree(imgs / "images", folder)
  d2 = tmp_path / "p2"
  rnd("init", d2, "--images", folder)
  (folder / "d0007.png").write_bytes((folder / "d0008.png").read_bytes())
  before = snapshot(d2)
  msg = refused("next", d2, "--budget", 10)
  assert "d0007.png" in msg and "changed since round init" in msg
  assert snapshot(d2) == before
  # An image added to the folder was never picked, without a word.
  (folder / "d0007.png").write_bytes((imgs / "images" / "d0007.png").read_bytes())
  (folder / "sub").mkdir()
  (folder / "sub" / "new.png").write_bytes((folder / "d0008.png").read_bytes())
  msg = refused("next", d2, "--budget", 10)
  assert "sub/new.png" in msg and "new since round init" in msg, msg
  assert snapshot(d2) == before


# ------------------------------------------------------------ bad input ----


@pytest.fixture
def open_round(emb, tmp_path):
  """A folder with fixed classes 0..9 whose round 1 (cold start, 20 items) is open."""
  d = tmp_path / "p"
  rnd("init", d, "--embeddings", emb / "embeddings.npz", "--holdout", emb / "holdout.csv",
      "--classes", ",".join(map(str, range(10))), "--config", fast_config(tmp_path))
  rnd("next", d, "--budget", 20)
  asked = [r["id"] for r in read_csv(d / "round_1" / "to_label.csv")]
  return d, asked, {r["id"]: r["label"] for r in read_csv(emb / "truth.csv")}


def _labels(path: Path, text: str | bytes) -> Path:
  (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
  return path


def test_bad_labels_files_are_refused_and_change_nothing(open_round, emb, tmp_path):
  d, asked, truth = open_round
  holdout_id = read_csv(emb / "holdout.csv")[0]["id"]
  not_asked = next(i for i in truth if i not in asked and i != holdout_id
                   and int(i[4:]) % 5)
  good = f"{asked[0]},{truth[asked[0]]}\n"
  cases = {
      "unknown": (f"id,label\n{good}nosuchitem,3\n", "id 'nosuchitem' is not in the pool"),
      "not_asked": (f"id,label\n{not_asked},1\n", "was not asked for in round 1"),
      "two_labels": (f"id,label\n{good}{asked[0]},{(int(truth[asked[0]]) + 1) % 10}\n",
                     f"id {asked[0]!r} has label"),
      "unknown_class": (f"id,label\n{asked[0]},cat\n", "label 'cat' is not a class"),
      "empty": ("", "is empty"),
      "header_only": ("id,label\n", "holds a header but no labels"),
      "bad_header": (f"name,class\n{good}", "give a header with the columns id and label"),
      "truncated": (f"id,label\n{good}{asked[1]}", "the file looks truncated"),
      "empty_label": (f"id,label\n{asked[0]},\n", "has an empty label"),
      "holdout": (f"id,label\n{holdout_id},1\n", "is in the holdout set"),
      "encoding": (b"id,label\n" + asked[0].encode() + b",\xff\xfe\n", "is not UTF-8 text"),
      "ls_not_json": ("[{\"id\": 1, ", "is not valid JSON"),
      "ls_no_id": (json.dumps([{"id": 7, "data": {"image": "x"}, "annotations": []}]),
                   "has no data.jax_al_id"),
      "ls_disagree": (json.dumps([{"id": 7, "data": {"jax_al_id": asked[0]}, "annotations": [
          {"result": [{"type": "choices", "value": {"choices": ["1"]}}]},
          {"result": [{"type": "choices", "value": {"choices": ["2"]}}]}]}]),
                      "annotations that disagree"),
  }
  before = snapshot(d)
  for name, (text, expect) in cases.items():
    suffix = ".json" if name.startswith("ls_") else ".csv"
    path = _labels(tmp_path / f"{name}{suffix}", text)
    msg = refused("add", d, path)
    assert expect in msg and str(path) in msg and "Fix:" in msg, (name, msg)
    assert snapshot(d) == before, name
  msg = refused("add", d, tmp_path / "missing.csv")
  assert "no such file" in msg
  for budget in (20, 5):  # a second `next` before `add`, the same or another
    msg = refused("next", d, "--budget", budget)
    assert "round 1 is open: 20 of its 20 items in" in msg and "are not labeled yet" in msg
  assert snapshot(d) == before
  # --extra takes a label no round asked for; a merged label can't change.
  rnd("add", d, _labels(tmp_path / "extra.csv", f"id,label\n{not_asked},{truth[not_asked]}\n"),
      "--extra")
  before = snapshot(d)
  other = (int(truth[not_asked]) + 1) % 10
  msg = refused("add", d, _labels(tmp_path / "relabel.csv", f"id,label\n{not_asked},{other}\n"),
                "--extra")
  assert "is merged already" in msg and "round undo" in msg
  assert snapshot(d) == before
  # An export holding merged labels again (a later round's full export) is fine.
  again = _labels(tmp_path / "again.csv",
                  f"id,label,who\n{not_asked},{truth[not_asked]},ann2\n")
  assert "all its 1 labels are merged already; nothing changed" in rnd("add", d, again)
  assert snapshot(d) == before


def test_a_refused_next_leaves_the_open_round_open(open_round, tmp_path):
  """--skip-unlabeled closes the round as part of `next`: a budget or a
  strategy that `next` refuses must not have closed it first."""
  d, asked, truth = open_round
  half = "".join(f"{i},{truth[i]}\n" for i in asked[:10])
  rnd("add", d, _labels(tmp_path / "half.csv", "id,label\n" + half))
  before = snapshot(d)
  for args, expect in [(("--budget", 10**6), "only"), (("--budget", 5, "--strategy", "bald"),
                                                       "model.dropout")]:
    msg = refused("next", d, *args, "--skip-unlabeled")
    assert expect in msg, msg
    assert snapshot(d) == before, args
  rest = "".join(f"{i},{truth[i]}\n" for i in asked[10:12])
  assert "still waits for 8 items" in rnd("add", d, _labels(tmp_path / "rest.csv",
                                                            "id,label\n" + rest))


def test_a_hand_damaged_labels_file_is_one_line_naming_its_line(open_round, tmp_path):
  d, asked, truth = open_round
  rnd("add", d, _labels(tmp_path / "two.csv",
                        "id,label\n" + "".join(f"{i},{truth[i]}\n" for i in asked[:2])))
  good = (d / store.LABELS).read_text()
  first = json.loads(good.splitlines()[0])
  bad = {"garbage": good + "garbage\n",
         "unknown_id": good + json.dumps({**first, "id": "nosuchitem"}) + "\n",
         "class": good.replace(f'"label": "{first["label"]}"', '"label": "cat"', 1),
         "type": good.replace('"merge": 1', '"merge": "1"', 1),
         "twice": good + good.splitlines()[0] + "\n"}
  for name, text in bad.items():
    (d / store.LABELS).write_text(text)
    before = snapshot(d)
    for argv in (("next", d, "--budget", 5, "--skip-unlabeled"), ("status", d),
                 ("add", d, tmp_path / "two.csv"), ("undo", d)):
      msg = refused(*argv)
      assert f"{store.LABELS}:" in msg and "changed by hand" in msg, (name, argv, msg)
      assert snapshot(d) == before, (name, argv)


def test_bad_init_is_refused_before_anything_is_written(emb, tmp_path):
  user = tmp_path / "mine"
  user.mkdir()
  (user / "notes.txt").write_text("mine")
  msg = refused("init", user, "--embeddings", emb / "embeddings.npz")
  assert "is not empty (it holds notes.txt)" in msg
  assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]
  for args, expect in [
      (("--embeddings", emb / "embeddings.npz", "--images", emb), "pass exactly one"),
      (("--embeddings", tmp_path / "nope.npz"), "no such file"),
      (("--images", tmp_path / "nope"), "no such folder or archive"),
      (("--embeddings", emb / "embeddings.npz", "--classes", "a,a"), "names 'a' twice"),
      (("--embeddings", emb / "embeddings.npz", "--holdout", emb / "truth.csv",
        "--classes", "a,b"), "label '0' is not a class"),
      (("--embeddings", emb / "embeddings.npz", "--stop-kappa", 1.5), "--stop-kappa"),
      (("--embeddings", emb / "embeddings.npz", "--image-url", "http://h/"),
       "an embeddings pool's tasks show ids"),
      (("--images", emb, "--image-url", "images/"), "give a URL prefix"),
  ]:
    d = tmp_path / "new"
    msg = refused("init", d, *args)
    assert expect in msg, msg
    assert not d.exists() or not any(d.iterdir()), list(d.iterdir())
  msg = refused("next", tmp_path / "nothing", "--budget", 3)
  assert "no such folder" in msg and "round init" in msg


def test_a_second_process_refuses_or_waits_for_the_lock(open_round, tmp_path):
  d, asked, truth = open_round
  path = _labels(tmp_path / "l.csv", f"id,label\n{asked[0]},{truth[asked[0]]}\n")
  before = snapshot(d)
  with store.Lock(d):
    msg = refused("add", d, path)
  assert "another jax-al round command is working in it" in msg and "--wait" in msg
  assert snapshot(d) == before
  held = store.Lock(d)
  threading.Timer(1.0, held.file.close).start()
  assert "merged 1 labels" in rnd("add", d, path, "--wait", 30)


def test_undo_takes_back_the_last_merge_only(open_round, tmp_path):
  d, asked, truth = open_round
  rnd("add", d, _labels(tmp_path / "a.csv", "id,label\n" + "".join(
      f"{i},{truth[i]}\n" for i in asked[:5])))
  after_first = (d / "labels.jsonl").read_bytes()
  second = _labels(tmp_path / "b.csv", "id,label\n" + "".join(
      f"{i},{truth[i]}\n" for i in asked[5:12]))
  rnd("add", d, second)
  assert "is merged already" in rnd("add", d, second)
  out = rnd("undo", d)
  assert "took back merge 2: 7 labels" in out
  assert (d / "labels.jsonl").read_bytes() == after_first
  undone = [json.loads(x) for x in (d / "undone.jsonl").read_text().splitlines()]
  assert [u["id"] for u in undone] == asked[5:12] and {u["merge"] for u in undone} == {2}
  out = rnd("add", d, second)  # merged again: a new merge number
  assert "merge 3" in out
  assert "round 1 is open: 8 of 20 items wait for labels" in rnd("status", d)


# ------------------------------------------------------------ kill tests ----


def _cli(d_args, env_extra=None):
  env = dict(os.environ, SOURCE_DATE_EPOCH="1796000000", **(env_extra or {}))
  return subprocess.run([sys.executable, "-m", "jax_al", "round", *map(str, d_args)],
                        capture_output=True, text=True, cwd=REPO, env=env, timeout=600)


@pytest.mark.slow
def test_a_kill_at_every_phase_then_a_rerun_gives_the_uninterrupted_state(emb, tmp_path,
                                                                          monkeypatch):
  monkeypatch.setenv("SOURCE_DATE_EPOCH", "1796000000")
  cfg = fast_config(tmp_path)
  truth, lab = emb / "truth.csv", tmp_path / "labels"
  lab.mkdir()
  ref = tmp_path / "ref" / "p"
  # The uninterrupted sequence; the folder's state is kept after every step.
  steps = [
      ("init", ["--embeddings", emb / "embeddings.npz", "--config", cfg, "--stop-set", 200],
       ["init:pool"]),
      ("next", ["--budget", 12], ["next:picked", "next:staged", "next:published"]),
      ("add", [lab / "r1.csv"], ["add:checked", "add:written"]),
      ("next", ["--budget", 12], ["next:picked", "next:published"]),
      ("add", [lab / "r2_half.csv"], ["add:written"]),
      ("next", ["--budget", 12, "--skip-unlabeled"], ["next:closed", "next:staged"]),
  ]
  states = []
  for k, (cmd, args, _) in enumerate(steps):
    if cmd == "add" and not args[0].exists():
      n = len(list(ref.glob("round_*")))
      annotate(truth, ref / f"round_{n}" / "to_label.csv", args[0],
               0.5 if "half" in args[0].name else 1.0)
    rnd(cmd, ref, *args)
    snap = tmp_path / "ref" / f"after_{k}"
    shutil.copytree(ref, snap)
    states.append(snap)
  killed = 0
  for k, (cmd, args, phases) in enumerate(steps):
    for ph in phases:
      d = tmp_path / f"kill_{k}_{ph.replace(':', '_')}" / "p"
      if k:
        shutil.copytree(states[k - 1], d)
      r = _cli([cmd, d, *args], {store.KILL_ENV: ph})
      assert r.returncode == -9, (cmd, ph, r.returncode, r.stderr[-2000:])
      killed += 1
      rnd(cmd, d, *args)  # the same command again, in this process (raises if it fails)
      assert state(d) == state(states[k]), (cmd, ph)
      assert not list(d.glob(".round_*.partial")), (cmd, ph)
  assert killed == sum(len(s[2]) for s in steps) == 11


@pytest.mark.slow
def test_a_signal_is_one_line_and_the_same_command_again_finishes(emb, tmp_path, monkeypatch):
  # SIGTERM while `next` stages its round, Ctrl-C while `add` merges: one
  # line each (no traceback), 143 and 130, and the rerun gives the state of
  # the uninterrupted command.
  monkeypatch.setenv("SOURCE_DATE_EPOCH", "1796000000")
  cfg = fast_config(tmp_path)
  ref = tmp_path / "ref" / "p"
  rnd("init", ref, "--embeddings", emb / "embeddings.npz", "--config", cfg,
      "--stop-set", 200)
  labels = tmp_path / "r1.csv"
  for cmd, args, at, sig, code in [("next", ["--budget", 12], "next:staged", "TERM", 143),
                                   ("add", [labels], "add:checked", "INT", 130)]:
    d = tmp_path / cmd / "p"
    shutil.copytree(ref, d)
    rnd(cmd, ref, *args)
    if cmd == "next":
      annotate(emb / "truth.csv", ref / "round_1" / "to_label.csv", labels)
    r = _cli([cmd, d, *args], {store.KILL_ENV: f"{at}@{sig}"})
    assert r.returncode == code, (cmd, r.returncode, r.stderr[-2000:])
    assert r.stderr.splitlines()[-1] == (f"interrupted by SIG{sig}; rerun the same "
                                         "command to finish it"), r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    rnd(cmd, d, *args)
    assert state(d) == state(ref), cmd
    assert not list(d.glob(".round_*.partial")), cmd


# ---------------------------------------------------------------- kappa ----


def test_cohen_kappa_matches_scikit_learn():
  from sklearn.metrics import cohen_kappa_score
  rng = np.random.default_rng(0)
  for _ in range(20):
    a = rng.integers(0, 4, 200)
    b = np.where(rng.random(200) < 0.7, a, rng.integers(0, 4, 200))
    assert stopping.cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
  assert stopping.cohen_kappa([2, 2, 2], [2, 2, 2]) == 1.0
  assert stopping.cohen_kappa([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)


def test_stop_is_suggested_after_the_window_of_stable_rounds():
  ks = [(3, 0.95), (4, 0.991), (5, 0.995)]
  assert not stopping.suggest_stop(ks, 0.99, 3)
  assert stopping.suggest_stop(ks + [(6, 0.999)], 0.99, 3)
  assert not stopping.suggest_stop(ks + [(6, 0.98)], 0.99, 3)
  assert stopping.kappas([(1, None), (2, [0, 1]), (3, [0, 1])]) == [(3, 1.0)]
