"""Shared pieces of the benchmarks: environment, timing, memory, tables, JSON."""

from __future__ import annotations

import datetime
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


class Results:
  """The JSON document of one bench run, rewritten after every update."""

  def __init__(self, path: str | None):
    self.path = Path(path) if path else None
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
    from jax_al import io
    self.path.parent.mkdir(parents=True, exist_ok=True)
    io.write_json(self.path, self.doc)
