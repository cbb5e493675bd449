"""Writes a config's features as an embeddings file (data.source = "embeddings").

    python -m jax_al.export --config configs/cifar10_features.py --out cifar10_coates.npz
    python run.py --config configs/embeddings.py --config.data.path=cifar10_coates.npz

The config's data section is loaded as a run would load it (the Coates
features come from the decoded-array cache when they were computed before)
and its train and test features are written, flattened per row, with the
labels and class names (`jax_al.data.embeddings.save`). `--config.*` flags
override fields as in run.py. The file must not exist yet: nothing is
overwritten. A config that gives pixels (data.features empty) is refused.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Config file whose data section is exported, "
                                "e.g. configs/cifar10_features.py.", lock_config=True)
flags.DEFINE_string("out", None, "The .npz file to write (must not exist).")
flags.mark_flags_as_required(["config", "out"])


def export(data_cfg, out) -> Path:
  """Loads the features of `data_cfg` (config.data) and writes them to `out`."""
  from jax_al.data import embeddings, load_dataset
  from jax_al.errors import ConfigError, DataError

  out = Path(out)
  if out.exists() or out.is_symlink():  # before minutes of feature computation
    raise DataError(str(out), "already exists", "choose a new path; the file is left as it is")
  if out.suffix != ".npz":
    raise DataError(str(out), "does not end in .npz", "name the file <something>.npz")
  ds = load_dataset(data_cfg)
  if not np.issubdtype(ds.train_images.dtype, np.floating):
    raise ConfigError("data.features", data_cfg.features,
                      "the config gives pixels, not features; set data.features=coates "
                      "(or export features of your own model with np.savez)")
  return embeddings.save(out, ds)


def parse_flags(argv):
  """Short --help (exit 0) and one-line flag errors, as run.py's."""
  from jax_al import cli, usage

  usage.handle(argv, __doc__, flags.FLAGS, __name__,
               config_flags={"config": "the fields of the config file"})
  cli.check_config_arg(argv)
  try:
    rest = flags.FLAGS(argv)
    flags.FLAGS.config.keys()
  except SystemExit:
    raise
  except Exception as e:  # pylint: disable=broad-except  # flags.Error, a config override
    raise SystemExit(f"error: {cli.explain_flag_error(argv, e)}") from None
  return rest


def main(argv) -> None:
  from jax_al import usage
  usage.refuse_stray_words(argv, "jax_al.export")
  from jax_al.errors import JaxALError

  try:
    path = export(flags.FLAGS.config.data, flags.FLAGS.out)
  except JaxALError as e:
    raise SystemExit(f"error: {e}") from None
  print(f"Wrote {path}: run it with python run.py --config configs/embeddings.py "
        f"--config.data.path={path}")


if __name__ == "__main__":
  from jax_al.cli import config_imports_on_path
  config_imports_on_path(sys.argv)
  sys.exit(app.run(main, flags_parser=parse_flags))
