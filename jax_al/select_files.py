"""`jax-al select`: the next rows to label, from a file of your model's outputs.

    jax-al select --pool POOL --strategy NAME --budget B --out picks.csv
        [--labeled labeled.csv] [--seed S] [--stream auto|on|off] [--stream-rows N]
        [--config.al.<field>=value ...]

POOL is one of
  .npz      arrays `features` [N, d], `logits` or `probs` [N, C], and
            optionally `ids` [N] (strings or numbers; row numbers if absent),
            `sample_logits` [S, N, C], `predicted_loss` [N];
  .npy      features [N, d] only (memory-mapped), for strategies that read
            nothing else (coreset, typiclust, random);
  .parquet  an `id` column and an embedding column (`embedding`, or the one
            list column), optionally list columns `logits` or `probs` and a
            `predicted_loss` column (needs pyarrow).
labeled.csv has the columns id,label: those pool rows are labeled (never
picked; for the MMD terms and coreset they are the labeled set).

Writes picks.csv (id,rank,score, best first) and picks.json beside it
(strategy, settings, seed, sha256 of the inputs, timing, the streamed block
size: `jax_al.stream`). Bad input stops
with one line naming the file, the array or row, and the fix; nothing is
written then, and no file jax-al did not write is replaced.
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import io
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

POOL_ARRAYS = ("features", "logits", "probs", "ids", "sample_logits", "predicted_loss")
PROG = "jax-al select"
STREAM = {"auto": None, "on": True, "off": False}  # --stream: jax_al.select's stream=
_WRITTEN = False  # set once this process wrote the picks (for the Ctrl-C line)
# The writes of the picks and a Ctrl-C's "nothing written" exclude each other:
# whoever takes the gate first decides (`entry` runs the selection in a thread).
_GATE = threading.Lock()
_CANCELLED = False


class InputError(SystemExit):
  """Bad input: one line, exit code 1, raised before anything is written."""

  def __init__(self, line: str):
    super().__init__(f"error: {line}")


class _Parser(argparse.ArgumentParser):
  """argparse with its errors in one line (no usage block first)."""

  def error(self, message):
    self.exit(2, f"error: {message}. Fix: see {self.prog} --help\n")


def parser() -> argparse.ArgumentParser:
  p = _Parser(
      prog=PROG, description="Picks the next rows to label from a pool file. POOL: .npz "
      "(features, logits or probs, optional ids, sample_logits, predicted_loss), .npy "
      "(features) or .parquet (id + embedding columns). Writes OUT (id,rank,score) and a "
      ".json beside it. Settings: --config.al.<field>=value (the config.al fields, "
      "e.g. --config.al.lam=0.5). README: 'Your own model'.")
  p.add_argument("--pool", required=True, help="the pool file (.npz, .npy or .parquet)")
  p.add_argument("--strategy", required=True, help="a strategy or preset: margin, entropy, "
                 "badge, coreset, users, ...")
  p.add_argument("--budget", required=True, type=int, help="how many rows to pick")
  p.add_argument("--out", required=True, help="picks.csv to write (picks.json goes beside it)")
  p.add_argument("--labeled", help="CSV with columns id,label: the rows labeled already")
  p.add_argument("--seed", type=int, default=0, help="the strategy's random draws (default 0)")
  p.add_argument("--stream", choices=STREAM, default="auto",
                 help="keep the pool on the host and send it to the device in blocks: "
                 "auto (default: when it does not fit the device), on, off")
  p.add_argument("--stream-rows", type=int, default=None, metavar="N",
                 help="pool rows per block when streaming (default: about 256 MB)")
  return p


# ------------------------------------------------------------ arguments -----


def _setting_value(field: str, raw: str):
  """The Python value of `--config.al.<field>=raw`, by the field's type in the
  defaults (a str field keeps the text; others read as a Python literal)."""
  from jax_al import schema

  node = schema.defaults("al")
  try:
    for part in field.split("."):
      parent, node = node, node[part]
    kind = parent.get_type(field.split(".")[-1])
  except (KeyError, AttributeError, TypeError):
    kind = None  # an unknown field: jax_al.select names it and the fix
  if kind is str:
    return raw
  if kind is bool and raw.lower() in ("true", "false", "1", "0"):
    return raw.lower() in ("true", "1")
  if kind is float:
    try:  # float() also reads nan and inf, which the field's check then names
      return float(raw)
    except ValueError:
      raise InputError(f"flag --config.al.{field}={raw}: is not a number. Fix: e.g. "
                       f"--config.al.{field}={node} (the default)") from None
  try:
    return ast.literal_eval(raw)
  except (ValueError, SyntaxError):
    return raw


def parse_args(argv):
  """(argparse namespace, {field: value}) of the command line."""
  from jax_al import usage

  args, unknown = parser().parse_known_args(argv)
  settings, raws, i = {}, {}, 0
  while i < len(unknown):
    a = unknown[i]
    if not a.startswith("-"):
      raise SystemExit(usage.stray_word_line(unknown[i:], PROG))
    if not a.startswith("--config.al."):
      flag = a.split("=")[0]
      section = flag[len("--config."):].split(".")[0] if a.startswith("--config.") else ""
      if section and section != "al":  # train.*, data.*, model.*: the loop's, not ours
        raise InputError(f"unknown flag {flag}: {section}.* configures the simulated loop's "
                         f"{section}, and {PROG} only selects (your model is trained and "
                         f"scored outside it). Fix: drop it; the settings are "
                         f"--config.al.<field> (see {PROG} --help)")
      raise InputError(f"unknown flag {flag}. Fix: see {PROG} --help")
    name, eq, raw = a[len("--config.al."):].partition("=")
    if not eq:
      if i + 1 >= len(unknown) or unknown[i + 1].startswith("--"):
        raise InputError(f"flag --config.al.{name} has no value. Fix: --config.al.{name}=VALUE")
      raw, i = unknown[i + 1], i + 1
    settings[name] = _setting_value(name, raw)
    raws[name] = raw
    i += 1
  return args, settings, raws


# ------------------------------------------------------------- the pool -----


def _npz(path: Path) -> dict:
  try:
    z = np.load(path, allow_pickle=False)
  except Exception as e:  # pylint: disable=broad-except  # zip, header, or not a file
    raise InputError(f"{path}: cannot be read as a .npz ({type(e).__name__}: {e}). Fix: write "
                     "it with np.savez(path, features=..., logits=...)") from None
  if not isinstance(z, np.lib.npyio.NpzFile):
    raise InputError(f"{path}: holds one array, not a .npz archive. Fix: name it .npy, or "
                     "write np.savez(path, features=..., logits=...)")
  out = {}
  with z:
    for name in z.files:
      if name not in POOL_ARRAYS:
        from jax_al.errors import suggest
        raise InputError(f"{path}: array {name!r} is not a pool array. Fix: rename or drop "
                         f"it; {suggest(name, POOL_ARRAYS)}")
      try:
        out[name] = z[name]
      except ValueError as e:  # an object array (Python strings) needs pickle
        raise InputError(f"{path}: array {name!r} cannot be loaded without pickle ({e}). Fix: "
                         "store it as a NumPy string or number array, e.g. "
                         f"np.asarray({name}, dtype=str)") from None
      except Exception as e:  # pylint: disable=broad-except  # a truncated member
        raise InputError(f"{path}: array {name!r} cannot be read ({type(e).__name__}: {e}). "
                         "Fix: write the file again") from None
  if "features" not in out:
    raise InputError(f"{path}: has no array 'features' (it holds: "
                     f"{', '.join(out) or 'nothing'}). Fix: np.savez(path, features=[N, d] "
                     "embeddings, logits=[N, C], ...)")
  return out


def _npy(path: Path) -> dict:
  try:
    x = np.load(path, mmap_mode="r", allow_pickle=False)  # a large pool stays on disk
  except Exception as e:  # pylint: disable=broad-except
    raise InputError(f"{path}: cannot be read as a .npy ({type(e).__name__}: {e}). Fix: "
                     "write the features with np.save(path, features)") from None
  return {"features": x}


def _list_column(path: Path, table, name: str) -> np.ndarray:
  """A list<number> column as an [N, k] float32 array; every row the same length."""
  import pyarrow as pa
  import pyarrow.compute as pc

  col = table.column(name).combine_chunks()
  if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)
          or pa.types.is_fixed_size_list(col.type)):
    raise InputError(f"{path}: column {name!r} has type {col.type}, not a list of numbers. "
                     "Fix: store one vector per row (a list column)")
  if col.null_count:
    r = int(np.flatnonzero(np.asarray(col.is_null()))[0])
    raise InputError(f"{path}: column {name!r}, row {r} is null. Fix: give every row a vector")
  lengths = np.asarray(pc.list_value_length(col))
  if len(lengths) and (lengths != lengths[0]).any():
    r = int(np.flatnonzero(lengths != lengths[0])[0])
    raise InputError(f"{path}: column {name!r}, row {r} has {lengths[r]} values but row 0 has "
                     f"{lengths[0]} (a dimension mismatch). Fix: give every row a vector of "
                     "the same length")
  values = col.flatten()
  if values.null_count:
    r = int(np.searchsorted(np.cumsum(lengths), np.flatnonzero(np.asarray(values.is_null()))[0],
                            side="right"))
    raise InputError(f"{path}: column {name!r}, row {r} holds a null value. Fix: give every "
                     "row a full vector")
  try:
    flat = np.asarray(values.to_numpy(zero_copy_only=False), np.float32)
  except (TypeError, ValueError, pa.ArrowInvalid) as e:
    raise InputError(f"{path}: column {name!r} does not hold numbers ({e}). Fix: store "
                     "float vectors") from None
  return flat.reshape(len(col), int(lengths[0]) if len(lengths) else 0)


def _parquet(path: Path) -> dict:
  try:
    import pyarrow.parquet as pq
  except ImportError:
    raise InputError(f"{path}: reading Parquet needs pyarrow, which is not installed. Fix: "
                     "pip install pyarrow (or save the pool as .npz)") from None
  try:
    schema_names = pq.read_schema(path).names
    twice = sorted({n for n in schema_names if schema_names.count(n) > 1})
    if twice:  # pyarrow's own message dumps the whole schema
      raise InputError(f"{path}: has {schema_names.count(twice[0])} columns named "
                       f"{twice[0]!r}. Fix: give each column its own name")
    table = pq.read_table(path)
  except InputError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise InputError(f"{path}: cannot be read as Parquet ({type(e).__name__}: {e}). Fix: "
                     "write it with pyarrow.parquet.write_table or DataFrame.to_parquet") from None
  names = table.column_names
  if table.num_rows == 0:
    raise InputError(f"{path}: has 0 rows. Fix: write the pool's items, one row each")
  if "id" not in names:
    raise InputError(f"{path}: has no 'id' column (columns: {', '.join(names)}). Fix: add a "
                     "column 'id' with one key per row")
  import pyarrow as pa
  others = ("id", "logits", "probs", "predicted_loss")
  lists = [n for n in names if n not in others and (
      pa.types.is_list(table.schema.field(n).type) or pa.types.is_large_list(
          table.schema.field(n).type) or pa.types.is_fixed_size_list(table.schema.field(n).type))]
  if "embedding" in names:
    emb = "embedding"
  elif len(lists) == 1:
    emb = lists[0]
  else:
    raise InputError(f"{path}: cannot tell the embedding column ({len(lists)} list columns: "
                     f"{', '.join(lists) or 'none'}). Fix: name it 'embedding'")
  ids = table.column("id").combine_chunks()
  if ids.null_count:
    r = int(np.flatnonzero(np.asarray(ids.is_null()))[0])
    raise InputError(f"{path}: column 'id', row {r} is null. Fix: give every row an id")
  out = {"features": _list_column(path, table, emb),
         "ids": np.asarray([str(v) for v in ids.to_pylist()])}
  for n in ("logits", "probs"):
    if n in names:
      out[n] = _list_column(path, table, n)
  if "predicted_loss" in names:
    col = table.column("predicted_loss").combine_chunks()
    out["predicted_loss"] = np.asarray(col.to_numpy(zero_copy_only=False), np.float64)
  return out


def load_pool(path) -> dict:
  """The pool file's arrays by name (see the module doc)."""
  path = Path(path)
  if path.is_dir():
    raise InputError(f"--pool {path}: is a folder. Fix: pass the pool file in it (.npz, .npy "
                     "or .parquet)")
  if not path.is_file():
    raise InputError(f"--pool {path}: no such file. Fix: pass the pool file (.npz, .npy or "
                     ".parquet)")
  kind = path.suffix.lower()
  if kind == ".npz":
    return _npz(path)
  if kind == ".npy":
    return _npy(path)
  if kind in (".parquet", ".pq"):
    return _parquet(path)
  raise InputError(f"--pool {path}: unknown file type {kind or '(none)'!r}. Fix: pass a .npz, "
                   ".npy or .parquet file")


