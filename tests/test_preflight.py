"""`jax_al.preflight`: every check a run makes before it writes anything.

The checks' order (the lock before the data, the strategy's sizes before any
training) and what they estimate before a run: the memory that the fields
sizing a selection or an evaluation need, and the warnings for settings far
slower than the defaults.
"""

from __future__ import annotations

import os

import pytest

from conftest import rejected, tiny_digits_config
from jax_al import loop, preflight
from jax_al.errors import ConfigError


def _one_line(e: BaseException) -> str:
  text = str(e)
  assert "\n" not in text and "Traceback" not in text, text
  return text


def _preflight(tmp_path, strategy="users", **fields):
  """preflight.check_run of the tiny users (uncertainty_mmd) run; releases the lock."""
  c = tiny_digits_config(strategy, **fields)
  checked = preflight.check_run(c, tmp_path / f"w{len(list(tmp_path.iterdir()))}", False)
  checked.lock.release(remove=True)
  return checked


def _suggested(msg: str) -> int:
  import re
  m = re.search(r"e\.g\. (\d+)$", msg)
  assert m, msg
  return int(m.group(1))


def test_draw_size_past_46341_warns_before_the_run(tmp_path):
  checked = _preflight(tmp_path, al__draw_size=46341)
  assert len(checked.warnings) == 1 and "al.draw_size=46341" in checked.warnings[0]
  assert "x the work" in checked.warnings[0]


@pytest.mark.parametrize("fields,field", [
    (dict(al__repeats=10000), "al.repeats"),
    (dict(al__kmeans__n_init=1000, al__kmeans__max_iter=1_000_000, al__kmeans__tol=0.0),
     "al.kmeans.n_init"),
    (dict(al__strategy="bald", model__dropout=0.3, al__mc_samples=10_000,
          train__eval_batch_size=100_000), "al.mc_samples")],
    ids=["repeats", "kmeans", "mc_samples"])
def test_sizing_fields_are_estimated_and_the_suggestion_fits(tmp_path, monkeypatch, fields,
                                                             field):
  from jax_al import memory
  monkeypatch.setattr(memory, "host_available", lambda: 16 * 10**9)
  with pytest.raises(ConfigError) as e:
    _preflight(tmp_path, **fields)
  msg = _one_line(e.value)
  assert f"`{field}`" in msg and "16 GB are free" in msg, msg
  fix = _suggested(msg)
  assert fix < int(_get(fields, field))
  _preflight(tmp_path, **{**fields, field.replace(".", "__"): fix})  # fits: no error


def _get(fields, field):
  return fields[field.replace(".", "__")]


def test_eval_batch_refusal_suggests_a_value_that_fits(tmp_path, monkeypatch):
  from jax_al import memory
  real, seen = memory.check_run, {}
  monkeypatch.setattr(memory, "check_run",
                      lambda config, *a, **k: seen.setdefault("args", (config, a, k)))
  _preflight(tmp_path, "random", train__eval_batch_size=500)  # no selection arrays
  config, a, k = seen["args"]

  def check(avail: int, eval_batch: int) -> None:
    monkeypatch.setattr(memory, "host_available", lambda: avail)
    config.train.eval_batch_size = eval_batch
    real(config, *a, **k)

  lo, hi = 10**5, 10**12  # the least free memory at which 500 fits lies in (lo, hi]
  check(hi, 500)
  while hi - lo > 1:
    mid = (lo + hi) // 2
    try:
      check(mid, 500)
      hi = mid
    except ConfigError:
      lo = mid
  with pytest.raises(ConfigError) as e:  # 500 fails here, by one byte
    check(lo, 500)
  msg = _one_line(e.value)
  assert "`train.eval_batch_size` = 500" in msg, msg
  fix = _suggested(msg)
  assert fix < 500 and "e.g. 500" not in msg, msg
  check(lo, fix)  # the suggested value fits


def test_al_batch_larger_than_the_pool_is_not_blamed_on_kmeans(tmp_path, monkeypatch):
  from jax_al import memory
  _preflight(tmp_path, al__batch=10**9)  # no phantom rows: one minibatch of the candidates
  monkeypatch.setattr(memory, "host_available", lambda: 2 * 10**6)
  with pytest.raises(ConfigError) as e:
    _preflight(tmp_path, al__batch=10**9)
  assert "1,000,000,000 points" not in str(e.value)


def test_block_1_warns_before_the_run(tmp_path):
  checked = _preflight(tmp_path, al__block=1)
  assert any("al.block=1 (default 1024)" in w for w in checked.warnings), checked.warnings
  assert _preflight(tmp_path).warnings == ()


