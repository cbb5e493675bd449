"""Tests of data.source = "embeddings" (jax_al/data/embeddings.py) and
`python -m jax_al.export`, on files built from scikit-learn's digits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jax_al import loop, replay
from jax_al.data import embeddings, load_dataset
from jax_al.errors import ConfigError, DataError

from conftest import tiny_digits_config


def _digits_arrays():
  """The digits splits as 64-d float features, normalised as configs/digits.py does."""
  from configs import common
  from jax_al.data.digits import load_digits
  ds = load_digits(common.base().data, image_size=None, channels=1)
  f = lambda x: ((x.reshape(len(x), -1).astype(np.float32) / np.float32(255.0)
                  - np.float32(0.3)) / np.float32(0.4))
  return dict(train_features=f(ds.train_images), train_labels=ds.train_labels.astype(np.int64),
              test_features=f(ds.test_images), test_labels=ds.test_labels.astype(np.int64))


def _write(tmp_path, name="emb.npz", **arrays):
  path = tmp_path / name
  np.savez(path, **arrays)
  return path


def _config(path, strategy="margin", **fields):
  c = tiny_digits_config(strategy, **fields)
  c.data.source = "embeddings"
  c.data.path = str(path)
  c.data.mean = (0.0,)
  c.data.std = (1.0,)
  return c


def _picks(workdir):
  return [json.loads(l) for l in (Path(workdir) / "selected.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_digits_embeddings_run_resume_and_replay(tmp_path):
  a = _digits_arrays()
  ids = np.asarray([f"img{i}" for i in range(len(a["train_labels"]))])
  path = _write(tmp_path, train_ids=ids, **a)
  ds = load_dataset(_config(path).data)
  assert ds.train_images.shape == (1297, 1, 64, 1) and ds.train_images.dtype == np.float32
  assert ds.num_classes == 10 and list(ds.train_ids[:2]) == ["img0", "img1"]
  c = _config(path, al__cycles=3)
  full = tmp_path / "full"
  s = loop.run(c, full, quiet=True)
  assert s["labeled"] == [20, 40, 60] and s["mean"][-1] > 30
  # Resume: drop the last cycle's checkpoint; the rerun finishes the same way.
  cut = tmp_path / "cut"
  loop.run(c, cut, quiet=True)
  import shutil
  shutil.rmtree(cut / "checkpoints" / "trial0" / "3")
  loop.run(c, cut, quiet=True)
  assert "resuming after cycle 2" in (cut / "log.txt").read_text()
  assert _picks(cut) == _picks(full)
  # Replay: the step rebuilt from the workdir picks what the run picked.
  st = replay.step(full, 0, 2)
  picked = st.subset[replay.select(st)]
  assert sorted(picked.tolist()) == sorted(_picks(full)[2]["indices"])


def test_embeddings_of_digits_pixels_pick_as_the_pixel_run(tmp_path):
  """The same numbers through both paths: the same selections, bit for bit."""
  path = _write(tmp_path, **_digits_arrays())
  loop.run(tiny_digits_config("margin"), tmp_path / "pixels", quiet=True)
  loop.run(_config(path), tmp_path / "emb", quiet=True)
  assert _picks(tmp_path / "pixels") == _picks(tmp_path / "emb")


@pytest.mark.slow
def test_exported_coates_features_pick_as_the_coates_source(tmp_path):
  from jax_al import export
  coates = tiny_digits_config("margin", data__features="coates",
                              data__cache_dir=str(tmp_path / "cache"))
  coates.data.coates.update(dict(k=24, patch=3, n_patches=20_000, kmeans_iter=20, block=256))
  coates.data.mean, coates.data.std = (0.0,), (1.0,)
  out = export.export(coates.data, tmp_path / "coates.npz")
  with pytest.raises(DataError, match="already exists"):
    export.export(coates.data, out)
  with pytest.raises(ConfigError, match="data.features"):
    export.export(tiny_digits_config().data, tmp_path / "pixels.npz")
  loop.run(coates, tmp_path / "src", quiet=True)
  loop.run(_config(out), tmp_path / "emb", quiet=True)
  assert _picks(tmp_path / "src") == _picks(tmp_path / "emb")


def _bad(a, **change):
  a = dict(a)
  for k, v in change.items():
    if v is None:
      a.pop(k)
    else:
      a[k] = v
  return a


BAD = {
    "missing": (lambda a: _bad(a, test_labels=None), "no array 'test_labels'"),
    "rows": (lambda a: _bad(a, train_labels=a["train_labels"][:-1]),
             "'train_labels' has 1296 rows, 'train_features' has 1297"),
    "nan": (lambda a: _bad(a, train_features=np.where(np.arange(64) == 3, np.nan,
                                                      a["train_features"])), "NaN or infinite"),
    "inf": (lambda a: _bad(a, test_features=a["test_features"] * np.float32(np.inf)),
            "NaN or infinite"),
    "float_labels": (lambda a: _bad(a, train_labels=a["train_labels"] + 0.5), "not integers"),
    "dims": (lambda a: _bad(a, test_features=a["test_features"][:, :60]),
             "train_features has 64 features per row, test_features 60"),
    "ndim": (lambda a: _bad(a, train_features=a["train_features"].reshape(-1, 8, 8)),
             "'train_features' has shape \\(1297, 8, 8\\)"),
    "label_ndim": (lambda a: _bad(a, test_labels=a["test_labels"][:, None]),
                   "'test_labels' has shape"),
    "negative": (lambda a: _bad(a, test_labels=a["test_labels"] - 1), "negative label"),
    "ids": (lambda a: _bad(a, train_ids=np.asarray(["x"] * 5)), "'train_ids' has 5 rows"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_file_is_one_line_naming_file_and_array(tmp_path, case):
  make, msg = BAD[case]
  path = _write(tmp_path, **make(_digits_arrays()))
  work = tmp_path / "run"
  with pytest.raises(DataError, match=msg) as e:
    loop.run(_config(path), work, quiet=True)
  assert str(path) in str(e.value) and "Fix:" in str(e.value) and "\n" not in str(e.value)
  assert not work.exists()  # nothing written


def test_not_a_file_and_bad_fields(tmp_path):
  with pytest.raises(DataError, match="no such file"):
    embeddings.load_file(str(tmp_path / "none.npz"))
  (tmp_path / "junk.npz").write_bytes(b"not a zip")
  with pytest.raises(DataError, match="junk.npz"):
    embeddings.load_file(str(tmp_path / "junk.npz"))
  np.save(tmp_path / "one.npy", np.zeros(3))
  with pytest.raises(DataError, match="single array"):
    embeddings.load_file(str(tmp_path / "one.npy"))
  from jax_al import config as config_lib
  path = _write(tmp_path, **_digits_arrays())
  for field, value in (("data.path", ""), ("model.name", "cnn"), ("augment.flip", True),
                       ("augment.crop_pad", 2), ("data.features", "coates")):
    c = _config(path)
    node = c
    *parents, last = field.split(".")
    for p in parents:
      node = node[p]
    node[last] = value
    with pytest.raises(ConfigError, match=field.replace(".", "\\.")):
      config_lib.check_config(c)


def test_shipped_config_needs_a_path():
  from configs import embeddings as emb_config
  from jax_al import config as config_lib
  with pytest.raises(ConfigError, match="data.path"):
    config_lib.check_config(emb_config.get_config())


def test_start_line_gives_train_and_test_counts(tmp_path):
  path = _write(tmp_path, **_digits_arrays())
  loop.run(_config(path), tmp_path / "emb", quiet=True)
  loop.run(tiny_digits_config(), tmp_path / "pixels", quiet=True)
  for run in ("emb", "pixels"):
    first = (tmp_path / run / "log.txt").read_text().splitlines()[0]
    assert "1,297 train and 500 test items, 10 classes" in first, first
