"""`jax-al <command> [flags]`: the installed command (also `python -m jax_al`).

    jax-al run --config configs/digits.py [--workdir W] [--config.<field>=...]
    jax-al select --pool pool.npz --strategy margin --budget 100 --out picks.csv
    jax-al round next labels/ --budget 20
    jax-al report RUNS... --out report/
    jax-al study --config configs/digits.py --out runs/study [--plan]
    jax-al bench selection --quick

commands:
  run     one active-learning run or comparison (the same as `python run.py`)
  select  pick the next rows to label from a file of your model's outputs
  round   labeling rounds with your annotators: init, next, add, status, undo
  report  tables and plots of finished runs (`python -m jax_al.report`)
  study   the four-question study of a config (`python -m jax_al.study`)
  bench   benchmarks (`python -m jax_al.bench`)

`jax-al <command> --help` describes each command's flags.
"""

from __future__ import annotations

import os
import sys


def _run(argv):
  from jax_al import run_main
  run_main.entry()


def _select(argv):
  from jax_al import select_files
  select_files.entry(argv)


def _round(argv):
  from jax_al.rounds import commands
  commands.main(argv)


def _report(argv):
  from jax_al import report
  report.main(argv)


def _study(argv):
  # The study's command line is its package's __main__ (absl flags defined at
  # import): run it as `python -m jax_al.study` does, on this sys.argv.
  import runpy
  runpy.run_module("jax_al.study", run_name="__main__", alter_sys=False)


def _bench(argv):
  from jax_al import usage
  from jax_al.bench import __main__ as bench
  if argv and argv[0] in usage.SHORT:  # argparse's own help lists ~40 flags: say less
    print(bench.__doc__.strip().replace("python -m jax_al.bench", "jax-al bench"))
    print("\nEvery flag: jax-al bench --helpfull; a part's own: jax-al bench selection --help")
    raise SystemExit(0)
  if argv and argv[0] in usage.FULL:
    argv = ["--help", *argv[1:]]
  try:
    bench.main(argv)
  except SystemExit as e:  # its own one line for arguments it does not know
    text = str(e.code) if isinstance(e.code, str) else ""
    if text.startswith("error: unrecognized arguments: "):
      stray = [w for w in text.split(": ", 2)[2].split() if not w.startswith("-")]
      if stray:
        raise SystemExit(usage.stray_word_line(stray, "jax-al bench")) from None
    raise


# name: function of the arguments after the name. The absl commands (run,
# study) read sys.argv, which `main` sets to ["jax-al NAME", *args] (the run's
# closing summary reads that argv[0] to print its resume command).
COMMANDS = {
    "run": _run,
    "select": _select,
    "report": _report,
    "study": _study,
    "bench": _bench,
    "round": _round,
}


def _program(argv0: str) -> str:
  base = os.path.basename(argv0)
  return "python -m jax_al" if base in ("__main__.py", "-m", "-c") else base or "jax-al"


def _one_line_argparse_errors() -> None:
  """argparse prints its usage before an error (2+ lines); the subcommands'
  parsers here say only the error, in one line, and a stray word gets the
  same "is not a flag" line as the absl commands."""
  import argparse

  from jax_al import usage

  def error(self, message):
    if message.startswith("unrecognized arguments: "):
      words = message[len("unrecognized arguments: "):].split()
      stray = [w for w in words if not w.startswith("-")]
      if stray:
        self.exit(2, usage.stray_word_line(stray, self.prog) + "\n")
    self.exit(2, f"error: {message}. Fix: see {self.prog} --help\n")

  argparse.ArgumentParser.error = error


def main(argv=None) -> None:
  argv = list(sys.argv if argv is None else argv)
  prog, args = _program(argv[0]), argv[1:]
  if not args or args[0] in ("-h", "--help", "-help", "--helpshort", "help"):
    print(__doc__.strip())
    raise SystemExit(0 if args else 2)
  name, rest = args[0], args[1:]
  if name not in COMMANDS:
    from jax_al.errors import suggest
    what = "is not a command" if not name.startswith("-") else "is a flag, not a command"
    print(f"error: {name!r} {what}. Fix: {prog} <command> ...; {suggest(name, COMMANDS)}",
          file=sys.stderr)
    raise SystemExit(2)
  sys.argv = [f"{prog} {name}", *rest]
  _one_line_argparse_errors()
  COMMANDS[name](rest)


if __name__ == "__main__":
  main()