def pool_ids(path, arrays: dict) -> list[str]:
  """The pool rows' ids as strings (row numbers when the file has none);
  refuses a wrong count and duplicates."""
  x = arrays["features"]
  n = int(x.shape[0]) if getattr(x, "ndim", 0) >= 1 else 0
  if "ids" not in arrays:
    return [str(i) for i in range(n)]
  ids = np.asarray(arrays["ids"])
  if ids.ndim != 1:
    raise InputError(f"{path}: array 'ids' has shape {ids.shape}. Fix: give one id per row, "
                     "shape [N]")
  if ids.dtype.kind not in "USiu":
    raise InputError(f"{path}: array 'ids' has dtype {ids.dtype}. Fix: give strings or whole "
                     "numbers")
  if len(ids) != n:
    raise InputError(f"{path}: array 'ids' has {len(ids)} rows but 'features' has {n}. Fix: "
                     "give one id per pool row")
  out = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in ids.tolist()]
  first: dict[str, int] = {}
  for r, v in enumerate(out):
    if v in first:
      raise InputError(f"{path}: ids row {r} repeats id {v!r} of row {first[v]}. Fix: give "
                       "every pool row a distinct id")
    if not v.strip():
      raise InputError(f"{path}: ids row {r} is empty. Fix: give every pool row an id")
    first[v] = r
  return out


