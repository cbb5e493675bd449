"""Command line of the study; see `jax_al/study/__init__.py` and docs/study.md.

    python -m jax_al.study --config configs/digits.py --out runs/study [--mode ci|full]
        [--plan] [--executor local|slurm] [--config.<field>=...] [--study.<field>=...]

`--config.<field>` overrides pass through to every run of the study;
`--study.<field>` sets the study's own fields (trials, lams, baselines,
slurm, ...: `jax_al/schema.py` `study.*`, checked by `jax_al/study/fields.py`). Bad input stops with
one line naming the flag or field, the value and the fix (exit 1), before
anything is written.
"""

from __future__ import annotations

import difflib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jax_al import usage
from jax_al.study import fields

flags.DEFINE_string("out", None, "The study's folder (new, empty, or a study's to resume it); "
                    "--plan needs none.")
flags.DEFINE_string("mode", "full", "full: the config's own sizes (evidence); ci: tiny (tests).")
flags.DEFINE_bool("plan", False, "Print the runs and the estimated cost; run nothing.")
flags.DEFINE_string("executor", "local", "local: jobs in this process; slurm: through submitit.")
FLAGS = flags.FLAGS


def define_config_flags() -> None:
  """--config and --study; config_flags reads their overrides from argv as they are defined."""
  config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/digits.py[:preset].",
                                  lock_config=True)
  config_flags.DEFINE_config_dict("study", fields.study_defaults(), "The study's own fields.",
                                  lock_config=True)
  flags.mark_flags_as_required(["config"])  # --out: checked in main (a plan needs none)


def _explain_study(argv, exc) -> str | None:
  """One line for a bad --study.* flag, or None when no such flag is at fault."""
  from jax_al.cli import _flag_values, _parse_like

  defaults = fields.study_defaults()
  for flag, value in _flag_values(argv, "study"):
    if flag == "study":
      continue
    parts = flag.split(".")[1:]
    node = defaults
    for depth, part in enumerate(parts):
      keys = list(node.keys()) if hasattr(node, "keys") else []
      if part not in keys:
        close = difflib.get_close_matches(part, keys, n=1)
        hint = f"did you mean --study.{'.'.join(parts[:depth] + [close[0]])}? " if close else ""
        where = "study." + ".".join(parts[:depth]) if depth else "study"
        return (f"unknown study field `{'.'.join(parts)}` (flag --{flag}={value}). Fix: {hint}"
                f"the fields of {where} are: {', '.join(sorted(keys))}")
      if depth < len(parts) - 1:
        node = node[part]
    type_ = node.get_type(parts[-1])
    try:
      _parse_like(value, type_)
    except (ValueError, SyntaxError, TypeError):
      kind = {"int": "an integer", "float": "a number", "bool": "true or false",
              "str": "a string"}.get(type_.__name__, type_.__name__)
      return (f"study field `{'.'.join(parts)}` = {value!r}: expected {kind}; fix: e.g. "
              f"--{flag}={node[parts[-1]] if node[parts[-1]] is not None else 2}")
  return None


def parse_flags(argv):
  from jax_al.cli import check_config_arg, explain_flag_error
  from jax_al.errors import critical

  with critical():
    check_config_arg(argv)
    try:
      # Defining the config-dict flags already reads their --study.x overrides.
      define_config_flags()
      usage.handle(argv, __doc__, FLAGS, __name__, config_flags={
          "config": "the fields of the config file", "study": "listed with their defaults "
          "by --helpfull"})
      rest = FLAGS(argv)
      FLAGS.config.keys()
    except SystemExit:
      raise
    except Exception as e:  # flags.Error or what a config override raised
      msg = _explain_study(argv, e)
      if msg is None and not any(a.startswith(("--config", "--noconfig")) and "." in a
                                 for a in argv[1:]):
        text = str(e).strip().splitlines()
        msg = (text[-1] if text else type(e).__name__).rstrip(".") + \
            ". Fix: see python -m jax_al.study --helpshort"
      raise SystemExit(f"error: {msg or explain_flag_error(argv, e)}") from None
  return rest


def given_config_fields(argv) -> set:
  from jax_al.cli import _flag_values
  return {f[len("config."):] for f, _ in _flag_values(argv, "config") if f != "config"}


def main(argv):
  usage.refuse_stray_words(argv, "jax_al.study")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  from jax_al import study
  from jax_al.errors import Interrupted, JaxALError, handle_signals

  spec = config_flags.get_config_filename(FLAGS["config"])
  if FLAGS.out is None and not FLAGS.plan:
    raise SystemExit("error: flag --out is required to run a study: pass a new folder (or a "
                     "study's, to resume it), e.g. --out runs/study; --plan needs none")
  with handle_signals():
    try:
      st = study.build(FLAGS.config, FLAGS.study, config_spec=spec, mode=FLAGS.mode,
                       out=FLAGS.out, executor=FLAGS.executor,
                       given=given_config_fields(sys.argv))
      if FLAGS.plan:
        if st.out is not None:  # the plan reads the rates measured there: it must be a study's
          study.check_out(st.out)
        print(study.plan_text(st))
        return 0
      study.check_out(st.out)
      study.check_jobs(st)
      print(study.plan_text(st), flush=True)
      print(flush=True)
      study.run_study(st, log=lambda m: print(m, flush=True))
    except Interrupted as e:
      print(f"{e.message().replace('rerun the same command', 'rerun the same study command')}",
            file=sys.stderr, flush=True)
      raise SystemExit(e.exit_code) from None
    except JaxALError as e:
      raise SystemExit(f"error: {e}") from None
  return 0


if __name__ == "__main__":  # also `jax-al study` (jax_al/commands.py runs this module)
  from jax_al.cli import config_imports_on_path
  from jax_al.errors import Interrupted, handle_signals
  config_imports_on_path(sys.argv)
  with handle_signals():
    try:
      app.run(main, flags_parser=parse_flags)
    except Interrupted as e:
      from jax_al.cli import exit_now
      print(e.message(), file=sys.stderr)
      exit_now(SystemExit(e.exit_code))
    except SystemExit as e:
      from jax_al.cli import exit_now
      exit_now(e)
