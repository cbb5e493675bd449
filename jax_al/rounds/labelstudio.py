"""Label Studio import tasks and export reading for human labeling rounds.

Pure functions on JSON-ready values; Label Studio itself is not imported.

Serving a pool's images from disk (checked against label-studio 1.23.2):

- Start the server with `LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true` and
  `LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<the pool's image folder>` (the
  unprefixed names LOCAL_FILES_SERVING_ENABLED / LOCAL_FILES_DOCUMENT_ROOT
  work too). Without the first, `/data/local-files/` answers 403.
- `/data/local-files/?d=P` serves `<document root>/P`: `d` is relative to the
  document root, URL-quoted (spaces, non-ASCII names work).
- A file is served only if the project has a Local Files import storage
  whose path holds it (any depth below); otherwise 404. The storage path must
  be a strict subfolder of the document root (the server refuses the root
  itself), so for a `split/class/image` pool add one storage with path
  `<image folder>/train` (one per top folder the images lie in). Syncing the
  storage is not needed: the tasks come from the import file.
- The request needs the user's session or `Authorization: Token <token>`
  (401 without), which the labeling UI has.

Images elsewhere (a web server, or a document root above the image folder)
take `image_root_url`: each image is `image_root_url` + "/" + the quoted path.

Export reading accepts the JSON export (a list of tasks with `annotations`)
and the JSON-MIN export (one flat record per annotation).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from jax_al.errors import DataError

LOCAL_FILES = "/data/local-files/?d="
# The names `labeling_config` gives its tags: a task's data key is the object's name.
CHOICES_NAME = "label"
IMAGE_NAME, TEXT_NAME = "image", "text"
# JSON-MIN keys that are not data nor results (label_studio_sdk's converter adds them).
_MIN_META = frozenset({"id", "annotator", "annotation_id", "created_at", "updated_at",
                       "lead_time", "agreement"})
_TASK_DATA = frozenset({IMAGE_NAME, TEXT_NAME, "jax_al_id", "rank", "score"})
_FIX_EXPORT = "export the project again in Label Studio (Export > JSON) and pass that file"


@dataclass(frozen=True)
class Label:
  """One item's label from an export; `where` names its task for messages."""
  id: str
  label: str
  where: str


def local_files_url(relpath: str) -> str:
  """The URL Label Studio serves `<document root>/<relpath>` under."""
  return LOCAL_FILES + quote(relpath, safe="/")


def image_url(path: str, image_root_url: str | None) -> str:
  """The URL of an image at `path` (relative to the pool's image folder)."""
  p = PurePosixPath(path)
  if p.is_absolute() or ".." in p.parts or "\\" in path or not p.parts:
    raise ValueError(f"image path {path!r} is not a relative path inside the image folder")
  if image_root_url is None:
    if len(p.parts) < 2:
      # A storage path must be a strict subfolder of the document root.
      raise DataError(f"image {path!r}", "lies directly in the image folder, which Label "
                      "Studio does not serve as a local-files storage",
                      "move the images into a subfolder, or serve them elsewhere and "
                      "pass image_root_url")
    return local_files_url(path)
  sep = "" if image_root_url.endswith(("/", "=")) else "/"
  return image_root_url + sep + quote(path, safe="/")


def tasks(items: Iterable[Mapping[str, Any]], *, image_root_url: str | None) -> list[dict]:
  """Label Studio import tasks, one per item, in the items' order.

  An item is {"id": str, "path": str | None, "rank": int, "score": float | None};
  `path` is relative to the pool's image folder, None for an embeddings pool
  (whose task shows the id as text). `image_root_url` None means Label
  Studio's local files with the image folder as document root (see above).
  A score that is None or not finite is null (JSON has no NaN).
  """
  out = []
  for item in items:
    data: dict[str, Any] = {}
    if item["path"] is None:
      data[TEXT_NAME] = str(item["id"])
    else:
      data[IMAGE_NAME] = image_url(item["path"], image_root_url)
    score = None if item["score"] is None else float(item["score"])
    data.update(jax_al_id=str(item["id"]), rank=int(item["rank"]),
                score=score if score is not None and math.isfinite(score) else None)
    out.append({"data": data})
  return out


