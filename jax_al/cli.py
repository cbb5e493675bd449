"""Command-line helpers for `run.py`: checks of the config argument, one-line
explanations of flag errors, and the run itself with its exit codes.

ml_collections' config_flags reports a bad override as a traceback or a bare
"FATAL" line. `check_config_arg` refuses a --config that is not a config
file before config_flags executes it, and `explain_flag_error` re-reads the
config file and the `--config.*` flags itself to name the field, the value
and the fix. `run_command` runs a config and turns every expected failure
into one line on stderr: exit 1 for bad input, 130 for Ctrl-C, 143 for
SIGTERM.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import os
import sys
from pathlib import Path




def config_import_root(path: str) -> str | None:
  """The folder to put on sys.path so that config file `path` can import its
  own package's modules (the repository's configs do `from configs import
  common`): the folder above the config's folder when that folder is a
  package (holds __init__.py), else None. run.py, living above configs/,
  gets this for free; an installed package run from elsewhere does not."""
  folder = Path(path.partition(":")[0]).resolve().parent
  return str(folder.parent) if (folder / "__init__.py").is_file() else None


def config_imports_on_path(argv) -> None:
  """Makes `--config`'s own package importable before absl parses it (the
  config file may `from configs import common`), wherever the command runs."""
  import sys

  for flag, value in _flag_values(argv, "config"):
    if flag == "config" and value and (root := config_import_root(value)):
      sys.path.insert(0, root)

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


def check_config_file(spec: str) -> None:
  """Raises SystemExit with one line unless `spec` names a config file.

  A config file is an existing Python file that defines `get_config` at its
  top level; an optional `:preset` must not be empty. Checked from the
  file's syntax tree, without executing it.
  """
  path, colon, preset = spec.partition(":")
  fix = "pass a config file such as --config configs/digits.py"
  if not os.path.isfile(path):
    raise SystemExit(f"error: flag --config: config file {path!r} does not exist. Fix: pass "
                     "an existing file, e.g. --config configs/digits.py")
  if not path.endswith(".py"):
    raise SystemExit(f"error: flag --config: {path!r} is not a config file (a Python file "
                     f"defining get_config()). Fix: {fix}")
  try:
    with open(path, "rb") as f:
      tree = ast.parse(f.read(), filename=path)
  except (SyntaxError, ValueError, OSError) as e:
    raise SystemExit(f"error: flag --config: {path!r} cannot be parsed as Python "
                     f"({type(e).__name__}: {e}). Fix: {fix}") from None
  if not any(isinstance(n, ast.FunctionDef) and n.name == "get_config" for n in tree.body):
    raise SystemExit(f"error: flag --config: {path!r} is not a config file: it defines no "
                     f"get_config() function. Fix: {fix}")
  if colon and not preset.strip():
    from jax_al import presets
    raise SystemExit(f"error: flag --config: {spec!r} ends in ':' with no preset name. Fix: "
                     f"drop the ':' or name a preset: {', '.join(presets.names())}")


def check_config_arg(argv) -> None:
  """`check_config_file` for the last --config of a command line, if any."""
  specs = [v for f, v in _flag_values(argv, "config") if f == "config" and v is not None]
  if specs:
    check_config_file(specs[-1])


def exit_now(e: SystemExit) -> None:
  """Ends a failed command at once: its one line, flushed, then `os._exit`.

  A normal exit would run the interpreter's teardown, where I/O that orbax
  and TensorStore still had in flight when a damaged checkpoint failed prints
  pages of "Event loop is closed" tracebacks after the one-line error.
  Success (code 0) exits normally.
  """
  import sys

  code = e.code
  if code is None or code == 0:
    raise e
  if not isinstance(code, int):
    print(code, file=sys.stderr)
    code = 1
  sys.stdout.flush()
  sys.stderr.flush()
  _save_coverage()
  os._exit(code)


def _save_coverage() -> None:
  # os._exit skips atexit, where a measuring coverage.py saves its data: save
  # it here, or a failed command is never counted (the tests measure them).
  cov_module = sys.modules.get("coverage")
  cov = cov_module.Coverage.current() if cov_module is not None else None
  if cov is not None:
    cov.stop()
    cov.save()


def run_command(config, workdir: str, overwrite: bool) -> int:
  """Runs `config` (a comparison when compare.strategies is set); returns 0.

  Ctrl-C and SIGTERM end the run with one line and exit codes 130 and 143;
  bad input with one line and exit code 1 (both through SystemExit).
  """
  import sys

  from jax_al import compare, loop
  from jax_al.errors import Interrupted, JaxALError, handle_signals

  with handle_signals():
    try:
      if compare.strategies_of(config):
        compare.run(config, workdir, overwrite=overwrite)
      else:
        loop.run(config, workdir, overwrite=overwrite)
    except Interrupted as e:
      print(f"{e.message()}", file=sys.stderr, flush=True)
      raise SystemExit(e.exit_code) from None
    except KeyboardInterrupt:  # arrived before the handlers were installed
      print(Interrupted(2).message(), file=sys.stderr, flush=True)
      raise SystemExit(130) from None
    except JaxALError as e:
      raise SystemExit(f"error: {e}") from None
  return 0


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