def test_vmapped_trials_refusal_fits_and_keeps_the_sequential_way_out(tmp_path, monkeypatch):
  from jax_al import memory
  monkeypatch.setattr(memory, "host_available", lambda: 20 * 10**9)
  fields = dict(num_trials=10_000, compare__parallel="vmap", model__width=16.0)
  with pytest.raises(ConfigError) as e:
    _preflight(tmp_path, "random", **fields)
  msg = _one_line(e.value)
  assert "`num_trials` = 10000" in msg and "compare.parallel=none" in msg, msg
  fix = int(msg.split("e.g. ")[1].split(",")[0])
  assert fix < 10_000
  _preflight(tmp_path, "random", **{**fields, "num_trials": fix})  # fits


def test_strategy_size_check_comes_before_any_training(tmp_path, no_training):
  # The labeled-count check of the MMD term runs in preflight.check_run: nothing
  # is trained, no metrics.jsonl is written, the new workdir is not left behind.
  from jax_al import strategies
  calls = []
  real = strategies.uncertainty_mmd.UncertaintyMMD.check

  def spy(self, *args, **kwargs):
    calls.append((args, kwargs))
    return real(self, *args, **kwargs)

  fresh = tmp_path / "new" / "run"
  config = tiny_digits_config("uncertainty_mmd", al__initial=1, al__term="witness",
                              al__estimator="unbiased")
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(strategies.uncertainty_mmd.UncertaintyMMD, "check", spy)
    with pytest.raises(ConfigError, match="al.initial") as e:
      preflight.check_run(config, fresh, overwrite=False)
  assert "needs at least 2 labeled points" in str(e.value)
  assert calls and calls[0][1].get("num_labeled") == 1, calls
  assert not fresh.parent.exists()
  rejected(config, fresh, ConfigError, "al.initial", "raise al.initial")
  assert not (fresh / "metrics.jsonl").exists() and not fresh.parent.exists()


# ---- the checks that come before the workdir: the compile cache, the devices ----


def test_unusable_cache_dir_is_a_config_error(tmp_path):
  import jax
  from jax_al import compiles
  before = jax.config.jax_compilation_cache_dir
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  locked = tmp_path / "locked"
  locked.mkdir()
  locked.chmod(0o500)
  try:
    jax.config.update("jax_compilation_cache_dir", None)  # as in a fresh process
    with pytest.raises(ConfigError, match="compile_cache_dir.*cannot create"):
      preflight.check_compile_cache(str(blocker / "xla"))
    with pytest.raises(ConfigError, match="compile_cache_dir"):
      preflight.check_compile_cache(5)
    if not os.access(locked, os.W_OK):  # root writes anywhere
      with pytest.raises(ConfigError, match="compile_cache_dir.*not writable"):
        preflight.check_compile_cache(str(locked / "xla"))
    preflight.check_compile_cache(str(tmp_path / "new" / "xla"))  # below a writable folder
    assert not (tmp_path / "new").exists()  # a check creates nothing
    preflight.check_compile_cache("off")
    assert compiles.use_persistent_cache("off") is None
    assert jax.config.jax_compilation_cache_dir is None
  finally:
    locked.chmod(0o700)
    jax.config.update("jax_compilation_cache_dir", before)


@pytest.mark.parametrize("fields,needle", [
    (dict(compile_cache_dir="<file>/xla"), "compile_cache_dir"),
    (dict(mesh__data=64), "mesh.data"),
], ids=["compile_cache", "devices"])
def test_device_and_cache_checks_come_before_the_workdir_and_the_cache(
    tmp_path, monkeypatch, no_training, fields, needle):
  """A run refused for its compile cache or its devices leaves no trace: no
  new workdir, no cache folder, and the process's cache setting unchanged."""
  import jax
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  fields = {k: (v.replace("<file>", str(blocker)) if isinstance(v, str) else v)
            for k, v in fields.items()}
  before = jax.config.jax_compilation_cache_dir
  monkeypatch.setattr(preflight, "load_dataset", lambda *a: pytest.fail("data loaded"))
  fresh = tmp_path / "new" / "run"
  try:
    jax.config.update("jax_compilation_cache_dir", None)
    rejected(tiny_digits_config("random", **fields), fresh, ConfigError, needle)
    assert jax.config.jax_compilation_cache_dir is None
  finally:
    jax.config.update("jax_compilation_cache_dir", before)
  assert not fresh.parent.exists()


def test_the_cache_goes_on_only_after_every_check(tmp_path, monkeypatch, no_training):
  """A run refused by a late check (its sizes) has not turned the cache on."""
  from jax_al import compiles
  calls = []
  monkeypatch.setattr(compiles, "use_persistent_cache", lambda s: calls.append(s))
  with pytest.raises(ConfigError, match="al.initial"):
    loop.run(tiny_digits_config("random", al__initial=10**6), tmp_path / "run", quiet=True)
  assert calls == [] and not (tmp_path / "run").exists()
