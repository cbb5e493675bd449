"""How much time goes to compilation, measured from JAX's own events.

JAX reports three durations per compilation through `jax.monitoring`:
tracing the function to a jaxpr, lowering it to StableHLO, and the XLA
backend compile. `CompileLog` listens to them while it is active:

    with CompileLog() as log:
      ...
    log.seconds, log.count, log.by_function()

A hit in jit's in-memory cache records nothing, so `count == 0` over a
region means that the region reused compiled programs only. The loop records
this per cycle (`compile_s`, `compiles` in metrics.jsonl): on a GPU the
ResNet-18 step alone takes tens of seconds to compile, so a cycle that
recompiles shows at once.

Across processes, `use_persistent_cache` turns on JAX's on-disk compilation
cache (config field `compile_cache_dir`): a second run of the same programs
loads the executables instead of compiling them. A program loaded from disk
still counts in `count` (it was not in memory), and in `cache_hits`.
"""

from __future__ import annotations

import collections
import os
import threading

import jax
from jax import monitoring

TRACE = "/jax/core/compile/jaxpr_trace_duration"
LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"
BACKEND = "/jax/core/compile/backend_compile_duration"
_KIND = {TRACE: "trace", LOWER: "lower", BACKEND: "compile"}
CACHE_HIT = "/jax/compilation_cache/cache_hits"
DEFAULT_CACHE = "~/.cache/jax_al/xla"


def _name(fun_name) -> str:
  """'jit(f)' (lowering, compile) and 'f' (tracing) name the same function."""
  name = str(fun_name)
  return name[4:-1] if name.startswith("jit(") and name.endswith(")") else name


class CompileLog:
  """Collects (kind, function name, seconds) of every compilation while active.

  Thread-safe; several logs may be active at once (each sees every event).
  """

  def __init__(self):
    self.events: list[tuple[str, str, float]] = []
    self.cache_hits = 0  # programs loaded from the persistent cache
    self._lock = threading.Lock()

  def _listen(self, event: str, duration: float, **kwargs) -> None:
    kind = _KIND.get(event)
    if kind is not None:
      with self._lock:
        self.events.append((kind, _name(kwargs.get("fun_name", "?")), float(duration)))

  def _count(self, event: str, **_) -> None:
    if event == CACHE_HIT:
      with self._lock:
        self.cache_hits += 1

  def start(self) -> "CompileLog":
    monitoring.register_event_duration_secs_listener(self._listen)
    monitoring.register_event_listener(self._count)
    return self

  def stop(self) -> None:
    monitoring.unregister_event_duration_listener(self._listen)
    monitoring.unregister_event_listener(self._count)

  def __enter__(self) -> "CompileLog":
    return self.start()

  def __exit__(self, *exc) -> None:
    self.stop()

  @property
  def seconds(self) -> float:
    """Trace + lowering + backend compile time, in seconds."""
    return sum(s for _, _, s in self.events)

  @property
  def count(self) -> int:
    """Number of XLA backend compilations (one per compiled program)."""
    return sum(1 for kind, _, _ in self.events if kind == "compile")

  def by_function(self) -> dict[str, float]:
    """Seconds per function name (all three kinds), largest first."""
    total = collections.defaultdict(float)
    for _, name, s in self.events:
      total[name] += s
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))

  def compiled(self) -> list[str]:
    """Names of the functions the backend compiled, in order."""
    return [name for kind, name, _ in self.events if kind == "compile"]


def requested_cache_dir(setting: str) -> str | None:
  """The folder `compile_cache_dir = setting` asks for (None for "off")."""
  if setting == "off":
    return None
  return os.path.abspath(os.path.expanduser(setting or DEFAULT_CACHE))


def use_persistent_cache(setting: str) -> str | None:
  """Turns on JAX's on-disk compilation cache for this process; returns its folder.

  `setting` is the config field `compile_cache_dir`: a folder, "" for
  ~/.cache/jax_al/xla, or "off". A folder set before (JAX_COMPILATION_CACHE_DIR
  or `jax.config`) is kept: the cache is process-wide and JAX opens it once,
  so the first setting wins. Every program is stored (JAX's default keeps
  only those taking >= 1 s to compile; JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS
  in the environment overrides this). The folder is not capped: a CIFAR
  protocol run adds about 2.5 MB on CPU; delete it to reclaim the space.

  The folder is trusted: JAX runs what it loads from there, so do not point
  it at a folder others can write to.
  """
  current = jax.config.jax_compilation_cache_dir
  if current:
    return current
  path = requested_cache_dir(setting)
  if path is None:
    return None
  os.makedirs(path, exist_ok=True)  # preflight.check_compile_cache checked that it can
  jax.config.update("jax_compilation_cache_dir", path)
  # JAX stores only programs that took >= 1 s to compile by default; the
  # model's eager initialisation is ~40 programs of 0.1-0.5 s each (6.6 s on
  # CPU in all), so store everything. (No size cap: JAX's LRU eviction needs
  # the `filelock` package and, without it, silently disables the cache.)
  if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  return path
