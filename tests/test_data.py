"""Tests of jax_al.data: digits, image folders (dir and tar), cache, TFDS."""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jax_al.data import Dataset, load_dataset
from jax_al.data import tfds_source
from jax_al.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
CIFAR = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
# Distinct solid colours, one per class; class folders sort as a < b < c.
COLOURS = {"a_red": (220, 20, 30), "b_green": (10, 200, 40),
           "c_blue": (30, 40, 210)}


def _base_config():
  spec = importlib.util.spec_from_file_location(
      "_jax_al_configs_common", REPO / "configs" / "common.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.base()


def data_cfg(**fields):
  cfg = _base_config().data
  for k, v in fields.items():
    setattr(cfg, k, v)
  return cfg


def folder_cfg(path, cache_dir, **fields):
  return data_cfg(source="folder", path=str(path), cache_dir=str(cache_dir),
                  **fields)


def write_image(path: Path, colour, size=(8, 8), mode="RGB", fmt=None):
  path.parent.mkdir(parents=True, exist_ok=True)
  value = colour if mode == "RGB" else colour[0]
  Image.new(mode, size, value).save(path, format=fmt)


def make_tree(root: Path, ext=".png", n_train=4, n_test=2, size=(8, 8),
              colours=COLOURS, mode="RGB") -> Path:
  fmt = "JPEG" if ext.lower() in (".jpg", ".jpeg") else "PNG"
  for split, n in (("train", n_train), ("test", n_test)):
    for cls, colour in colours.items():
      for i in range(n):
        write_image(root / split / cls / f"{i:04d}{ext}", colour, size, mode,
                    fmt)
  return root


def make_tar(src: Path, dest: Path, arcname: str = "") -> Path:
  mode = "w:gz" if dest.name.endswith((".gz", ".tgz")) else "w"
  with tarfile.open(dest, mode) as tf:
    for p in sorted(src.rglob("*")):
      rel = p.relative_to(src).as_posix()
      tf.add(p, arcname=f"{arcname}/{rel}" if arcname else rel,
             recursive=False)
  return dest


def snapshot(root: Path, skip: Path) -> dict:
  """Every file under root (outside `skip`) with its bytes."""
  return {p: p.read_bytes() for p in root.rglob("*")
          if p.is_file() and skip not in p.parents}


def add_member(tf: tarfile.TarFile, name: str, data: bytes = b"", **attrs):
  info = tarfile.TarInfo(name)
  info.size = len(data)
  for k, v in attrs.items():
    setattr(info, k, v)
  tf.addfile(info, io.BytesIO(data) if data else None)


def png_bytes(colour=(1, 2, 3)) -> bytes:
  buf = io.BytesIO()
  Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
  return buf.getvalue()


def crafted_tar(path: Path, bad: callable) -> Path:
  """A valid 2-class archive plus whatever `bad(tf)` adds."""
  with tarfile.open(path, "w") as tf:
    for split in ("train", "test"):
      for cls in ("a", "b"):
        add_member(tf, f"{split}/{cls}/0.png", png_bytes())
    bad(tf)
  return path


# ---------------------------------------------------------------- folder ----


def test_folder_png_directory(tmp_path):
  root = make_tree(tmp_path / "data")
  ds = load_dataset(folder_cfg(root, tmp_path / "cache"))
  assert isinstance(ds, Dataset)
  assert ds.class_names == ("a_red", "b_green", "c_blue")
  assert ds.num_classes == 3
  assert ds.train_images.shape == (12, 8, 8, 3)
  assert ds.test_images.shape == (6, 8, 8, 3)
  assert ds.train_images.dtype == np.uint8
  assert ds.train_labels.dtype == np.int32
  np.testing.assert_array_equal(ds.train_labels, np.repeat([0, 1, 2], 4))
  np.testing.assert_array_equal(ds.test_labels, np.repeat([0, 1, 2], 2))
  for images, labels in ((ds.train_images, ds.train_labels),
                         (ds.test_images, ds.test_labels)):
    for img, y in zip(images, labels):
      colour = COLOURS[ds.class_names[y]]
      np.testing.assert_array_equal(img, np.broadcast_to(colour, (8, 8, 3)))
  assert ds.description == f"folder:{root.resolve()}"


def test_folder_jpeg_values_within_tolerance(tmp_path):
  root = make_tree(tmp_path / "data", ext=".JPG", size=(12, 12))
  ds = load_dataset(folder_cfg(root, tmp_path / "cache"))
  assert ds.train_images.shape == (12, 12, 12, 3)
  for img, y in zip(ds.train_images, ds.train_labels):
    colour = np.array(COLOURS[ds.class_names[y]], np.int32)
    assert np.abs(img.astype(np.int32) - colour).max() <= 12


def test_folder_ignores_other_and_hidden_files(tmp_path):
  root = make_tree(tmp_path / "data")
  (root / "README.txt").write_text("hello")
  (root / "train" / "a_red" / "notes.txt").write_text("not an image")
  (root / "train" / "a_red" / ".hidden.png").write_bytes(b"garbage")
  (root / "train" / ".DS_Store").write_bytes(b"garbage")
  ds = load_dataset(folder_cfg(root, tmp_path / "cache"))
  assert ds.train_images.shape[0] == 12


def test_png_content_with_jpeg_extension_is_read(tmp_path):
  root = make_tree(tmp_path / "data")
  write_image(root / "train" / "a_red" / "x.jpeg", COLOURS["a_red"], fmt="PNG")
  ds = load_dataset(folder_cfg(root, tmp_path / "cache"))
  assert ds.train_images.shape[0] == 13


@pytest.mark.parametrize("name,arcname", [
    ("data.tar", ""), ("data.tar.gz", ""), ("data.tgz", "wrapper"),
    ("data.tar.gz", "cifar-like")])
def test_tar_matches_directory(tmp_path, name, arcname):
  root = make_tree(tmp_path / "data", ext=".jpg")
  (root / "train" / "a_red" / "notes.txt").write_text("ignored")
  archive = make_tar(root, tmp_path / name, arcname)
  from_dir = load_dataset(folder_cfg(root, tmp_path / "cache"))
  from_tar = load_dataset(folder_cfg(archive, tmp_path / "cache"))
  assert from_tar.class_names == from_dir.class_names
  for field in ("train_images", "train_labels", "test_images", "test_labels"):
    np.testing.assert_array_equal(getattr(from_tar, field),
                                  getattr(from_dir, field))
  assert from_tar.description == f"folder:{archive.resolve()}"


def test_directory_with_wrapper_folder(tmp_path):
  make_tree(tmp_path / "data" / "mydata")
  ds = load_dataset(folder_cfg(tmp_path / "data", tmp_path / "cache"))
  assert ds.train_images.shape == (12, 8, 8, 3)


def test_custom_split_names(tmp_path):
  root = make_tree(tmp_path / "data")
  (root / "train").rename(root / "labeled")
  (root / "test").rename(root / "val")
  ds = load_dataset(folder_cfg(root, tmp_path / "cache", train_split="labeled",
                               test_split="val"))
  assert ds.train_images.shape[0] == 12 and ds.test_images.shape[0] == 6


def test_directory_cache_hit_does_not_reread(tmp_path, monkeypatch):
  from jax_al.data import folder

  root = make_tree(tmp_path / "data")
  cache_dir = tmp_path / "cache"
  before = snapshot(tmp_path, cache_dir)
  first = load_dataset(folder_cfg(root, cache_dir))
  assert not first.description.endswith("(cached)")
  # The loader wrote nothing but one finished cache entry.
  assert snapshot(tmp_path, cache_dir) == before
  assert [p.suffix for p in cache_dir.iterdir()] == [".npz"]
  # A hit opens no image: reading one would fail.
  with monkeypatch.context() as m:
    m.setattr(folder._DirTree, "read", lambda *a, **k: pytest.fail("an image was read"))
    second = load_dataset(folder_cfg(root, cache_dir))
  assert second.description == first.description + " (cached)"
  np.testing.assert_array_equal(second.train_images, first.train_images)
  np.testing.assert_array_equal(second.test_labels, first.test_labels)
  assert second.class_names == first.class_names
  # Other content of the same size with its mtime set back (touch -r, cp -p)
  # changes the key all the same (its ctime moved), so it is decoded again:
  # the stale arrays are never served.
  victim = root / "train" / "a_red" / "0000.png"
  st = victim.stat()
  victim.write_bytes(b"\0" * st.st_size)
  os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
  assert (victim.stat().st_size, victim.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
  with pytest.raises(DataError, match="0000.png"):
    load_dataset(folder_cfg(root, cache_dir))


def test_tar_cache_hit_does_not_open_archive(tmp_path, monkeypatch):
  archive = make_tar(make_tree(tmp_path / "data"), tmp_path / "d.tar.gz")
  cache_dir = tmp_path / "cache"
  first = load_dataset(folder_cfg(archive, cache_dir))

  def no_open(*args, **kwargs):
    raise AssertionError("the archive was read on a cache hit")

  monkeypatch.setattr(tarfile, "open", no_open)
  second = load_dataset(folder_cfg(archive, cache_dir))
  assert second.description.endswith("(cached)")
  np.testing.assert_array_equal(second.train_images, first.train_images)
  # Different settings are a different entry, which needs the archive.
  with pytest.raises(AssertionError, match="was read"):
    load_dataset(folder_cfg(archive, cache_dir, image_size=4))


def test_one_archive_by_two_paths_is_cached_once(tmp_path, monkeypatch):
  """The cache is keyed by the archive's content digest, not by its path."""
  archive = make_tar(make_tree(tmp_path / "data"), tmp_path / "d.tar.gz")
  cache_dir = tmp_path / "cache"
  first = load_dataset(folder_cfg(archive, cache_dir))
  link = tmp_path / "elsewhere" / "link.tar.gz"
  link.parent.mkdir()
  link.symlink_to(archive)
  copy = tmp_path / "elsewhere" / "copy.tar.gz"
  copy.write_bytes(archive.read_bytes())
  monkeypatch.setattr(tarfile, "open", lambda *a, **k: pytest.fail("decoded twice"))
  for other in (link, copy):
    again = load_dataset(folder_cfg(other, cache_dir))
    assert again.description == f"folder:{other} (cached)"
    np.testing.assert_array_equal(again.train_images, first.train_images)
  assert len(list(cache_dir.glob("*.npz"))) == 1
  assert again.fingerprint == first.fingerprint
  # Other bytes are another entry.
  monkeypatch.undo()
  other = make_tar(make_tree(tmp_path / "data2", n_train=5), tmp_path / "d2.tar.gz")
  assert load_dataset(folder_cfg(other, cache_dir)).train_images.shape[0] == 15
  assert len(list(cache_dir.glob("*.npz"))) == 2


def test_cache_entry_has_no_pickles(tmp_path):
  root = make_tree(tmp_path / "data")
  load_dataset(folder_cfg(root, tmp_path / "cache"))
  (entry,) = (tmp_path / "cache").iterdir()
  with np.load(entry, allow_pickle=False) as f:
    assert f["class_names"].dtype.kind == "U"
    assert f["train_images"].shape == (12, 8, 8, 3)


def test_unreadable_cache_entry_is_rebuilt(tmp_path):
  root = make_tree(tmp_path / "data")
  cache_dir = tmp_path / "cache"
  load_dataset(folder_cfg(root, cache_dir))
  (entry,) = cache_dir.iterdir()
  entry.write_bytes(b"truncated")
  ds = load_dataset(folder_cfg(root, cache_dir))
  assert not ds.description.endswith("(cached)")
  again = load_dataset(folder_cfg(root, cache_dir))
  assert again.description.endswith("(cached)")


def test_grayscale_to_rgb_and_rgb_to_gray(tmp_path):
  gray = {"a": (40,), "b": (160,)}
  root = make_tree(tmp_path / "gray", colours=gray, mode="L")
  ds = load_dataset(folder_cfg(root, tmp_path / "cache", channels=3))
  assert ds.train_images.shape == (8, 8, 8, 3)
  for img, y in zip(ds.train_images, ds.train_labels):
    assert (img == gray[ds.class_names[y]][0]).all()
  ds1 = load_dataset(folder_cfg(root, tmp_path / "cache", channels=1))
  assert ds1.train_images.shape == (8, 8, 8, 1)
  rgb = make_tree(tmp_path / "rgb")
  ds2 = load_dataset(folder_cfg(rgb, tmp_path / "cache", channels=1))
  assert ds2.train_images.shape == (12, 8, 8, 1)
  for img, y in zip(ds2.train_images, ds2.train_labels):
    want = np.asarray(Image.new("RGB", (1, 1), COLOURS[ds2.class_names[y]])
                      .convert("L"))[0, 0]
    assert (img == want).all()


def test_resize_mixed_sizes(tmp_path):
  root = make_tree(tmp_path / "data", size=(8, 8))
  write_image(root / "train" / "b_green" / "big.png", COLOURS["b_green"],
              size=(12, 10))
  ds = load_dataset(folder_cfg(root, tmp_path / "cache", image_size=6))
  assert ds.train_images.shape == (13, 6, 6, 3)
  assert ds.test_images.shape == (6, 6, 6, 3)
  big = ds.train_images[ds.train_labels == 1][0]
  np.testing.assert_array_equal(big, np.broadcast_to(COLOURS["b_green"],
                                                     (6, 6, 3)))


# ------------------------------------------------------- folder: errors ----


def test_mixed_sizes_without_image_size(tmp_path):
  root = make_tree(tmp_path / "data")
  write_image(root / "train" / "b_green" / "big.png", (0, 0, 0), size=(12, 10))
  with pytest.raises(DataError, match="big.png") as e:
    load_dataset(folder_cfg(root, tmp_path / "cache"))
  msg = str(e.value)
  assert "a_red" in msg and "0000.png" in msg  # The other file.
  assert "12x10" in msg and "8x8" in msg and "data.image_size" in msg


def test_missing_path(tmp_path):
  missing = tmp_path / "nope.tar.gz"
  with pytest.raises(DataError, match="does not exist") as e:
    load_dataset(folder_cfg(missing, tmp_path / "cache"))
  assert str(missing) in str(e.value) and "data.path" in str(e.value)


def test_empty_path_is_config_error(tmp_path):
  with pytest.raises(ConfigError, match="data.path"):
    load_dataset(folder_cfg("", tmp_path / "cache"))


def test_not_a_tar(tmp_path):
  bogus = tmp_path / "data.tar.gz"
  bogus.write_text("this is not an archive")
  with pytest.raises(DataError, match="not a readable tar") as e:
    load_dataset(folder_cfg(bogus, tmp_path / "cache"))
  assert str(bogus) in str(e.value)


def test_truncated_tar_gz(tmp_path):
  archive = make_tar(make_tree(tmp_path / "data"), tmp_path / "d.tar.gz")
  blob = archive.read_bytes()
  archive.write_bytes(blob[:len(blob) // 2])
  with pytest.raises(DataError, match="corrupt or truncated") as e:
    load_dataset(folder_cfg(archive, tmp_path / "cache"))
  assert str(archive) in str(e.value)


@pytest.mark.parametrize("as_tar", [False, True])
@pytest.mark.parametrize("blob", [b"definitely not an image", png_bytes()[:40]],
                         ids=["garbage", "truncated"])
def test_corrupt_image_named(tmp_path, as_tar, blob):
  root = make_tree(tmp_path / "data")
  (root / "train" / "b_green" / "0001.png").write_bytes(blob)
  path = make_tar(root, tmp_path / "d.tar") if as_tar else root
  with pytest.raises(DataError, match="not a readable JPEG/PNG") as e:
    load_dataset(folder_cfg(path, tmp_path / "cache"))
  assert "train/b_green/0001.png" in str(e.value)


@pytest.mark.parametrize("as_tar", [False, True])
def test_empty_class_folder(tmp_path, as_tar):
  root = make_tree(tmp_path / "data")
  (root / "train" / "d_empty").mkdir()
  (root / "test" / "d_empty").mkdir()
  (root / "train" / "d_empty" / "notes.txt").write_text("no images here")
  path = make_tar(root, tmp_path / "d.tar") if as_tar else root
  with pytest.raises(DataError, match="empty class folder") as e:
    load_dataset(folder_cfg(path, tmp_path / "cache"))
  assert "train/d_empty" in str(e.value)


def test_single_class(tmp_path):
  root = make_tree(tmp_path / "data", colours={"only": (1, 2, 3)})
  with pytest.raises(DataError, match="at least 2 classes") as e:
    load_dataset(folder_cfg(root, tmp_path / "cache"))
  assert str(root) in str(e.value)


def test_test_classes_differ_from_train(tmp_path):
  root = make_tree(tmp_path / "data")
  shutil.rmtree(root / "test" / "c_blue")
  write_image(root / "test" / "z_extra" / "0.png", (9, 9, 9))
  with pytest.raises(DataError, match="classes differ") as e:
    load_dataset(folder_cfg(root, tmp_path / "cache"))
  assert "c_blue" in str(e.value) and "z_extra" in str(e.value)


def test_missing_split_folder(tmp_path):
  root = make_tree(tmp_path / "data")
  with pytest.raises(DataError, match="data.test_split") as e:
    load_dataset(folder_cfg(root, tmp_path / "cache", test_split="val"))
  assert "'val'" in str(e.value)
  with pytest.raises(DataError, match="data.train_split"):
    load_dataset(folder_cfg(root, tmp_path / "cache", train_split="labeled"))


def test_image_outside_class_folder(tmp_path):
  root = make_tree(tmp_path / "data")
  write_image(root / "train" / "loose.png", (0, 0, 0))
  with pytest.raises(DataError, match="loose.png"):
    load_dataset(folder_cfg(root, tmp_path / "cache"))
  (root / "train" / "loose.png").unlink()
  write_image(root / "train" / "a_red" / "sub" / "deep.png", (0, 0, 0))
  with pytest.raises(DataError, match="a_red/sub"):
    load_dataset(folder_cfg(root, tmp_path / "cache"))


def test_bad_config_fields(tmp_path):
  with pytest.raises(ConfigError, match="data.source") as e:
    load_dataset(data_cfg(source="folders"))
  assert "'folder'" in str(e.value) and "tfds" in str(e.value)
  with pytest.raises(ConfigError, match="data.channels"):
    load_dataset(data_cfg(channels=2))
  with pytest.raises(ConfigError, match="data.image_size"):
    load_dataset(data_cfg(image_size=0))


# ------------------------------------------------------- folder: safety ----


@pytest.mark.parametrize("bad,problem", [
    (lambda tf: add_member(tf, "/etc/evil.png", png_bytes()), "absolute path"),
    (lambda tf: add_member(tf, "train/a/../../evil.png", png_bytes()), "'..'"),
    (lambda tf: add_member(tf, "train/a/link.png", type=tarfile.SYMTYPE,
                           linkname="/etc/passwd"), "symbolic link"),
    (lambda tf: add_member(tf, "train/a/hard.png", type=tarfile.LNKTYPE,
                           linkname="train/a/0.png"), "hard link"),
    (lambda tf: add_member(tf, "train/a/dev.png", type=tarfile.CHRTYPE,
                           devmajor=1, devminor=3), "device or FIFO"),
    (lambda tf: add_member(tf, "train/a/blk", type=tarfile.BLKTYPE), "device"),
    (lambda tf: add_member(tf, "train/a/fifo.png", type=tarfile.FIFOTYPE),
     "device or FIFO"),
], ids=["absolute", "dotdot", "symlink", "hardlink", "chardev", "blockdev",
        "fifo"])
def test_tar_unsafe_members_rejected(tmp_path, bad, problem):
  archive = crafted_tar(tmp_path / "evil.tar", bad)
  with pytest.raises(DataError, match=problem) as e:
    load_dataset(folder_cfg(archive, tmp_path / "cache"))
  assert str(archive) in str(e.value) and "member" in str(e.value)
  assert not (tmp_path / "cache").exists()


def test_tar_huge_declared_size_rejected_before_reading(tmp_path):
  # A header declaring 1 GiB followed by no data: reading the member would
  # fail, so the error below proves the size was checked first.
  info = tarfile.TarInfo("train/a/bomb.png")
  info.size = 2**30
  archive = tmp_path / "bomb.tar"
  archive.write_bytes(info.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 1024)
  with pytest.raises(DataError, match="over the") as e:
    load_dataset(folder_cfg(archive, tmp_path / "cache"))
  assert "bomb.png" in str(e.value) and "1,073,741,824" in str(e.value)


def test_configurable_size_limit(tmp_path):
  root = make_tree(tmp_path / "data")
  archive = make_tar(root, tmp_path / "d.tar")
  for path in (root, archive):
    with pytest.raises(DataError, match="max_image_bytes") as e:
      load_dataset(folder_cfg(path, tmp_path / "cache", max_image_bytes=20))
    assert "0000.png" in str(e.value)
  with pytest.raises(ConfigError, match="data.max_image_bytes"):
    load_dataset(folder_cfg(root, tmp_path / "cache", max_image_bytes=-1))


def test_huge_canvas_rejected_before_decoding(tmp_path):
  root = make_tree(tmp_path / "data")
  write_image(root / "train" / "a_red" / "wide.png", (0, 0, 0), size=(4000, 1))
  with pytest.raises(DataError, match="4000x1 pixels") as e:
    load_dataset(folder_cfg(root, tmp_path / "cache", max_image_bytes=10_000))
  assert "wide.png" in str(e.value)


def test_directory_symlink_escaping_root(tmp_path):
  root = make_tree(tmp_path / "data")
  outside = tmp_path / "outside"
  write_image(outside / "secret.png", (0, 0, 0))
  link = root / "train" / "a_red" / "link.png"
  link.symlink_to(outside / "secret.png")
  with pytest.raises(DataError, match="outside the data folder") as e:
    load_dataset(folder_cfg(root, tmp_path / "cache"))
  assert str(link) in str(e.value)
  link.unlink()
  (root / "train" / "d_linked").symlink_to(outside, target_is_directory=True)
  with pytest.raises(DataError, match="outside the data folder") as e:
    load_dataset(folder_cfg(root, tmp_path / "cache"))
  assert str(root / "train" / "d_linked") in str(e.value)


def test_directory_symlink_inside_root_is_followed(tmp_path):
  root = make_tree(tmp_path / "data")
  (root / "train" / "a_red" / "again.png").symlink_to(
      root / "train" / "a_red" / "0000.png")
  ds = load_dataset(folder_cfg(root, tmp_path / "cache"))
  assert ds.train_images.shape[0] == 13


# ----------------------------------------------------------------- digits ----


def test_digits_shapes_and_split():
  ds = load_dataset(data_cfg(source="digits"))
  assert ds.train_images.shape == (1297, 8, 8, 3)
  assert ds.test_images.shape == (500, 8, 8, 3)
  assert ds.train_images.dtype == np.uint8 and ds.test_labels.dtype == np.int32
  assert ds.class_names == tuple("0123456789")
  assert ds.train_images.max() == 255 and ds.train_images.min() == 0
  assert (ds.train_images[..., 0] == ds.train_images[..., 2]).all()
  # Stratified: every digit is in the test split in about its proportion.
  assert np.bincount(ds.test_labels, minlength=10).min() >= 45


def test_digits_split_is_fixed():
  a = load_dataset(data_cfg(source="digits"))
  cfg = _base_config()
  cfg.seed = 123  # The split must not depend on the run's seed.
  b = load_dataset(cfg.data)
  np.testing.assert_array_equal(a.test_images, b.test_images)
  np.testing.assert_array_equal(a.train_labels, b.train_labels)


def test_digits_options():
  ds = load_dataset(data_cfg(source="digits", channels=1, image_size=16,
                             num_test=300))
  assert ds.train_images.shape == (1497, 16, 16, 1)
  assert ds.test_images.shape == (300, 16, 16, 1)
  for bad in (1797, 5000, 0):
    with pytest.raises(ConfigError, match="data.num_test"):
      load_dataset(data_cfg(source="digits", num_test=bad))


# ------------------------------------------------------------------- tfds ----


@pytest.mark.slow
def test_tfds_mock_cifar10(monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  # Small read batches, so that concatenating batches is exercised.
  monkeypatch.setattr(tfds_source, "_READ_BATCH", 128)
  # Mock labels are random: 300 examples cover all 10 classes, as the loader
  # requires.
  with tfds.testing.mock_data(num_examples=300):
    ds = load_dataset(data_cfg(source="tfds", name="cifar10"))
  assert ds.train_images.shape == (300, 32, 32, 3)
  assert ds.test_images.shape == (300, 32, 32, 3)
  assert ds.train_images.dtype == np.uint8
  assert ds.train_labels.dtype == np.int32
  assert ((ds.train_labels >= 0) & (ds.train_labels < 10)).all()
  # The mock has no dataset_info.json, so the names are "0".."9".
  assert len(ds.class_names) == 10
  assert ds.description.startswith("tfds:cifar10")


@pytest.mark.slow
def test_tfds_errors():
  tfds = pytest.importorskip("tensorflow_datasets")
  with pytest.raises(ConfigError, match="data.name"):
    load_dataset(data_cfg(source="tfds", name=""))
  with pytest.raises(ConfigError, match="data.name"):
    load_dataset(data_cfg(source="tfds", name="no_such_dataset_xyz"))
  with tfds.testing.mock_data(num_examples=4):
    with pytest.raises(ConfigError, match="data.channels"):
      load_dataset(data_cfg(source="tfds", name="cifar10", channels=1))


# --------------------------------------------------------------- CIFAR-10 ----


@pytest.mark.slow
def test_cifar10_jpeg_copy(tmp_path):
  if not CIFAR.exists():
    pytest.skip(f"{CIFAR} is absent")
  cfg = folder_cfg(CIFAR, tmp_path / "cache")
  ds = load_dataset(cfg)
  assert ds.train_images.shape == (50000, 32, 32, 3)
  assert ds.test_images.shape == (10000, 32, 32, 3)
  assert ds.train_images.dtype == np.uint8
  assert ds.class_names == ("airplane", "automobile", "bird", "cat", "deer",
                            "dog", "frog", "horse", "ship", "truck")
  np.testing.assert_array_equal(np.bincount(ds.train_labels), [5000] * 10)
  np.testing.assert_array_equal(np.bincount(ds.test_labels), [1000] * 10)
  mean = ds.train_images.reshape(-1, 3).mean(0) / 255
  np.testing.assert_allclose(mean, [0.4913, 0.4821, 0.4465], atol=2e-3)
  again = load_dataset(cfg)
  assert again.description.endswith("(cached)")
  np.testing.assert_array_equal(again.test_images, ds.test_images)
  np.testing.assert_array_equal(again.train_labels, ds.train_labels)
