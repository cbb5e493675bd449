"""Entry point: parses flags and calls the library.

    python run.py --config configs/digits.py
    python run.py --config configs/cifar10.py:rank --config.al.lam=0.5 --workdir runs/x
    python run.py --config configs/digits.py --config.compare.strategies=random,entropy

Rerunning the same command with the same --workdir resumes after the last
finished cycle; --overwrite replaces the run instead. Bad flags and bad
config values stop with one line that names the field, the value and the fix.
"""

import ast
import datetime
import difflib
import importlib.util
import os
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


# ------------------------------------------------------------ flag errors ----


def _flag_values(argv, name: str):
  """(flag, value) pairs of `--name=value`, `--name value` and `--[no]name.x` forms."""
  out, i = [], 1
  while i < len(argv):
    a = argv[i]
    if a == "--":
      break
    if a.startswith("--"):
      body = a[2:]
      flag, eq, value = body.partition("=")
      if not eq and flag.startswith("no") and flag[2:].startswith(name + "."):
        out.append((flag[2:], "false"))
      elif flag == name or flag.startswith(name + "."):
        if not eq and flag == name and i + 1 < len(argv):
          value, i = argv[i + 1], i + 1
        elif not eq:
          value = None  # a bare boolean override, or a value in the next argument
          if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value, i = argv[i + 1], i + 1
        out.append((flag, value))
    i += 1
  return out


def _load_config(spec: str):
  """Runs the config file's get_config like config_flags does (errors surface here)."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise SystemExit(f"error: flag --config: config file {path!r} does not exist. Fix: pass "
                     "an existing file, e.g. --config configs/digits.py")
  module_spec = importlib.util.spec_from_file_location("_run_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def _parse_like(value: str, type_):
  """Raises ValueError unless `value` parses as the field's type."""
  if type_ is bool:
    if value is None or value.lower() in ("true", "false", "1", "0"):
      return
    raise ValueError
  if value is None:
    raise ValueError
  if type_ is int:
    int(value)
  elif type_ is float:
    float(value)
  elif type_ in (tuple, list):
    parsed = ast.literal_eval(value)
    if not isinstance(parsed, (tuple, list, int, float, str)):
      raise ValueError


def explain_flag_error(argv, exc: BaseException) -> str:
  """One line naming the field, the value and the fix for a flag-parsing failure."""
  from jax_al.errors import JaxALError

  specs = [v for f, v in _flag_values(argv, "config") if f == "config" and v]
  if not specs:
    return f"{str(exc).rstrip('.')}. Fix: pass --config configs/digits.py (or another config file)"
  try:
    config = _load_config(specs[-1])
  except JaxALError as e:
    return f"{e} (in --config {specs[-1]})"
  except SystemExit as e:
    return str(e.code).removeprefix("error: ")
  except Exception as e:  # pylint: disable=broad-except
    return f"flag --config {specs[-1]}: the config file failed ({type(e).__name__}: {e})"
  for flag, value in _flag_values(argv, "config"):
    if flag == "config":
      continue
    field = flag[len("config."):]
    node, parts = config, field.split(".")
    for depth, part in enumerate(parts):
      keys = list(node.keys()) if hasattr(node, "keys") else []
      if part not in keys:
        where = ".".join(parts[:depth]) or "the config"
        close = difflib.get_close_matches(part, keys, n=1)
        hint = (f"did you mean --config.{'.'.join(parts[:depth] + [close[0]])}? "
                if close else "")
        return (f"unknown config field `{field}` (flag --{flag}={value}). Fix: {hint}"
                f"the fields of {where} are: {', '.join(sorted(keys))}")
      if depth < len(parts) - 1:
        node = node[part]
    default, type_ = node[parts[-1]], node.get_type(parts[-1])
    try:
      _parse_like(value, type_)
    except (ValueError, SyntaxError, TypeError):
      example = str(default).lower() if type_ is bool else repr(default)
      kind = {"int": "an integer", "float": "a number", "bool": "true or false",
              "tuple": "a tuple", "list": "a list"}.get(type_.__name__, f"a {type_.__name__}")
      return (f"config field `{field}` = {value!r}: expected {kind}; "
              f"fix: e.g. --{flag}={example}")
  text = str(exc).strip().splitlines()
  return (text[-1].rstrip(".") if text else type(exc).__name__) + (
      ". Fix: check the flags (--helpshort)")


def parse_flags(argv):
  try:
    rest = FLAGS(argv)
    FLAGS.config.keys()  # a config file that failed to load raises only when read
    return rest
  except SystemExit:
    raise
  except Exception as e:  # flags.Error, or what a config override or file raised
    raise SystemExit(f"error: {explain_flag_error(argv, e)}") from None


# ---------------------------------------------------------------- main -------


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS["verbosity"].present:  # orbax logs every checkpoint step at INFO
    logging.set_verbosity(logging.WARNING)
  from jax_al import compare, loop
  from jax_al.errors import JaxALError

  config = FLAGS.config
  workdir = FLAGS.workdir or default_workdir(config_flags.get_config_filename(FLAGS["config"]))
  try:
    if compare.strategies_of(config):
      compare.run(config, workdir, overwrite=FLAGS.overwrite)
    else:
      loop.run(config, workdir, overwrite=FLAGS.overwrite)
  except JaxALError as e:
    raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
