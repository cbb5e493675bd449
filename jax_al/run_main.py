"""Entry point: parses flags and calls the library.

    python run.py --config configs/digits.py          # or: jax-al run --config ...
    python run.py --config configs/cifar10.py:rank --config.al.lam=0.5 --workdir runs/x
    python run.py --config configs/digits.py --config.compare.strategies=random,entropy

Rerunning the same command with the same --workdir resumes after the last
finished cycle; --overwrite replaces the run instead (the old one comes back
if the new one fails before its first checkpoint). Bad flags and bad config
values stop with one line that names the field, the value and the fix (exit
1); Ctrl-C and SIGTERM stop with one line (exit 130 and 143), keeping every
finished cycle.
"""

# `python run.py`, `jax-al run` and `python -m jax_al run` all run `entry`:
# importing this module defines the flags (config_flags reads the
# `--config.*` overrides from sys.argv as --config is defined), so import it
# only to run the command, once per process.

import datetime
import os
import sys
from pathlib import Path

from absl import app
from absl import logging
from absl import flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/cifar10.py[:preset].",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Output folder; default runs/<config>-<time>.")
flags.DEFINE_bool("overwrite", False, "Replace the outputs of an existing run in --workdir.")
flags.mark_flags_as_required(["config"])
FLAGS = flags.FLAGS


def default_workdir(config_arg: str) -> str:
  name = Path(config_arg.split(":")[0]).stem
  preset = config_arg.split(":")[1] if ":" in config_arg else ""
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  return os.path.join("runs", f"{name}{'-' + preset if preset else ''}-{stamp}")


def parse_flags(argv):
  from jax_al.cli import check_config_arg
  from jax_al.errors import critical
  # A signal during these imports would leave modules half-initialised: it
  # waits until the flags are parsed, then stops the command with its line.
  with critical():
    from jax_al import usage
    usage.handle(argv, __doc__, FLAGS, __name__, config_flags={"config": "the fields of the "
                                                                 "config file"})
    check_config_arg(argv)  # before config_flags executes the file
    try:
      rest = FLAGS(argv)
      FLAGS.config.keys()  # a config file that failed to load raises only when read
    except SystemExit:
      raise
    except Exception as e:  # flags.Error, or what a config override or file raised
      from jax_al.cli import explain_flag_error
      raise SystemExit(f"error: {explain_flag_error(argv, e)}") from None
    from jax_al import loop  # pylint: disable=unused-import  # imports jax, inside the section
  return rest


# ---------------------------------------------------------------- main -------


def main(argv):
  from jax_al import usage
  usage.refuse_stray_words(argv, __name__)
  if not FLAGS["verbosity"].present:  # orbax logs every checkpoint step at INFO
    logging.set_verbosity(logging.WARNING)
  from jax_al.cli import run_command

  workdir = FLAGS.workdir or default_workdir(config_flags.get_config_filename(FLAGS["config"]))
  return run_command(FLAGS.config, workdir, FLAGS.overwrite)


def entry() -> None:
  """Runs the command on sys.argv (sys.argv[0] is the program's name)."""
  from jax_al.cli import config_imports_on_path
  from jax_al.errors import Interrupted, handle_signals
  config_imports_on_path(sys.argv)  # an installed command: the config's `from configs import`
  with handle_signals():  # from the start: a SIGTERM while jax imports gets its line too
    try:
      app.run(main, flags_parser=parse_flags)
    except Interrupted as e:  # outside a run (flags, imports): nothing was started
      from jax_al.cli import exit_now
      print(e.message(), file=sys.stderr)
      exit_now(SystemExit(e.exit_code))
    except SystemExit as e:
      from jax_al.cli import exit_now
      exit_now(e)