def labeling_config(classes: Iterable[str], *, images: bool = True) -> str:
  """The XML of a one-choice classification project over `tasks` data.

  `images` False shows the item id as text (an embeddings pool). A choice is
  required, so the UI cannot submit an annotation without one.
  """
  classes = [str(c) for c in classes]
  if not classes or len(set(classes)) != len(classes) or "" in classes:
    raise ValueError(f"classes must be distinct non-empty names, got {classes!r}")
  obj = (f'<Image name="{IMAGE_NAME}" value="${IMAGE_NAME}"/>' if images
         else f'<Text name="{TEXT_NAME}" value="${TEXT_NAME}"/>')
  target = IMAGE_NAME if images else TEXT_NAME
  choices = "".join(f"\n    <Choice value={quoteattr(c)}/>" for c in classes)
  return (f"<View>\n  {obj}\n"
          f'  <Choices name="{CHOICES_NAME}" toName="{target}" choice="single" '
          f'required="true">{choices}\n  </Choices>\n</View>\n')


def _load(path: Path) -> list:
  """The export's top-level list; one-line DataError for anything else."""
  where = str(path)
  try:
    raw = Path(path).read_bytes()
  except OSError as e:
    raise DataError(where, f"cannot be read ({e.strerror or e})",
                    "pass the path of a Label Studio JSON export") from None
  try:
    text = raw.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    raise DataError(where, f"is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
                    f"{e.start})", _FIX_EXPORT) from None
  if not text.strip():
    raise DataError(where, "is empty", _FIX_EXPORT)
  try:
    tasks_ = json.loads(text)
  except json.JSONDecodeError as e:
    ends = e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated string")
    cut = " (cut short?)" if ends else ""
    raise DataError(where, f"is not valid JSON{cut}: {e.msg} (line {e.lineno}, column "
                    f"{e.colno})", _FIX_EXPORT) from None
  if not isinstance(tasks_, list):
    raise DataError(where, f"holds a JSON {type(tasks_).__name__}, not the list of tasks of "
                    "a Label Studio export", _FIX_EXPORT)
  return tasks_


def _task_name(task: dict, pos: int) -> str:
  return f"task {task.get('id', '?')} (entry {pos} of the list)"


def _jax_al_id(where: str, name: str, data: Any) -> str:
  value = data.get("jax_al_id") if isinstance(data, dict) else None
  if not isinstance(value, str) or not value:
    got = "has no data.jax_al_id" if value is None else f"has data.jax_al_id = {value!r}"
    raise DataError(where, f"{name} {got}", "import the tasks from a jax-al round's "
                    "tasks.json (tasks made elsewhere carry no jax-al id), or delete "
                    "that task in Label Studio and export again")
  return value


def _choice(where: str, name: str, result: Any) -> str | None:
  """The one choice of one annotation's `result`, None if it has none."""
  if not isinstance(result, list):
    raise DataError(where, f"{name}: `result` is {type(result).__name__}, not a list",
                    _FIX_EXPORT)
  found = [r for r in result if isinstance(r, dict) and r.get("type") == "choices"]
  if not found:
    return None
  picked = [c for r in found for c in ((r.get("value") or {}).get("choices") or [])]
  if len(found) > 1 or len(picked) != 1:
    raise DataError(where, f"{name} picks {len(picked)} choices {picked!r}; a round takes "
                    "exactly one label per item", "keep one choice in that annotation in "
                    "Label Studio (a project made with jax-al's labeling config allows only "
                    "one), then export again")
  if not isinstance(picked[0], str) or not picked[0]:
    raise DataError(where, f"{name} has choice {picked[0]!r}", _FIX_EXPORT)
  return picked[0]


def _agreed(where: str, name: str, votes: list[tuple[str, str]]) -> str | None:
  """The label every (label, annotation) vote agrees on; None without votes."""
  labels = sorted({label for label, _ in votes})
  if len(labels) > 1:
    said = ", ".join(f"{label!r} ({who})" for label, who in votes)
    raise DataError(where, f"{name} has annotations that disagree: {said}",
                    "settle the label in Label Studio (delete or fix the wrong annotation, "
                    "or cancel it), then export again")
  return labels[0] if labels else None


