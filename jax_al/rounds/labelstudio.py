"""Label Studio files: a round's import tasks, and the JSON export read back.

Import: one task per item to label, `{"data": {"image":
"/data/local-files/?d=<path relative to the image folder>", "jax_al_id": id,
"rank": r, "score": s}}` (an embeddings pool's task has `"text": id`
instead of an image).
Export (JSON): a list of tasks, each with `data.jax_al_id` and
`annotations[]`, whose `result[]` items hold `value.choices` (one class);
cancelled (skipped) annotations and tasks without an annotation are left
out, so the round stays open for them.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from pathlib import Path

from jax_al.errors import DataError


@dataclasses.dataclass(frozen=True)
class Label:
  id: str
  label: str
  where: str


def tasks(items, *, image_root_url: str | None = "/data/local-files/?d=") -> list[dict]:
  out = []
  for it in items:
    data = {"jax_al_id": it["id"], "rank": it["rank"], "score": it["score"]}
    if it.get("path") is not None and image_root_url is not None:
      data["image"] = image_root_url + urllib.parse.quote(it["path"])
    else:
      data["text"] = it["id"]
    out.append({"data": data})
  return out


def read_export(path) -> list[Label]:
  path = Path(path)
  fix = "export the project again from Label Studio as JSON"
  try:
    tasks_ = json.loads(path.read_bytes().decode("utf-8"))
  except UnicodeDecodeError as e:
    raise DataError(str(path), f"is not UTF-8 text (byte {e.start})", fix) from None
  except ValueError as e:
    raise DataError(str(path), f"is not complete JSON ({e})", fix) from None
  if not isinstance(tasks_, list):
    raise DataError(str(path), "is not a list of tasks", fix)
  out = []
  for pos, t in enumerate(tasks_):
    where = f"task {t.get('id', '?') if isinstance(t, dict) else '?'} (position {pos})"
    if not isinstance(t, dict) or not isinstance(t.get("data"), dict) \
        or "jax_al_id" not in t["data"]:
      raise DataError(str(path), f"{where} has no data.jax_al_id",
                      "import the round's tasks.json, whose tasks carry it")
    chosen = set()
    for a in t.get("annotations") or []:
      if a.get("was_cancelled"):
        continue
      for r in a.get("result") or []:
        choices = (r.get("value") or {}).get("choices")
        if choices is None:
          continue
        if len(choices) != 1:
          raise DataError(str(path), f"{where} has the choices {choices}",
                          "choose one class per task (a single-choice labeling config)")
        chosen.add(str(choices[0]))
    if len(chosen) > 1:
      raise DataError(str(path), f"{where} has annotations that disagree: {sorted(chosen)}",
                      "settle the disagreement in Label Studio, then export again")
    if chosen:
      out.append(Label(str(t["data"]["jax_al_id"]), chosen.pop(), where))
  return out