def labeled_mask(path, ids: list[str], pool_path) -> np.ndarray:
  """A boolean mask over the pool of the rows `path` (CSV id,label) lists."""
  path = Path(path)
  try:
    text = path.read_text(encoding="utf-8-sig")
  except (OSError, UnicodeDecodeError) as e:
    raise InputError(f"--labeled {path}: cannot be read ({type(e).__name__}: {e}). Fix: pass a "
                     "CSV file with the columns id,label") from None
  reader = csv.reader(io.StringIO(text))
  header = next(reader, None)
  cols = [c.strip() for c in header] if header else []
  if "id" not in cols:
    raise InputError(f"--labeled {path}: the first line {','.join(cols) or '(empty)'!r} has no "
                     "column 'id'. Fix: start the file with the header id,label")
  col = cols.index("id")
  where = {v: r for r, v in enumerate(ids)}
  mask = np.zeros(len(ids), bool)
  seen: dict[str, int] = {}
  for row in reader:
    line = reader.line_num  # the file's line (a quoted id may hold a newline)
    if not row or not any(c.strip() for c in row):
      continue
    if len(row) != len(cols):
      raise InputError(f"--labeled {path}: line {line} has {len(row)} fields but the header "
                       f"has {len(cols)}. Fix: one value per column ({','.join(cols)})")
    v = row[col] if row[col] in where else row[col].strip()  # "a, 3" -> "a"
    if v in seen:
      raise InputError(f"--labeled {path}: line {line} repeats id {v!r} of line {seen[v]}. "
                       "Fix: list each labeled id once")
    seen[v] = line
    if v not in where:
      raise InputError(f"--labeled {path}: line {line}: id {v!r} is not in the pool "
                       f"{pool_path}. Fix: list only ids of the pool's rows (row numbers "
                       "0..N-1 when the pool has no ids)")
    mask[where[v]] = True
  return mask


