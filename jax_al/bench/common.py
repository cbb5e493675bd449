"""Shared pieces of the benchmarks: environment, timing, memory, tables, JSON,
and the config files they start from.

The benchmarks take config files by path (`--config configs/cifar10.py[:preset]`),
as run.py does; the library never imports a repository's `configs` package. Their
default, the CIFAR-10 protocol's configs/cifar10.py, exists only in a source
checkout (or an editable install of one): an installed package has no configs/
folder, and a bench that needs the default then stops with one line naming
the flag.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import math
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import jax

from jax_al.cli import config_import_root

# The source checkout this package runs from, if it is one: the folder above
# jax_al/ holding pyproject.toml and configs/. None for an installed package.
_CHECKOUT = Path(__file__).resolve().parents[2]
CHECKOUT = _CHECKOUT if ((_CHECKOUT / "pyproject.toml").is_file()
                         and (_CHECKOUT / "configs").is_dir()) else None
# The CIFAR-10 protocol (ResNet-18, 5,000 + 2,500 x 6 labels, 200 epochs per
# cycle), the default base of every benchmark. None outside a checkout.
DEFAULT_CONFIG = CHECKOUT / "configs" / "cifar10.py" if CHECKOUT else None


def config_spec(spec: str | None, flag: str = "--config") -> str:
  """`spec` (path[:preset]), or the default config file; its file must exist.

  Raises SystemExit with one line naming `flag` when the file is missing,
  and when no spec is given outside a source checkout (no default there).
  """
  if spec is None:
    if DEFAULT_CONFIG is None or not DEFAULT_CONFIG.is_file():
      raise SystemExit(
          f"error: flag {flag}: no config file given, and the default configs/cifar10.py "
          "exists only in a source checkout of jax-al (this one is installed). Fix: pass "
          f"{flag} PATH/TO/configs/cifar10.py (or another config file)")
    return str(DEFAULT_CONFIG)
  path = spec.partition(":")[0]
  if not Path(path).is_file():
    raise SystemExit(f"error: flag {flag}: config file {path!r} does not exist. Fix: pass an "
                     f"existing file, e.g. {flag} configs/cifar10.py")
  return spec


@contextlib.contextmanager
def _config_imports(path: str):
  """Lets a config file import the files beside it as their package.

  The config files of the repository import their shared base as
  `from configs import common`: run.py, living above configs/, gets that for
  free. Loading one by path from anywhere else needs the folder above the
  config's own folder on sys.path while it runs; that is added (first, so the
  config's own package wins) when the config's folder is a package (holds
  __init__.py), and removed afterwards.
  """
  added = config_import_root(path)
  if added:
    sys.path.insert(0, added)
  try:
    yield
  finally:
    if added and added in sys.path:
      sys.path.remove(added)


def load_config(spec: str | None, overrides: Sequence[str] = (), flag: str = "--config",
                what: str = "bench"):
  """The ConfigDict of config file `spec` (path[:preset]; None = the default)
  with `--config.a.b=v` `overrides`, parsed as run.py parses them
  (ml_collections.config_flags). Bad input: SystemExit with one line.
  """
  spec = config_spec(spec, flag)
  if not overrides:  # no flags to parse: run get_config as config_flags would
    path, _, preset = spec.partition(":")
    with _config_imports(path):
      module_spec = importlib.util.spec_from_file_location("_bench_config", path)
      module = importlib.util.module_from_spec(module_spec)
      module_spec.loader.exec_module(module)
      return module.get_config(preset) if preset else module.get_config()
  from absl import flags
  from ml_collections import config_flags

  argv = [f"jax_al.bench {what}", f"--config={spec}", *overrides]
  fv = flags.FlagValues()
  with _config_imports(spec.partition(":")[0]):
    # sys_argv: the override flags are defined from this list (default: sys.argv).
    config_flags.DEFINE_config_file("config", None, "config file", flag_values=fv,
                                    lock_config=True, sys_argv=argv)
    try:
      extra = fv(argv)
    except flags.Error as e:
      raise SystemExit(f"error: {what}: {e}") from None
    config = fv.config
  if len(extra) > 1:
    raise SystemExit(f"error: {what}: unexpected arguments {extra[1:]}; give config "
                     "overrides as --config.field=value")
  return config


def environment() -> dict:
  """Device kind, versions and date: the header of every JSON file."""
  import flax
  import jaxlib
  import numpy as np
  import optax
  dev = jax.devices()[0]
  return {
      "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
      "backend": jax.default_backend(),
      "device_kind": dev.device_kind,
      "device_count": jax.device_count(),
      "jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__,
      "optax": optax.__version__, "numpy": np.__version__,
      "python": platform.python_version(), "host": platform.node(),
      "cpu_count": os.cpu_count(), "argv": sys.argv[1:],
  }


def memory() -> dict:
  """Peak device memory (None where the backend does not report it) and peak host RSS.

  Both are process-wide peaks since start-up, so they only grow from one
  measurement to the next.
  """
  try:
    stats = jax.devices()[0].memory_stats()
  except Exception:  # some backends raise instead of returning None
    stats = None
  peak = stats.get("peak_bytes_in_use") if stats else None
  # ru_maxrss is in KiB on Linux, in bytes on macOS.
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  rss = rss if sys.platform == "darwin" else rss * 1024
  return {"peak_device_bytes": int(peak) if peak is not None else None,
          "peak_rss_bytes": int(rss)}


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
  """Runs fn(), waits for its device results, returns (result, seconds)."""
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn())
  return out, time.perf_counter() - t0


def median(xs: Sequence[float]) -> float:
  return float(statistics.median(xs))


def fmt_bytes(n: int | None) -> str:
  if n is None:
    return "n/a"
  return f"{n / 2**20:,.0f} MiB"


def fmt(v: Any, digits: int = 3) -> str:
  if v is None:
    return "n/a"
  if isinstance(v, bool):
    return str(v)
  if isinstance(v, int):
    return f"{v:,}"
  if isinstance(v, float):
    if not math.isfinite(v):
      return str(v)
    if abs(v) >= 1000:
      return f"{v:,.0f}"
    return f"{v:.{digits}g}"
  return str(v)


def table(rows: Iterable[dict], columns: Sequence[tuple[str, str]]) -> str:
  """A plain-text table of `rows` with (key, header) columns, right-aligned."""
  rows = list(rows)
  cells = [[h for _, h in columns]]
  for r in rows:
    cells.append([fmt_bytes(r.get(k)) if k.endswith("_bytes") else fmt(r.get(k))
                  for k, _ in columns])
  widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
  lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
  lines.insert(1, "  ".join("-" * w for w in widths))
  return "\n".join(lines)


def is_bench_json(path: Path) -> bool:
  """Whether `path` is a bench JSON written before jax-al kept a ledger of its
  outputs (`files.check_output`): a JSON object whose "meta" holds the
  environment record (`environment()`)."""
  import json
  doc = json.loads(Path(path).read_text())
  meta = doc.get("meta") if isinstance(doc, dict) else None
  return isinstance(meta, dict) and {"backend", "jax", "date", "device_kind"} <= set(meta)


def check_json(path: str | None, flag: str = "--json") -> None:
  """SystemExit with one line unless the bench may write `path` (absent, or a
  file jax-al wrote: `files.check_output`); writes nothing."""
  if path:
    from jax_al import files
    try:
      files.check_output(path, flag, legacy=is_bench_json)
    except files.OutputError as e:
      raise SystemExit(f"error: {e}") from None


class Results:
  """The JSON document of one bench run, rewritten after every update.

  The path is checked first: a file jax-al did not write is never replaced
  (one-line SystemExit, nothing written).
  """

  def __init__(self, path: str | None):
    import threading
    check_json(path)
    self.path = Path(path) if path else None
    # The protocol's cycle watcher saves from its thread: one writer at a time,
    # so the ledger's digest is always that of the bytes on disk.
    self._lock = threading.Lock()
    self.doc: dict = {"meta": environment()}
    self.save()

  def add(self, section: str, record: Any) -> None:
    self.doc.setdefault(section, []).append(record)
    self.save()

  def set(self, section: str, value: Any) -> None:
    self.doc[section] = value
    self.save()

  def save(self) -> None:
    self.doc["memory"] = memory()
    if self.path is None:
      return
    from jax_al import files
    try:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      with self._lock:
        files.write_output_json(self.path, self.doc)
    except OSError as e:  # read-only, a file in the way, disk full: one line, not a traceback
      raise SystemExit(f"error: --json {self.path}: cannot write it ({e.strerror or e}). Fix: "
                       "pass a path in a writable folder with free space") from None
