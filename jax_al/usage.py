"""`--help` of the absl commands (run.py, `python -m jax_al.study`).

absl's own `--help` exits with status 1 and prints every flag's default,
which for a config-dict flag (`--study`) is the whole dict. Here `--help`
(`-h`, `-?`, `--helpshort`) prints the command's docstring and one line per
flag of its module, exits 0, and points to `--helpfull`; `--helpfull` is
absl's full listing (the config's fields included), also with exit 0.
"""

from __future__ import annotations

import sys

SHORT = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort")
FULL = ("--helpfull", "-helpfull")


def _words(argv) -> list[str]:
  """The arguments before a `--` (after it nothing is a flag)."""
  out = []
  for a in argv[1:]:
    if a == "--":
      break
    out.append(a)
  return out


def wants_help(argv) -> str | None:
  """"short", "full" or None: which help `argv` asks for."""
  words = _words(argv)
  if any(a in FULL for a in words):
    return "full"
  if any(a in SHORT for a in words):
    return "short"
  return None


def short_text(doc: str, flag_values, module_name: str, config_flags=None) -> str:
  """The docstring, then `--name: help (default)` for each flag of `module_name`.

  Flags in `config_flags` ({name: where its fields are listed}: config files
  and config dicts) show that note instead of their default.
  """
  config_flags = config_flags or {}
  lines = [doc.strip(), "", "flags:"]
  for f in sorted(flag_values.get_flags_for_module(module_name), key=lambda f: f.name):
    name = f"--[no]{f.name}" if f.boolean else f"--{f.name}"
    text = f"  {name}: {f.help}"
    if f.name in config_flags:
      text += f" Its fields: --{f.name}.<field>=value ({config_flags[f.name]})."
    elif f.default not in (None, ""):
      text += f" (default: {f.default_as_str})"
    lines.append(text)
  lines += ["", "--helpfull lists every flag with its default."]
  return "\n".join(lines)


def handle(argv, doc: str, flag_values, module_name: str, config_flags=None) -> None:
  """Prints the help `argv` asks for and exits 0; returns when it asks for none.

  Call it after the command's flags are defined and before they are parsed.
  """
  kind = wants_help(argv)
  if kind is None:
    return
  if kind == "short":
    print(short_text(doc, flag_values, module_name, config_flags), flush=True)
    raise SystemExit(0)
  try:
    flag_values(list(argv[:1]) + ["--helpfull"])
  except SystemExit:
    pass
  sys.stdout.flush()
  raise SystemExit(0)


def stray_word_line(words, program: str = "") -> str:
  """One line for words on the command line that are not flags (issue 24.12):
  which word, and the flag it was probably meant to be."""
  word = words[0]
  more = f" (and {len(words) - 1} more word(s) after it)" if len(words) > 1 else ""
  bare = word.lstrip("-")
  if bare.endswith(".py") or ".py:" in bare:  # a config file given without its flag
    fix = f"pass it as --config {bare}"
  elif bare and bare[0].isalpha() and ("=" in bare or "." in bare):  # a flag without its --
    fix = f"write --{bare}"
  else:
    fix = ("every option is a flag --name=value" +
           (f"; see {program} --help" if program else "; see --help"))
  return (f"error: {word!r} is not a flag{more}: this command takes no positional "
          f"arguments. Fix: {fix}")


def program_name(argv0: str, module: str) -> str:
  """How the user called the command: `jax-al study`, `python run.py`, or
  `python -m MODULE` (runpy sets argv[0] to the module's file)."""
  import os
  base = os.path.basename(argv0)
  if base == "__main__.py" or base == module.rpartition(".")[2] + ".py" and "jax_al" in argv0:
    return f"python -m {module}"
  if base.endswith(".py"):
    return f"python {argv0}"
  return argv0


def argparse_prog(default: str) -> str:
  """An argparse `prog` that names the command as the user called it:
  `default` ("python -m jax_al.bench select") as it is, or with its module
  replaced by the installed command that `jax-al` put in sys.argv[0]
  ("jax-al bench select")."""
  words = default.split()
  command = words[2].partition(".")[2] if len(words) > 2 else ""
  head = sys.argv[0] if sys.argv else ""
  if command and head in (f"jax-al {command}", f"python -m jax_al {command}"):
    return " ".join([head, *words[3:]])
  return default


def refuse_stray_words(argv, module: str) -> None:
  """Raises SystemExit with `stray_word_line` when absl left words in `argv`
  (argv[0] is the program), instead of absl's page of help and "unexpected
  arguments"."""
  if len(argv) > 1:
    raise SystemExit(stray_word_line(list(argv[1:]), program_name(argv[0], module)))
