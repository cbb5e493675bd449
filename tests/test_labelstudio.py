"""Label Studio tasks and exports (jax_al/rounds/labelstudio.py).

The unit tests need no server. The round trip starts a real label-studio
1.23.2 (tests/labelstudio_server.py) from its own venv: JAX_AL_LS_VENV, else
.ls-venv made by tests/labelstudio_env.sh; it skips only when neither is
there, saying why.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from jax_al.errors import DataError
from jax_al.rounds import labelstudio as ls
from jax_al.rounds.labelstudio import Label

# ------------------------------------------------------------------- tasks


def test_an_image_task_points_at_local_files_quoted_and_carries_the_id():
  items = [{"id": "a", "path": "train/cat/x 1é.png", "rank": 0, "score": 0.25},
           {"id": "b", "path": "train/dog/y.png", "rank": 1, "score": 0.125}]
  assert ls.tasks(items, image_root_url=None) == [
      {"data": {"image": "/data/local-files/?d=train/cat/x%201%C3%A9.png",
                "jax_al_id": "a", "rank": 0, "score": 0.25}},
      {"data": {"image": "/data/local-files/?d=train/dog/y.png",
                "jax_al_id": "b", "rank": 1, "score": 0.125}}]


def test_an_embeddings_task_shows_the_id_as_text():
  (task,) = ls.tasks([{"id": "row-7", "path": None, "rank": 3, "score": 1.5}],
                     image_root_url=None)
  assert task == {"data": {"text": "row-7", "jax_al_id": "row-7", "rank": 3, "score": 1.5}}


@pytest.mark.parametrize("root, url", [
    ("/data/local-files/?d=pets", "/data/local-files/?d=pets/cat/a%20b.png"),
    ("/data/local-files/?d=", "/data/local-files/?d=cat/a%20b.png"),
    ("https://host/imgs/", "https://host/imgs/cat/a%20b.png"),
    ("https://host/imgs", "https://host/imgs/cat/a%20b.png"),
])
def test_image_root_url_prefixes_the_quoted_path(root, url):
  (task,) = ls.tasks([{"id": "a", "path": "cat/a b.png", "rank": 0, "score": 0.0}],
                     image_root_url=root)
  assert task["data"]["image"] == url


def test_local_files_url_names_a_folder_under_the_document_root():
  assert ls.local_files_url("my pets/train") == "/data/local-files/?d=my%20pets/train"


@pytest.mark.parametrize("score", [float("nan"), float("inf"), None])
def test_a_missing_or_nan_score_becomes_null_because_json_has_no_nan(score):
  (task,) = ls.tasks([{"id": "a", "path": None, "rank": 0, "score": score}],
                     image_root_url=None)
  assert task["data"]["score"] is None
  json.dumps(task, allow_nan=False)


def test_an_image_directly_in_the_image_folder_needs_an_image_root_url():
  with pytest.raises(DataError) as e:
    ls.tasks([{"id": "a", "path": "x.png", "rank": 0, "score": 0.0}], image_root_url=None)
  assert "image 'x.png': lies directly in the image folder" in str(e.value)
  assert "pass image_root_url" in str(e.value)
  (task,) = ls.tasks([{"id": "a", "path": "x.png", "rank": 0, "score": 0.0}],
                     image_root_url=ls.local_files_url("pool"))
  assert task["data"]["image"] == "/data/local-files/?d=pool/x.png"


@pytest.mark.parametrize("path", ["/abs/x.png", "../x.png", "a/../../x.png", "a\\b.png", ""])
def test_a_path_outside_the_image_folder_is_refused(path):
  with pytest.raises(ValueError, match="not a relative path inside the image folder"):
    ls.tasks([{"id": "a", "path": path, "rank": 0, "score": 0.0}], image_root_url=None)


def test_the_labeling_config_has_one_required_choice_per_class():
  xml = ls.labeling_config(["0", "a&b", 'say "hi"'])
  view = ET.fromstring(xml)
  (image,) = view.iter("Image")
  (choices,) = view.iter("Choices")
  assert image.attrib == {"name": "image", "value": "$image"}
  assert choices.get("name") == "label" and choices.get("toName") == "image"
  assert choices.get("choice") == "single" and choices.get("required") == "true"
  assert [c.get("value") for c in choices.iter("Choice")] == ["0", "a&b", 'say "hi"']


def test_the_text_labeling_config_targets_the_text_data():
  view = ET.fromstring(ls.labeling_config(["x", "y"], images=False))
  (text,) = view.iter("Text")
  assert text.attrib == {"name": "text", "value": "$text"}
  assert next(view.iter("Choices")).get("toName") == "text"


@pytest.mark.parametrize("classes", [[], ["a", "a"], ["a", ""]])
def test_the_labeling_config_refuses_empty_or_repeated_classes(classes):
  with pytest.raises(ValueError, match="distinct non-empty"):
    ls.labeling_config(classes)

# ------------------------------------------------------------ read_export


def _ann(*choices, id=1, cancelled=False, result=None):
  if result is None:
    result = [] if cancelled else [{"from_name": "label", "to_name": "image",
                                    "type": "choices", "value": {"choices": list(choices)}}]
  return {"id": id, "result": result, "was_cancelled": cancelled, "completed_by": 1}


def _task(id, item, *anns):
  data = {"image": f"/data/local-files/?d=train/{item}.png", "jax_al_id": item,
          "rank": 0, "score": 0.5}
  if item is None:
    del data["jax_al_id"]
  return {"id": id, "data": data, "annotations": list(anns)}


def _write(tmp_path, obj, name="export.json") -> Path:
  p = tmp_path / name
  p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
  return p


def _error(path) -> str:
  with pytest.raises(DataError) as e:
    ls.read_export(path)
  msg = str(e.value)
  assert "\n" not in msg and msg.startswith(str(path) + ": ") and ". Fix: " in msg
  return msg


def test_each_annotated_task_gives_its_label_in_task_order(tmp_path):
  p = _write(tmp_path, [_task(12, "b", _ann("3")), _task(13, "a", _ann("5", id=2))])
  assert ls.read_export(p) == [Label("b", "3", "task 12"), Label("a", "5", "task 13")]


def test_cancelled_annotations_and_unannotated_tasks_give_no_label(tmp_path):
  p = _write(tmp_path, [_task(1, "skipped", _ann(cancelled=True)),
                        _task(2, "untouched"),
                        _task(3, "redone", _ann(cancelled=True, id=3), _ann("7", id=4)),
                        _task(4, "cancelled-vote", _ann("1", id=5), _ann("2", id=6,
                                                                          cancelled=True))])
  assert ls.read_export(p) == [Label("redone", "7", "task 3"),
                               Label("cancelled-vote", "1", "task 4")]


def test_the_old_skipped_flag_counts_as_cancelled(tmp_path):
  ann = _ann("4")
  ann.pop("was_cancelled")
  ann["skipped"] = True
  assert ls.read_export(_write(tmp_path, [_task(1, "a", ann)])) == []


def test_agreeing_annotations_give_one_label(tmp_path):
  p = _write(tmp_path, [_task(1, "a", _ann("4", id=1), _ann("4", id=2))])
  assert ls.read_export(p) == [Label("a", "4", "task 1")]


def test_disagreeing_annotations_are_one_line_naming_the_task_and_the_votes(tmp_path):
  p = _write(tmp_path, [_task(1, "a", _ann("4")), _task(9, "b", _ann("3", id=5),
                                                        _ann("8", id=6))])
  msg = _error(p)
  assert "task 9 (entry 2 of the list) has annotations that disagree" in msg
  assert "'3' (annotation 5), '8' (annotation 6)" in msg
  assert "settle the label in Label Studio" in msg


def test_one_annotation_with_several_choices_is_an_error(tmp_path):
  msg = _error(_write(tmp_path, [_task(5, "a", _ann("1", "2", id=7))]))
  assert "task 5 (entry 1 of the list), annotation 7 picks 2 choices ['1', '2']" in msg
  assert "exactly one label per item" in msg


def test_two_choices_results_in_one_annotation_are_an_error(tmp_path):
  r = {"type": "choices", "value": {"choices": ["1"]}}
  msg = _error(_write(tmp_path, [_task(5, "a", _ann(result=[r, dict(r)]))]))
  assert "annotation 1 picks 2 choices" in msg


def test_an_annotation_submitted_without_a_choice_is_an_error(tmp_path):
  msg = _error(_write(tmp_path, [_task(5, "a", _ann(result=[]))]))
  assert "task 5 (entry 1 of the list), annotation 1 was submitted without a choice" in msg


def test_results_that_are_not_choices_are_ignored(tmp_path):
  text = {"type": "textarea", "value": {"text": ["blurry"]}}
  choice = {"type": "choices", "value": {"choices": ["6"]}}
  p = _write(tmp_path, [_task(5, "a", _ann(result=[text, choice]))])
  assert ls.read_export(p) == [Label("a", "6", "task 5")]


def test_a_task_without_a_jax_al_id_is_an_error(tmp_path):
  msg = _error(_write(tmp_path, [_task(1, "a", _ann("1")), _task(31, None, _ann("2"))]))
  assert "task 31 (entry 2 of the list) has no data.jax_al_id" in msg
  assert "import the tasks from a jax-al round's tasks.json" in msg


def test_a_non_string_jax_al_id_is_an_error(tmp_path):
  t = _task(1, "a", _ann("1"))
  t["data"]["jax_al_id"] = 17
  assert "task 1 (entry 1 of the list) has data.jax_al_id = 17" in _error(_write(tmp_path, [t]))


def test_the_same_item_in_two_tasks_must_agree(tmp_path):
  p = _write(tmp_path, [_task(1, "a", _ann("1")), _task(2, "a", _ann("1", id=2))])
  assert ls.read_export(p) == [Label("a", "1", "task 1")]
  msg = _error(_write(tmp_path, [_task(1, "a", _ann("1")), _task(2, "a", _ann("2", id=2))]))
  assert "item 'a' is labeled '1' in task 1 and '2' in task 2 (entry 2 of the list)" in msg


def test_an_empty_list_gives_no_labels(tmp_path):
  assert ls.read_export(_write(tmp_path, [])) == []


@pytest.mark.parametrize("content, piece", [
    ("", "is empty"),
    ("id,label\na,1\n", "is not valid JSON: Expecting value (line 1, column 1)"),
    ('[{"id": 1, "data": {"jax_al_id": "a"}, "annot', "is not valid JSON (cut short?)"),
    ('[{"id": 1, "data": {"jax_al_id": "a"}}', "is not valid JSON (cut short?)"),
    ('{"id": 1, "data": {}}', "holds a JSON dict, not the list of tasks"),
    ('[1, 2]', "entry 1 of the list is a int, not a task"),
    ('[{"id": 4, "data": {"jax_al_id": "a"}, "annotations": {}}]',
     "task 4 (entry 1 of the list): `annotations` is dict, not a list"),
])
def test_a_file_that_is_not_a_json_export_is_one_line(tmp_path, content, piece):
  msg = _error(_write(tmp_path, content))
  assert piece in msg and "export the project again in Label Studio (Export > JSON)" in msg


def test_bad_encoding_is_one_line(tmp_path):
  p = tmp_path / "export.json"
  raw = b'[{"data": {"jax_al_id": "caf\xe9"}}]'
  p.write_bytes(raw)
  assert f"is not UTF-8 text (byte 0xe9 at offset {raw.index(0xe9)})" in _error(p)


def test_a_missing_file_is_one_line(tmp_path):
  assert "cannot be read" in _error(tmp_path / "nope.json")


def _min_row(task, item, ann_id, label="3", **extra):
  row = {"image": f"/data/local-files/?d=train/{item}.png", "jax_al_id": item, "rank": 0,
         "score": 0.5, "id": task, "label": label, "annotator": 1, "annotation_id": ann_id,
         "created_at": "2026-12-04T00:45:34Z", "updated_at": "2026-12-04T00:45:34Z",
         "lead_time": None}
  row.update(extra)
  return row


def test_a_json_min_export_reads_the_same_labels(tmp_path):
  p = _write(tmp_path, [_min_row(1, "a", 1, "0"), _min_row(4, "b", 4, "1"),
                        _min_row(4, "b", 3, "1")])
  assert ls.read_export(p) == [Label("a", "0", "task 1"), Label("b", "1", "task 4")]


def test_a_json_min_export_with_disagreeing_rows_is_an_error(tmp_path):
  msg = _error(_write(tmp_path, [_min_row(4, "b", 4, "1"), _min_row(4, "b", 3, "0")]))
  assert "task 4 (entry 1 of the list) has annotations that disagree" in msg
  assert "'1' (annotation 4), '0' (annotation 3)" in msg


@pytest.mark.parametrize("extra, piece", [
    ({"label": {"choices": ["1", "2"]}}, "has label = {'choices': ['1', '2']}, not one choice"),
    ({"comment": "blurry"}, "has several result fields ['comment', 'label'] (JSON-MIN export)"),
])
def test_a_json_min_row_with_more_than_one_choice_is_an_error(tmp_path, extra, piece):
  msg = _error(_write(tmp_path, [_min_row(2, "a", 5, **extra)]))
  assert f"task 2 (entry 1 of the list), annotation 5 {piece}" in msg


def test_a_json_min_row_without_a_jax_al_id_is_an_error(tmp_path):
  row = _min_row(2, "a", 5)
  del row["jax_al_id"]
  assert "task 2 (entry 1 of the list) has no data.jax_al_id" in _error(_write(tmp_path, [row]))

# ------------------------------------------------ a real Label Studio server

import labelstudio_server as server  # noqa: E402 (tests/ is on sys.path)


def test_a_named_venv_without_label_studio_is_an_error(tmp_path, monkeypatch):
  monkeypatch.setenv(server.ENV_VAR, str(tmp_path))
  with pytest.raises(server.ServerError, match=f"{server.ENV_VAR}={tmp_path}: no executable "
                     f"{tmp_path}/bin/label-studio"):
    server.find_install()


def test_a_failed_install_skips_with_the_log_and_its_error(tmp_path, monkeypatch):
  monkeypatch.delenv(server.ENV_VAR, raising=False)
  venv, log = tmp_path / ".ls-venv", tmp_path / ".ls-venv.log"
  monkeypatch.setattr(server, "DEFAULT_VENV", venv)
  monkeypatch.setattr(server, "INSTALL_LOG", log)
  assert "no Label Studio venv: run bash tests/labelstudio_env.sh" in server.find_install()
  (venv / "bin").mkdir(parents=True)
  for exe in ("label-studio", "python"):
    (venv / "bin" / exe).write_text("#!/bin/sh\n")
    (venv / "bin" / exe).chmod(0o755)
  (venv / ".jax-al-installing").touch()  # cut short: not used though its files are there
  log.write_text("ERROR: No matching distribution found for label-studio==1.23.2\n"
                 "FAILED after 3 s: installing label-studio==1.23.2 into .ls-venv\n")
  assert server.find_install() == (
      f"Label Studio could not be installed, see {log}: "
      "ERROR: No matching distribution found for label-studio==1.23.2")
  (venv / ".jax-al-installing").unlink()
  assert server.find_install() == server.Install(venv)


@pytest.fixture(scope="session")
def ls_template(tmp_path_factory):
  """A migrated Label Studio data folder with the test user (its first start
  migrates the database, about 20 s; a copy starts in a few seconds)."""
  install = server.find_install()
  if isinstance(install, str):
    pytest.skip(install)
  root = tmp_path_factory.mktemp("labelstudio")
  (root / "images").mkdir()
  server.Server.start(install, root / "data", root / "images").stop()
  (root / "data" / "server.log").unlink()
  return install, root / "data"


@pytest.fixture
def ls_server(ls_template, tmp_path):
  """A label-studio server of its own whose local-files document root is
  tmp_path/images, stopped after the test."""
  import shutil

  install, template = ls_template
  shutil.copytree(template, tmp_path / "ls-data")
  (tmp_path / "images").mkdir()
  srv = server.Server.start(install, tmp_path / "ls-data", tmp_path / "images")
  try:
    yield srv
  finally:
    srv.stop()


def _digit_pool(root: Path, n: int = 36) -> tuple[list[dict], dict[str, str]]:
  """`n` digits as PNG files `train/<digit>/digit NNN é.png` (a split/class/image
  folder, names needing URL quoting); the round items and their true labels."""
  import numpy as np
  from PIL import Image
  from sklearn.datasets import load_digits

  digits = load_digits()
  items, truth = [], {}
  for i in range(n):
    rel = f"train/{digits.target[i]}/digit {i:03d} é.png"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    pixels = (digits.images[i] * 255 / 16).astype(np.uint8)
    Image.fromarray(pixels).resize((64, 64), Image.NEAREST).save(root / rel)
    items.append({"id": f"digit-{i:03d}", "path": rel, "rank": i, "score": 1.0 - i / n})
    truth[f"digit-{i:03d}"] = str(digits.target[i])
  return items, truth


@pytest.mark.slow
def test_a_real_server_serves_the_tasks_and_its_export_reads_back(ls_server, tmp_path):
  images = ls_server.document_root
  items, truth = _digit_pool(images)
  (images / "other").mkdir()
  (images / "other" / "x.png").write_bytes((images / items[0]["path"]).read_bytes())
  tasks_file = tmp_path / "tasks.json"
  tasks_file.write_text(json.dumps(ls.tasks(items, image_root_url=None)))

  made = ls_server.annotator("create_project", title="digits round 1",
                             label_config=ls.labeling_config([str(d) for d in range(10)]),
                             storages=[str(images / "train"), str(images)])
  project = made["project"]
  assert len(made["storages"]) == 1  # the storage path must be below the document root
  assert "cannot be the same as LOCAL_FILES_DOCUMENT_ROOT" in made["refused"][str(images)]
  assert ls_server.annotator("import_tasks", project=project,
                             tasks_file=str(tasks_file))["task_count"] == len(items)

  stored = ls_server.annotator("list_tasks", project=project)["tasks"]
  assert [t["data"] for t in stored] == [t["data"] for t in ls.tasks(items, image_root_url=None)]
  ids = {t["data"]["jax_al_id"]: t["id"] for t in stored}
  first = stored[0]["data"]["image"]
  assert ls_server.get(first) == (200, (images / items[0]["path"]).read_bytes())
  assert ls_server.get(first, token=False)[0] == 401
  assert ls_server.get("/data/local-files/?d=other/x.png")[0] == 404  # no storage holds it

  # Every task labeled with its true digit but one, which is skipped; one task
  # gets a second, agreeing annotation.
  skipped, twice = "digit-005", "digit-007"
  labels = {i: [y] * (2 if i == twice else 1) for i, y in truth.items() if i != skipped}
  done = ls_server.annotator("annotate", project=project, labels=labels, cancel=[skipped],
                             from_name=ls.CHOICES_NAME, to_name=ls.IMAGE_NAME)
  assert done == {"annotations": len(items), "cancelled": 1}
  want = [Label(i, truth[i], f"task {ids[i]}") for i in truth if i != skipped]
  for kind in ("JSON", "JSON_MIN"):
    out = tmp_path / f"export_{kind}.json"
    ls_server.annotator("export", project=project, export_type=kind, out=str(out))
    assert ls.read_export(out) == want, kind

  # A third annotation that disagrees makes the export an error naming that task.
  ls_server.annotator("annotate", project=project, labels={twice: ["0"]}, cancel=[],
                      from_name=ls.CHOICES_NAME, to_name=ls.IMAGE_NAME)
  out = tmp_path / "export_disagree.json"
  ls_server.annotator("export", project=project, export_type="JSON", out=str(out))
  with pytest.raises(DataError, match=f"task {ids[twice]} .* has annotations that disagree"):
    ls.read_export(out)


def _jax_al(*args, cwd: Path) -> str:
  import subprocess
  import sys

  p = subprocess.run([sys.executable, "-m", "jax_al", *args], cwd=cwd, capture_output=True,
                     text=True, timeout=600)
  assert p.returncode == 0, f"jax-al {' '.join(args)} exited {p.returncode}:\n{p.stderr}"
  return p.stdout


@pytest.mark.slow
def test_a_round_goes_through_a_real_server(ls_server, tmp_path):
  """round init/next on an image folder, its tasks.json into Label Studio,
  every task labeled but one (skipped), the JSON export into round add."""
  images = ls_server.document_root  # what round next's local-files URLs are relative to
  items, truth = _digit_pool(images, n=60)
  true_label = {it["path"]: truth[it["id"]] for it in items}  # the pool's ids are paths
  _jax_al("round", "init", "R", "--images", str(images), "--stop-set", "20",
          "--classes", ",".join(str(d) for d in range(10)), cwd=tmp_path)
  _jax_al("round", "next", "R", "--budget", "12", cwd=tmp_path)
  tasks_file = tmp_path / "R" / "round_1" / "tasks.json"
  made = ls_server.annotator("create_project", title="jax-al round 1",
                             label_config=(tmp_path / "R" / "round_1" /
                                           "labeling_config.xml").read_text(),
                             storages=[str(images / "train")])
  project = made["project"]
  assert made["refused"] == {}
  assert ls_server.annotator("import_tasks", project=project,
                             tasks_file=str(tasks_file))["task_count"] == 12
  stored = ls_server.annotator("list_tasks", project=project)["tasks"]
  asked = [t["data"]["jax_al_id"] for t in stored]
  assert set(asked) <= set(true_label)
  assert ls_server.get(stored[0]["data"]["image"]) == (200, (images / asked[0]).read_bytes())

  skipped = asked[3]
  labels = {i: [true_label[i]] for i in asked if i != skipped}
  ls_server.annotator("annotate", project=project, labels=labels, cancel=[skipped],
                      from_name=ls.CHOICES_NAME, to_name=ls.IMAGE_NAME)
  export = tmp_path / "export.json"
  ls_server.annotator("export", project=project, export_type="JSON", out=str(export))
  _jax_al("round", "add", "R", str(export), cwd=tmp_path)
  merged = [json.loads(l) for l in (tmp_path / "R" / "labels.jsonl").read_text().splitlines()]
  assert {r["id"]: r["label"] for r in merged} == {i: l[0] for i, l in labels.items()}
  assert len(merged) == 11 and {r["round"] for r in merged} == {1}
