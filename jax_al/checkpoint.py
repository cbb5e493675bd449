"""Per-cycle checkpoints with orbax, one manager per trial.

A checkpoint holds the model (params + batch statistics) and optimizer state
after a cycle's training, and a JSON `meta` with the labeled indices for the
next cycle, the counters and the metrics and selections so far. Random state
needs no storing: every key is derived from (seed, trial, cycle) by name.

orbax writes each step into a temporary folder and renames it when complete,
so an interrupted write never replaces the last good checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from flax import nnx
import jax
import orbax.checkpoint as ocp


def _root(workdir: Path, trial: int) -> Path:
  return (Path(workdir) / "checkpoints" / f"trial{trial}").resolve()


def _manager(workdir: Path, trial: int) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      _root(workdir, trial), item_names=("state", "meta"),
      options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))


def _pure(tree):
  return jax.tree.map(lambda x: x, tree.to_pure_dict() if isinstance(tree, nnx.State) else tree)


def save(workdir: Path, trial: int, cycle: int, state, meta: dict) -> None:
  """Saves `state` (a TrainState) and `meta` as step `cycle`; waits until written."""
  mngr = _manager(workdir, trial)
  tree = {"params": _pure(state.params), "batch_stats": _pure(state.batch_stats),
          "opt_state": state.opt_state}
  mngr.save(cycle, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                           meta=ocp.args.JsonSave(meta)))
  mngr.wait_until_finished()
  mngr.close()


def latest(workdir: Path, trial: int) -> int | None:
  """The last completed cycle checkpointed for `trial`, or None."""
  if not _root(workdir, trial).exists():
    return None
  mngr = _manager(workdir, trial)
  step = mngr.latest_step()
  mngr.close()
  return step


def restore(workdir: Path, trial: int, cycle: int, like_state):
  """Returns (state, meta) of step `cycle`; `like_state` gives the structure."""
  mngr = _manager(workdir, trial)
  like = {"params": _pure(like_state.params), "batch_stats": _pure(like_state.batch_stats),
          "opt_state": like_state.opt_state}
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
  out = mngr.restore(cycle, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                    meta=ocp.args.JsonRestore()))
  mngr.close()
  tree = out.state
  params, bs = like_state.params, like_state.batch_stats
  if isinstance(params, nnx.State):
    params = nnx.State(params)
    nnx.replace_by_pure_dict(params, tree["params"])
    bs = nnx.State(bs)
    nnx.replace_by_pure_dict(bs, tree["batch_stats"])
  else:
    params, bs = tree["params"], tree["batch_stats"]
  return type(like_state)(params, bs, tree["opt_state"]), out.meta
