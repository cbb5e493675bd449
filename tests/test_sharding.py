"""Scale-out (`jax_al.sharding`) on 4 simulated CPU devices.

The pytest process already started JAX with one CPU device, so the 4-device
checks run once, in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=4 (this file run as a
script); it prints one JSON line of results per section, which the tests
below read. Sections:

  train   Trainer epochs on 1 device vs a 4-device mesh: same loss,
          parameters and predictions within float tolerance.
  select  strategies on an unsharded vs a pool-sharded Pool: same indices.
  errors  ConfigErrors (preflight.check_devices) for a batch size, mesh.data or
          vmapped trials that cannot work on the mesh.
  loop    a two-cycle digits run of `jax_al.loop.run` with mesh.data=4
          (needs the `sharding` lines in jax_al/loop.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NUM_DEVICES = 4
STRATEGIES = ("entropy", "coreset", "badge", "uncertainty_mmd")


# --------------------------------------------------------------------------
# Worker: runs in the subprocess with 4 simulated devices.
# --------------------------------------------------------------------------

def _digits_uint8(n):
  from sklearn.datasets import load_digits
  import numpy as np
  d = load_digits()
  x = (d.images[:n] * 255 / 16).astype(np.uint8)[..., None]
  return x, d.target[:n].astype(np.int32)


def _section_train():
  import jax
  import numpy as np
  from configs import common
  from jax_al import sharding, train

  n, n_lab = 400, 150  # batch 32: 5 steps per epoch, the last one partial (masked)
  c = common.base()
  c.model.name, c.model.width = "cnn", 0.5  # has BatchNorm: global-batch statistics
  c.train.batch_size, c.train.steps_per_call = 32, 0
  c.augment.flip, c.augment.crop_pad = True, 1  # random draws must not depend on the sharding
  c.data.mean, c.data.std = (0.3,), (0.4,)
  x, y = _digits_uint8(n)
  gd, p0, bs0 = train.init_model(c, 10, (8, 8, 1), jax.random.key(0))
  sc = train.StepConfig.from_config(c, n)
  mask = np.zeros(n, bool)
  mask[np.random.default_rng(0).choice(n, n_lab, replace=False)] = True
  out = {}
  for nd in (1, NUM_DEVICES):
    mesh = None if nd == 1 else sharding.make_mesh(nd)
    tr = train.Trainer(gd, sc, n, mesh=mesh)
    images, labels = sharding.place(mesh, x), sharding.place(mesh, y)
    state, losses = tr.new_state(p0, bs0), []
    for e in range(3):
      state, loss = tr.run_epoch(state, images, labels, mask, n_lab, jax.random.key(10 + e),
                                 jax.random.key(20 + e), 0.05)
      losses.append(float(loss))
    logits, feats = tr.predict(state.params, state.batch_stats, images, np.arange(333))
    out[nd] = dict(state=state, losses=losses, logits=np.asarray(logits),
                   feats=np.asarray(feats),
                   acc=tr.evaluate(state.params, state.batch_stats, images, labels,
                                   np.arange(n_lab, n)),
                   replicated=all(a.sharding.is_fully_replicated and len(a.sharding.device_set) == nd
                                  for a in jax.tree.leaves(state)))
  ref, res = out[1], {}
  init = jax.tree.leaves((p0, bs0))
  moved = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
              for a, b in zip(jax.tree.leaves((ref["state"].params, ref["state"].batch_stats)), init))
  for nd in (NUM_DEVICES,):
    o = out[nd]
    diffs = [float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / (1e-3 + np.abs(np.asarray(a)))))
             for a, b in zip(jax.tree.leaves(ref["state"]), jax.tree.leaves(o["state"]))]
    res[nd] = dict(loss_1=ref["losses"], loss_n=o["losses"], max_rel_param_diff=max(diffs),
                   max_logit_diff=float(np.max(np.abs(ref["logits"] - o["logits"]))),
                   max_feat_diff=float(np.max(np.abs(ref["feats"] - o["feats"]))),
                   acc_1=ref["acc"], acc_n=o["acc"], replicated=o["replicated"])
  return dict(by_devices=res, params_moved=moved)


def _section_select():
  import jax
  import jax.numpy as jnp
  import numpy as np
  from sklearn.datasets import load_digits
  from sklearn.linear_model import LogisticRegression
  from configs.common import base
  from jax_al import sharding, strategies

  # Integer pixels as features (as in test_baselines): distances are exact.
  x, y = load_digits(return_X_y=True)
  x = x.astype(np.float32)
  perm = np.random.RandomState(0).permutation(len(x))
  x, y = x[perm], y[perm]
  clf = LogisticRegression(max_iter=2000).fit(x[:40] / 16.0, y[:40])
  logits = clf.decision_function(x / 16.0).astype(np.float32)
  pool = strategies.Pool(jnp.asarray(x[40:1040]), jnp.asarray(logits[40:1040]),
                         jnp.asarray(x[:40]), jnp.asarray(logits[:40]), 10)
  mesh = sharding.make_mesh(NUM_DEVICES)
  sp = sharding.place_pool(mesh, pool)
  odd = sharding.place_pool(mesh, strategies.Pool(pool.features[:999], pool.logits[:999],
                                                  pool.labeled_features, pool.labeled_logits, 10))
  res = dict(features_spec=str(sp.features.sharding.spec),
             labeled_spec=str(sp.labeled_features.sharding.spec),
             odd_spec=str(odd.features.sharding.spec),
             shard_rows=[s.data.shape[0] for s in sp.features.addressable_shards])
  cfg = base().al
  for name in STRATEGIES:
    s = strategies.get_strategy(name, cfg)
    a = s.select(pool, 30, jax.random.key(0)).indices
    b = s.select(sp, 30, jax.random.key(0)).indices
    res[name] = dict(same=bool(np.array_equal(a, b)), plain=a.tolist(), sharded=b.tolist())
  return res


def _section_errors():
  from configs import common
  from jax_al import preflight, sharding
  from jax_al.errors import ConfigError

  res = {}
  c = common.base()
  c.mesh.data, c.train.batch_size = NUM_DEVICES, 30
  try:
    preflight.check_devices(c)
    res["batch"] = None
  except ConfigError as e:
    res["batch"] = [e.field, e.value, str(e)]
  c.mesh.data, c.train.batch_size = 8, 32
  try:
    preflight.check_devices(c)
    res["too_many"] = None
  except ConfigError as e:
    res["too_many"] = [e.field, e.value, str(e)]
  c.mesh.data, c.compare.parallel, c.num_trials = NUM_DEVICES, "vmap", 2
  try:
    preflight.check_devices(c)
    res["vmap"] = None
  except ConfigError as e:
    res["vmap"] = [e.field, e.value, str(e)]
  c.num_trials = 1  # nothing to stack: the mesh is fine
  res["vmap_one_trial"] = sharding.mesh_size(preflight.check_devices(c))
  c.mesh.data, c.compare.parallel = -1, "none"
  res["all"] = sharding.mesh_size(preflight.check_devices(c))
  return res


def _section_loop(tmp: Path):
  import jax
  from configs import digits
  from jax_al import loop, sharding, train
  from jax_al.files import read_jsonl

  # Spies: the run must really train and select on the mesh.
  seen = dict(trainer=[], pool=[])
  init, place_pool = train.Trainer.__init__, sharding.place_pool

  def spy_init(self, *a, **k):
    init(self, *a, **k)
    seen["trainer"].append(sharding.mesh_size(self.mesh))

  def spy_place_pool(mesh, pool):
    out = place_pool(mesh, pool)
    seen["pool"].append([sharding.mesh_size(mesh), str(out.features.sharding.spec)])
    return out

  train.Trainer.__init__, sharding.place_pool = spy_init, spy_place_pool
  c = digits.get_config("entropy")  # the users' method is checked in `select`
  c.mesh.data = NUM_DEVICES
  c.al.cycles, c.al.subset = 2, 1200  # 1200 candidates: divisible by 4, so sharded
  c.train.epochs, c.train.eval_every, c.train.milestones = 4, 4, (1000,)
  summary = loop.run(c, tmp / "run", overwrite=True, quiet=True)
  sel = read_jsonl(tmp / "run" / "selected.jsonl")
  # Rerunning resumes from the cycle-2 checkpoint (restored onto the mesh).
  again = loop.run(c, tmp / "run", quiet=True)
  return dict(labeled=summary["labeled"], test_acc=summary["test_acc"],
              picks=len(sel[-1]["indices"]), resumed_acc=again["test_acc"],
              devices=jax.device_count(), trainer_meshes=seen["trainer"], pools=seen["pool"])


def _worker(tmp: Path) -> None:
  sections = dict(train=_section_train, select=_section_select, errors=_section_errors,
                  loop=lambda: _section_loop(tmp))
  only = os.environ.get("JAX_AL_SHARDING_SECTIONS", "")
  for name, fn in sections.items():
    if only and name not in only.split(","):
      continue
    try:
      out = dict(ok=True, result=fn())
    except Exception:  # reported to the test, which fails with the traceback
      out = dict(ok=False, error=traceback.format_exc())
    print("RESULT " + json.dumps({name: out}, default=str), flush=True)


def _multiprocess_worker(out: Path) -> None:
  """One of 2 processes x 2 devices: train, predict and select on the global mesh.

  Process 0 also computes the same on one local device, as the reference.
  """
  import jax
  import numpy as np
  from configs import common
  from jax_al import preflight, sharding, strategies, train

  c = common.base()
  c.mesh.data = -1
  c.model.name, c.model.width = "cnn", 0.5
  c.train.batch_size, c.data.mean, c.data.std = 32, (0.3,), (0.4,)
  mesh = preflight.check_devices(c)  # jax.distributed.initialize() from the JAX_* variables
  n = 400
  x, y = _digits_uint8(n)
  gd, p0, bs0 = train.init_model(c, 10, (8, 8, 1), jax.random.key(0))
  mask = np.zeros(n, bool)
  mask[:150] = True

  def run(mesh):
    tr = train.Trainer(gd, train.StepConfig.from_config(c, n), n, mesh=mesh)
    images, labels = sharding.place(mesh, x), sharding.place(mesh, y)
    state, loss = tr.run_epoch(tr.new_state(p0, bs0), images, labels, mask, 150,
                               jax.random.key(1), jax.random.key(2), 0.05)
    acc = tr.evaluate(state.params, state.batch_stats, images, labels, np.arange(150, n))
    logits, feats = tr.predict(state.params, state.batch_stats, images, np.arange(200, n))
    l_logits, l_feats = tr.predict(state.params, state.batch_stats, images, np.arange(20))
    pool = sharding.place_pool(mesh, strategies.Pool(feats, logits, l_feats, l_logits, 10))
    picks = {name: strategies.get_strategy(name, c.al).select(pool, 10, jax.random.key(0))
             .indices.tolist() for name in ("entropy", "coreset")}
    return dict(loss=float(loss), acc=acc, picks=picks,
                pool_spec=str(pool.features.sharding.spec) if mesh is not None else "")

  res = dict(process=jax.process_index(), processes=jax.process_count(),
             devices=jax.device_count(), main=sharding.is_main_process(), mesh=run(mesh))
  if jax.process_index() == 0:
    res["single"] = run(None)
  (out / f"p{jax.process_index()}.json").write_text(json.dumps(res))


if __name__ == "__main__":
  sys.path.insert(0, str(ROOT))
  if sys.argv[1] == "--multiprocess":
    _multiprocess_worker(Path(sys.argv[2]))
  else:
    _worker(Path(sys.argv[1]))
  sys.exit(0)


# --------------------------------------------------------------------------
# Tests (the pytest process, one device).
# --------------------------------------------------------------------------

import jax  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from configs import common  # noqa: E402
from jax_al import config as config_lib  # noqa: E402
from jax_al import preflight, sharding  # noqa: E402
from jax_al.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
  """Runs the 4-device worker once; returns {section: {ok, result | error}}."""
  tmp = tmp_path_factory.mktemp("sharding")
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={NUM_DEVICES}",
             JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
  for k in (sharding.ENV_COORDINATOR, sharding.ENV_NUM_PROCESSES, sharding.ENV_PROCESS_ID):
    env.pop(k, None)
  proc = subprocess.run([sys.executable, __file__, str(tmp)], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  out = {}
  for line in proc.stdout.splitlines():
    if line.startswith("RESULT "):
      out.update(json.loads(line[len("RESULT "):]))
  if not out:
    pytest.fail(f"the 4-device worker failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
  return out


def _section(worker, name):
  sec = worker.get(name)
  assert sec is not None, f"section {name} did not run"
  assert sec["ok"], sec["error"]
  return sec["result"]


@pytest.mark.slow
def test_data_parallel_training_matches_one_device(worker):
  r = _section(worker, "train")
  assert r["params_moved"] > 1e-3  # training really changed the weights
  for nd, d in r["by_devices"].items():
    np.testing.assert_allclose(d["loss_n"], d["loss_1"], rtol=1e-5, err_msg=f"{nd} devices")
    assert d["max_rel_param_diff"] < 1e-3, (nd, d)
    assert d["max_logit_diff"] < 1e-4 and d["max_feat_diff"] < 1e-4, (nd, d)
    assert d["acc_n"][0] == pytest.approx(d["acc_1"][0]), (nd, d)
    assert d["replicated"], f"state not replicated on {nd} devices"


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.slow
def test_selection_on_sharded_pool_matches(worker, name):
  r = _section(worker, "select")
  assert r["features_spec"] == r["labeled_spec"] == str(P(sharding.DATA))
  assert r["odd_spec"] == str(P())  # 999 rows: replicated, not unevenly sharded
  assert r["shard_rows"] == [250] * NUM_DEVICES
  assert r[name]["same"], (r[name]["plain"], r[name]["sharded"])


@pytest.mark.slow
def test_config_errors_on_the_mesh(worker):
  r = _section(worker, "errors")
  assert r["batch"][0] == "train.batch_size" and r["batch"][1] == 30
  assert "multiple of 4" in r["batch"][2] and "32" in r["batch"][2]
  assert r["too_many"][0] == "mesh.data" and r["too_many"][1] == 8
  assert "only 4 cpu device" in r["too_many"][2]
  assert r["vmap"][0] == "compare.parallel" and "mesh.data=1" in r["vmap"][2]
  assert r["vmap_one_trial"] == NUM_DEVICES
  assert r["all"] == NUM_DEVICES


@pytest.mark.slow
def test_two_cycle_digits_run_on_four_devices(worker):
  """Needs jax_al/loop.py to build its mesh (preflight.check_devices) and to place / place_pool."""
  r = _section(worker, "loop")
  assert r["devices"] == NUM_DEVICES
  assert r["trainer_meshes"] and set(r["trainer_meshes"]) == {NUM_DEVICES}, (
      "jax_al.loop did not build its Trainer on the mesh: it must call "
      "preflight.check_devices(config) and pass mesh= to Trainer")
  assert r["pools"] == [[NUM_DEVICES, str(P(sharding.DATA))]], (
      "jax_al.loop did not shard the pool: wrap its Pool in sharding.place_pool(mesh, ...)")
  assert r["labeled"] == [20, 40] and r["picks"] == 20
  assert all(0 <= a <= 100 for a in r["test_acc"][0])
  assert r["resumed_acc"] == r["test_acc"]


# ---- one device, in this process -----------------------------------------

def test_single_device_config_gives_no_mesh():
  c = common.base()
  assert preflight.check_devices(c) is None  # mesh.data = 1: the unsharded path
  if jax.device_count() == 1:
    c.mesh.data = -1
    assert preflight.check_devices(c) is None
  assert sharding.place_pool(None, "pool") == "pool"
  assert sharding.is_main_process()


def test_more_devices_than_visible_names_the_field():
  c = common.base()
  c.mesh.data = jax.device_count() + 1
  with pytest.raises(ConfigError) as e:
    preflight.check_devices(c)
  assert e.value.field == "mesh.data" and "xla_force_host_platform_device_count" in str(e.value)
  c.mesh.data = -3  # the schema's range: refused with the config, before any device is counted
  with pytest.raises(ConfigError, match="mesh.data"):
    config_lib.check_config(c)
  c.mesh.data = 0
  with pytest.raises(ConfigError, match="mesh.data.*device count >= 1"):
    config_lib.check_config(c)


def test_distributed_is_requested_by_config_or_environment(monkeypatch):
  for k in (sharding.ENV_COORDINATOR, sharding.ENV_NUM_PROCESSES, sharding.ENV_PROCESS_ID):
    monkeypatch.delenv(k, raising=False)
  c = common.base()
  assert not sharding.distributed_requested(c)
  assert not sharding.initialize_distributed(c)  # nothing asked: no-op
  c.mesh.distributed = True
  assert sharding.distributed_requested(c)
  c.mesh.distributed = False
  monkeypatch.setenv(sharding.ENV_COORDINATOR, "10.0.0.1:1234")
  assert sharding.distributed_requested(c)
  monkeypatch.delenv(sharding.ENV_COORDINATOR)
  monkeypatch.setenv(sharding.ENV_NUM_PROCESSES, "two")
  with pytest.raises(ConfigError, match="JAX_NUM_PROCESSES"):
    preflight.check_devices(c)  # before anything reads the variable


def test_trainer_rejects_indivisible_batch_without_touching_the_default_path():
  from jax_al import train
  c = common.base()
  c.train.batch_size = 30
  sc = train.StepConfig.from_config(c, 100)
  tr = train.Trainer(None, sc, 100)  # no mesh: unchanged behaviour
  assert tr.mesh is None and tr.eval_chunk == sc.eval_batch_size


def _free_port() -> int:
  import socket
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_device(tmp_path):
  """Multi-host on one machine: 2 processes x 2 CPU devices, jax.distributed + gloo."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), JAX_NUM_PROCESSES="2",
             JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{_free_port()}")
  procs = [subprocess.Popen([sys.executable, __file__, "--multiprocess", str(tmp_path)],
                            cwd=ROOT, env=dict(env, JAX_PROCESS_ID=str(i)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  errs = []
  for p in procs:
    try:
      errs.append(p.communicate(timeout=300)[1])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail("the two processes did not finish in 300 s")
  for i, p in enumerate(procs):
    assert p.returncode == 0, errs[i][-3000:]
  r0, r1 = (json.loads((tmp_path / f"p{i}.json").read_text()) for i in range(2))
  assert (r0["processes"], r0["devices"], r0["main"], r1["main"]) == (2, 4, True, False)
  assert r0["mesh"] == r1["mesh"]  # every process sees the same global results
  assert r0["mesh"]["pool_spec"] == str(P(sharding.DATA))
  single = r0["single"]
  assert r0["mesh"]["loss"] == pytest.approx(single["loss"], rel=1e-5)
  assert r0["mesh"]["acc"][0] == pytest.approx(single["acc"][0])
  assert r0["mesh"]["picks"] == single["picks"]