# --------------------------------------------------------------- output -----


def _sha256(path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 22), b""):
      h.update(block)
  return h.hexdigest()


def out_paths(out) -> tuple[Path, Path]:
  out = Path(out)
  if out.suffix.lower() != ".csv":
    raise InputError(f"--out {out}: the picks are a CSV file. Fix: pass a path ending in .csv, "
                     "e.g. --out picks.csv")
  return out, out.with_suffix(".json")


def check_writable(out: Path) -> None:
  """Refuses an --out whose folder cannot be made or written, before any work."""
  import os

  folder = out.parent
  while not folder.exists() and folder != folder.parent:
    folder = folder.parent
  if not folder.is_dir():
    raise InputError(f"--out {out}: {folder} is a file, not a folder. Fix: pass a path in a "
                     "folder")
  if not os.access(folder, os.W_OK | os.X_OK):
    raise InputError(f"--out {out}: the folder {folder} is not writable. Fix: pass a path in "
                     "a folder you can write")


def picks_csv(ids: list[str], picks) -> str:
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(["id", "rank", "score"])
  for rank, (i, s) in enumerate(zip(picks.indices.tolist(), picks.scores.tolist()), start=1):
    w.writerow([ids[i], rank, "nan" if s != s else f"{s:.9g}"])
  return buf.getvalue()