def _from_json(where: str, tasks_: list) -> list[tuple[str, str, str, list]]:
  """(jax_al_id, task name, short where, votes) per task of a JSON export."""
  out = []
  for pos, task in enumerate(tasks_, 1):
    if not isinstance(task, dict):
      raise DataError(where, f"entry {pos} of the list is a {type(task).__name__}, not a "
                      "task", _FIX_EXPORT)
    name = _task_name(task, pos)
    item = _jax_al_id(where, name, task.get("data"))
    anns = task.get("annotations", [])
    if not isinstance(anns, list):
      raise DataError(where, f"{name}: `annotations` is {type(anns).__name__}, not a list",
                      _FIX_EXPORT)
    votes = []
    for k, ann in enumerate(anns, 1):
      if not isinstance(ann, dict):
        raise DataError(where, f"{name}: annotation {k} is not an object", _FIX_EXPORT)
      if ann.get("was_cancelled") or ann.get("skipped"):
        continue  # skipped in the UI: no label, the item stays open
      aname = f"{name}, annotation {ann.get('id', k)}"
      label = _choice(where, aname, ann.get("result", []))
      if label is None:
        raise DataError(where, f"{aname} was submitted without a choice", "choose a label "
                        "for it in Label Studio (or skip the task), then export again")
      votes.append((label, f"annotation {ann.get('id', k)}"))
    out.append((item, name, f"task {task.get('id', '?')}", votes))
  return out


def _from_json_min(where: str, rows: list) -> list[tuple[str, str, str, list]]:
  """The same from a JSON-MIN export: one row per non-cancelled annotation."""
  by_task: dict[Any, tuple[str, str, str, list]] = {}
  for pos, row in enumerate(rows, 1):
    if not isinstance(row, dict):
      raise DataError(where, f"entry {pos} of the list is a {type(row).__name__}, not an "
                      "annotation record", _FIX_EXPORT)
    name = f"task {row.get('id', '?')} (entry {pos} of the list)"
    item = _jax_al_id(where, name, row)
    keys = sorted(set(row) - _MIN_META - _TASK_DATA)
    aname = f"{name}, annotation {row.get('annotation_id', '?')}"
    if len(keys) != 1:
      what = "has no choice" if not keys else f"has several result fields {keys}"
      raise DataError(where, f"{aname} {what} (JSON-MIN export)", "export as JSON "
                      "(Export > JSON) from a project made with jax-al's labeling config")
    value = row[keys[0]]
    if not isinstance(value, str) or not value:
      raise DataError(where, f"{aname} has {keys[0]} = {value!r}, not one choice",
                      "keep one choice in that annotation in Label Studio, then export again")
    key = row.get("id", ("entry", pos))
    entry = by_task.setdefault(key, (item, name, f"task {row.get('id', '?')}", []))
    if entry[0] != item:
      raise DataError(where, f"{name} has jax_al_id {item!r} and {entry[0]!r}", _FIX_EXPORT)
    entry[3].append((value, f"annotation {row.get('annotation_id', '?')}"))
  return list(by_task.values())


def read_export(path: str | Path) -> list[Label]:
  """The labels in a Label Studio JSON (or JSON-MIN) export, in task order.

  Cancelled (skipped) annotations and tasks without any other annotation
  give no label: their items stay open in the round. Annotations of one task
  that disagree, an annotation with several choices or none, a task without
  `data.jax_al_id`, and a file that is not a JSON list of tasks raise a
  one-line DataError naming the file, the task and the fix. Two tasks of the
  same item must agree; the item's label is given once.
  """
  where = str(path)
  entries = _load(Path(path))
  is_min = bool(entries) and isinstance(entries[0], dict) and "annotation_id" in entries[0] \
      and "annotations" not in entries[0] and "data" not in entries[0]
  per_task = (_from_json_min if is_min else _from_json)(where, entries)
  labels: dict[str, Label] = {}
  for item, name, short, votes in per_task:
    label = _agreed(where, name, votes)
    if label is None:
      continue
    seen = labels.get(item)
    if seen is not None and seen.label != label:
      raise DataError(where, f"item {item!r} is labeled {seen.label!r} in {seen.where} and "
                      f"{label!r} in {name}", "keep one of the two tasks (or make them agree) "
                      "in Label Studio, then export again")
    labels.setdefault(item, Label(item, label, short))
  return list(labels.values())
