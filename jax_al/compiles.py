"""How much time goes to compilation, measured from JAX's own events.

JAX reports three durations per compilation through `jax.monitoring`:
tracing the function to a jaxpr, lowering it to StableHLO, and the XLA
backend compile. `CompileLog` listens to them while it is active:

    with CompileLog() as log:
      ...
    log.seconds, log.count, log.by_function()

A cache hit records nothing, so `count == 0` over a region means that the
region reused compiled programs only. The loop records this per cycle
(`compile_s`, `compiles` in metrics.jsonl): on a GPU the ResNet-18 step alone
takes tens of seconds to compile, so a cycle that recompiles shows at once.
"""

from __future__ import annotations

import collections
import threading

from jax import monitoring

TRACE = "/jax/core/compile/jaxpr_trace_duration"
LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"
BACKEND = "/jax/core/compile/backend_compile_duration"
_KIND = {TRACE: "trace", LOWER: "lower", BACKEND: "compile"}


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
    self._lock = threading.Lock()

  def _listen(self, event: str, duration: float, **kwargs) -> None:
    kind = _KIND.get(event)
    if kind is not None:
      with self._lock:
        self.events.append((kind, _name(kwargs.get("fun_name", "?")), float(duration)))

  def start(self) -> "CompileLog":
    monitoring.register_event_duration_secs_listener(self._listen)
    return self

  def stop(self) -> None:
    monitoring.unregister_event_duration_listener(self._listen)

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