# ------------------------------------------------------------------ run -----


def run(argv) -> dict:
  """The command on `argv` (the words after `select`); returns picks.json's
  document. Bad input raises SystemExit with one line before anything is
  written."""
  global _WRITTEN
  import jax_al
  from jax_al import files
  from jax_al.errors import ConfigError, DataError

  t0 = time.perf_counter()
  args, settings, raws = parse_args(argv)
  for name in ("budget", "seed", "strategy"):
    if name in settings:
      raise InputError(f"flag --config.al.{name}: the {name} of a selection is a flag of its "
                       f"own. Fix: pass --{name} {raws[name]}")
  out_csv, out_json = out_paths(args.out)
  try:
    for p in (out_csv, out_json):  # both, before either is written
      files.check_output(p, "--out")
  except files.OutputError as e:
    raise InputError(str(e)) from None
  check_writable(out_csv)
  pool_path = Path(args.pool)
  arrays = load_pool(pool_path)
  ids = pool_ids(pool_path, arrays)
  mask = None
  if args.labeled:
    mask = labeled_mask(args.labeled, ids, pool_path)
  t_load = time.perf_counter()
  arrays_given = {k: v for k, v in arrays.items() if k != "ids"}
  from jax_al import selection
  try:
    # A file is checked whole: NaN or inf in any of its arrays is refused, also
    # in one this strategy does not read (jax_al.select scans only what it reads).
    for name, a in arrays_given.items():
      if isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.ndim >= 1:
        selection.check_finite(name, a)
    import warnings
    with warnings.catch_warnings(record=True) as said:
      warnings.simplefilter("always", selection.SlowSettingsWarning)
      picks = jax_al.select(args.strategy, labeled=mask, budget=args.budget, seed=args.seed,
                            stream=STREAM[args.stream], stream_rows=args.stream_rows,
                            **arrays_given, **settings)
    for w in said:  # one line each, not Python's file:line form
      print(f"warning: {w.message}", file=sys.stderr)
  except DataError as e:
    if e.problem and e.problem.startswith("is missing"):
      kind = pool_path.suffix.lower()
      what = {"logits": "'logits' [N, C] (or 'probs' [N, C])",
              "sample_logits": "'sample_logits' [S, N, C] (S MC-dropout passes or ensemble "
                               "members)",
              "predicted_loss": "'predicted_loss' [N]"}.get(e.what, repr(e.what))
      fix = (f"save a .npz with 'features' and {what}" if kind == ".npy" else
             f"add a column {what} to the Parquet file" if kind in (".parquet", ".pq") else
             f"add an array {what} to the .npz")
      raise InputError(f"{pool_path}: has no {e.what!r}, which strategy {args.strategy!r} "
                       f"reads. Fix: {fix}") from None
    if e.what == "labeled":
      if not args.labeled:
        why = (e.fix or "").split(": ", 1)[-1]
        raise InputError(f"strategy {args.strategy!r} reads the labeled set ({why}) "
                         "and no --labeled was given. Fix: pass --labeled labeled.csv (columns "
                         "id,label) listing the pool rows labeled so far") from None
      raise InputError(f"--labeled {args.labeled}: {e.problem}. Fix: {e.fix}") from None
    raise InputError(f"{pool_path}: {e}".replace("pass logits= instead", "store 'logits' "
                     "instead")) from None
  except ConfigError as e:
    field = str(e.field)
    if "streamed from the host" in (e.fix or ""):
      fix = e.fix.replace("stream=False", "--stream off")
      raise InputError(f"--stream {args.stream}: {fix}") from None
    if field in ("stream", "stream_rows"):
      raise InputError(f"--stream-rows {args.stream_rows}: "
                       f"{e.fix.replace('stream=False', '--stream off')}") from None
    if field in raws:
      raise InputError(f"flag --config.al.{field}={raws[field]}: {e.fix}") from None
    if field == "k" and e.value is None and not {"logits", "probs"} & set(arrays):
      raise InputError(f"{pool_path}: has no 'logits' or 'probs', from which strategy "
                       f"{args.strategy!r} takes its k-means cluster count (the number of "
                       "classes). Fix: add an array 'logits' [N, C] to the pool file, or pass "
                       "--config.al.k=K") from None
    if field == "budget":
      problem, _, fix = (e.fix or "").rpartition("; ")
      raise InputError(f"--budget {args.budget}: {problem or 'not a number of picks'}. Fix: "
                       f"{fix.replace('the budget', '--budget')}") from None
    if field == "seed":
      raise InputError(f"--seed {args.seed}: {e.fix}") from None
    if field == "strategy":
      from jax_al import presets
      what = ("cannot select here" if args.strategy in presets.names()
              else "not a strategy or preset")
      raise InputError(f"--strategy {args.strategy}: {what}; {e.fix}") from None
    raise InputError(str(e)) from None
  t_select = time.perf_counter()
  inputs = {"pool": {"path": str(pool_path), "sha256": _sha256(pool_path),
                     "rows": len(ids), "arrays": {k: list(np.shape(v)) for k, v in
                                                  arrays.items()}}}
  if args.labeled:
    inputs["labeled"] = {"path": str(args.labeled), "sha256": _sha256(args.labeled),
                         "rows": int(mask.sum())}
  doc = {"strategy": picks.strategy, "requested": args.strategy, "budget": args.budget,
         "seed": args.seed, "settings": picks.settings, "given": settings,
         "stats": picks.stats, "inputs": inputs, "picks": out_csv.name,
         "stream_rows": picks.stream_rows,
         "timing": {"load_s": t_load - t0, "select_s": t_select - t_load,
                    "total_s": time.perf_counter() - t0},
         "jax_al": jax_al.__version__}
  from jax_al.errors import critical
  written = []
  try:
    with _GATE, critical():  # a Ctrl-C waits until both files are written
      if _CANCELLED:  # a Ctrl-C came first and said nothing was written
        return doc
      files.write_output(out_csv, picks_csv(ids, picks))
      written.append(str(out_csv))
      files.write_output_json(out_json, doc)
      written.append(str(out_json))
      _WRITTEN = True
  except (OSError, files.OutputError, files.WriteError) as e:  # disk full, read-only, vanished
    what = f"{type(e).__name__}: {e.strerror}" if isinstance(e, OSError) and e.strerror else e
    raise InputError(f"--out {out_csv}: cannot be written ({what}); "
                     f"{'only ' + written[0] + ' was' if written else 'nothing was'} written. "
                     "Fix: pass a writable path with free space") from None
  doc["written"] = written
  return doc


