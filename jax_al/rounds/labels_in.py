"""What annotators return, read and checked before anything is merged.

`read` takes a CSV with the columns id,label (other columns are ignored)
or a Label Studio JSON export (a .json file); `check` holds the entries
against the round folder. Each refusal is one line naming the file, the row
(or task) and the fix, and leaves the folder as it was.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

from jax_al.errors import DataError, suggest


@dataclasses.dataclass(frozen=True)
class Entry:
  """One label as the file gives it; `where` names its row for messages."""

  id: str
  label: str
  where: str


def _text(path: Path) -> str:
  try:
    raw = path.read_bytes()
  except OSError as e:
    raise DataError(str(path), f"cannot be read ({e.strerror or e})",
                    "pass the labels file the annotators returned") from None
  if not raw.strip():
    raise DataError(str(path), "is empty", "pass a file with a header id,label and one row "
                    "per labeled item")
  try:
    return raw.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b"\n") + 1
    raise DataError(str(path), f"is not UTF-8 text (byte {e.start}, line {line})",
                    "save it as UTF-8 (CSV UTF-8 in a spreadsheet)") from None


def read_csv(path: Path) -> list[Entry]:
  text = _text(path)
  rows = list(csv.reader(io.StringIO(text, newline="")))
  header = [h.strip().lower() for h in rows[0]]
  if "id" not in header or "label" not in header:
    raise DataError(str(path), f"has the header {','.join(rows[0])!r}",
                    "give a header with the columns id and label (id,label)")
  i_id, i_lab = header.index("id"), header.index("label")
  out = []
  for r, row in enumerate(rows[1:], start=2):
    if not row:
      continue
    if len(row) < len(header):
      last = r == len(rows)
      raise DataError(str(path), f"line {r} has {len(row)} field(s), the header "
                      f"{len(header)}" + (" (the file looks truncated)" if last else ""),
                      "give every row an id and a label" + (
                          "; write the file again, completely" if last else ""))
    ident, label = row[i_id].strip(), row[i_lab].strip()
    if not ident:
      raise DataError(str(path), f"line {r} has an empty id", "give every row an id")
    if not label:
      raise DataError(str(path), f"line {r} (id {ident!r}) has an empty label",
                      "label the item, or drop the row (the round stays open for it)")
    out.append(Entry(ident, label, f"line {r}"))
  if not out:
    raise DataError(str(path), "holds a header but no labels",
                    "pass a file with one row per labeled item")
  return out


def read(path) -> list[Entry]:
  """The entries of a labels CSV, or of a Label Studio JSON export (.json)."""
  path = Path(path)
  if not path.is_file():
    raise DataError(str(path), "no such file" if not path.exists() else "is not a file",
                    "pass the labels file (CSV id,label, or a Label Studio JSON export)")
  if path.suffix.lower() == ".json":
    from jax_al.rounds import labelstudio
    got = labelstudio.read_export(path)
    if not got:
      raise DataError(str(path), "holds no finished annotation",
                      "annotate some tasks in Label Studio, then export again as JSON")
    return [Entry(g.id, g.label, g.where) for g in got]
  return read_csv(path)


@dataclasses.dataclass(frozen=True)
class Checked:
  """The entries to merge (new labels only), and the ones already merged."""

  new: tuple[Entry, ...]
  already: int


def check(project, entries: list[Entry], path, extra: bool) -> Checked:
  """Refuses the whole file when one entry cannot be merged; otherwise the
  new labels (an id given twice with one label counts once; a label the
  folder already holds is not merged again)."""
  path = str(path)
  known = project.by_id
  fixed = project.meta["classes_fixed"]
  classes = project.classes
  merged = project.labeled
  open_round = project.open_round
  asked = set(open_round.asked) if open_round else set()
  if open_round is None and not extra:
    raise DataError(path, "no round is open for labels",
                    f"run jax-al round next {project.dir} first, or pass --extra to merge "
                    "labels of items no round asked for")
  seen: dict[str, Entry] = {}
  new = []
  already = 0
  for e in entries:
    if e.id not in known:
      raise DataError(path, f"{e.where}: id {e.id!r} is not in the pool",
                      "use the ids of to_label.csv; " + _near(e.id, known))
    if e.id in project.holdout:
      raise DataError(path, f"{e.where}: id {e.id!r} is in the holdout set",
                      "drop the row: holdout items are never merged into the training labels")
    if fixed and e.label not in classes:
      raise DataError(path, f"{e.where}: label {e.label!r} is not a class",
                      suggest(e.label, classes))
    if e.id in seen:
      if seen[e.id].label != e.label:
        raise DataError(path, f"{e.where}: id {e.id!r} has label {e.label!r}, and "
                        f"{seen[e.id].label!r} at {seen[e.id].where}",
                        "give each id one label (settle the annotators' disagreement first)")
      continue
    seen[e.id] = e
    if e.id in merged:
      if merged[e.id] != e.label:
        raise DataError(path, f"{e.where}: id {e.id!r} has label {e.label!r}, but "
                        f"{merged[e.id]!r} is merged already",
                        "drop the row, or take the earlier merge back with jax-al round undo")
      already += 1
      continue
    if e.id not in asked and not extra:
      where = f"round {open_round.number}" if open_round else "any open round"
      raise DataError(path, f"{e.where}: id {e.id!r} was not asked for in {where}",
                      "drop the row, or pass --extra to merge labels of other items too")
    new.append(e)
  return Checked(tuple(new), already)


def _near(ident: str, known) -> str:
  import difflib
  close = difflib.get_close_matches(ident, list(known)[:20_000], n=1)
  return f"did you mean {close[0]!r}?" if close else "check the id column"