def entry(argv) -> None:
  """`jax-al select ARGS`: exit 0 after writing the picks, 1 on bad input.

  The command runs in a worker thread while the main thread waits for it
  (`errors.answering_signals`),
  so that Ctrl-C or SIGTERM answer at once (JAX holds the thread that runs
  a compiled selection until the program ends, which can be minutes on a
  large pool). A signal before the picks are written exits 128 + the
  signal number with nothing written; one while they are being written
  waits for both files.
  """
  global _CANCELLED
  from jax_al.errors import Interrupted, answering_signals, handle_signals

  with handle_signals():
    try:
      doc = answering_signals(lambda: run(argv))
    except Interrupted as e:
      with _GATE:  # the worker is not writing now, and will not start
        _CANCELLED = True
        done = "after writing the picks" if _WRITTEN else "before writing anything"
      print(f"interrupted by {e.signal_name} {done}", file=sys.stderr, flush=True)
      if e.unfinished:  # still computing: nothing of it is wanted, stop at once
        # Die of the signal itself (the shell's 128 + N): exiting Python while
        # XLA runs in the worker thread aborts in its teardown instead.
        import signal
        sys.stdout.flush()
        signal.signal(e.signum, signal.SIG_DFL)
        os.kill(os.getpid(), e.signum)
      raise SystemExit(e.exit_code) from None
  print(f"{doc['budget']} picks by {doc['strategy']}: {doc['written'][0]} "
        f"(and {doc['written'][1]}) in {doc['timing']['total_s']:.1f} s")
