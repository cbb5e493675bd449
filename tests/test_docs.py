"""The README and docs/ point at things that exist.

Every relative link in README.md and docs/**/*.md resolves to a file or
folder (and, for a link into a markdown file, to one of its headings), and
every command in the code blocks of the README (and of docs/) names a file,
module, config or `jax-al` subcommand that exists. The opening two commands and .ci/run are
tests/test_readme.py's.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\n\n).)+?\1", re.S)  # never across a blank line
# [text](target) and ![alt](target); the target ends at the first space or ")".
_LINK = re.compile(r"!?\[(?:[^\]\n]|\n(?!\n))*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_EXTERNAL = ("http://", "https://", "mailto:", "ftp://")


def _prose(text: str) -> str:
  """The text outside fenced code blocks and code spans (links there are code)."""
  return _CODE_SPAN.sub("", _FENCE.sub("", text))


def links(text: str) -> list[str]:
  return [t for t in _LINK.findall(_prose(text)) if not t.startswith(_EXTERNAL)]


def slug(heading: str) -> str:
  """GitHub's anchor for a heading: lower case, punctuation dropped, spaces -> '-'."""
  h = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # a link keeps its text
  h = h.lower()
  h = re.sub(r"[^\w\- ]", "", h)
  return h.replace(" ", "-")


def anchors(path: Path) -> set[str]:
  """Every heading's anchor in a markdown file (repeats get -1, -2, ...)."""
  seen: dict[str, int] = {}
  out = set()
  for line in _FENCE.sub("", path.read_text()).splitlines():
    m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
    if not m:
      continue
    s = slug(m.group(1))
    n = seen.get(s, 0)
    seen[s] = n + 1
    out.add(s if n == 0 else f"{s}-{n}")
  return out


def _shown(p: Path) -> str:
  return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def broken_links(page: Path) -> list[str]:
  """The links of `page` that do not resolve, each with why."""
  bad = []
  for target in links(page.read_text()):
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    if not dest.exists():
      bad.append(f"{target}: no file {_shown(dest)}")
    elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
      bad.append(f"{target}: no heading #{anchor} in {_shown(dest)}")
  return bad


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page):
  assert broken_links(page) == []


def test_the_link_check_finds_a_broken_file_and_a_broken_anchor(tmp_path):
  """The checker itself: a missing file, a missing heading, and good links."""
  (tmp_path / "other.md").write_text("# Other page\n\n## A `code` heading, too\n")
  page = tmp_path / "page.md"
  page.write_text("# Top\n\n[ok](other.md) [ok](other.md#a-code-heading-too) [ok](#top)\n"
                  "[gone](missing.md) [gone](other.md#nowhere) ![img](nope.png)\n"
                  "[web](https://example.com/x.md) `[code](missing2.md)`\n\n"
                  "```\n[fenced](missing3.md)\n```\n")
  assert [b.split(":")[0] for b in broken_links(page)] == [
      "missing.md", "other.md#nowhere", "nope.png"]


# ------------------------------------------------------ commands in the README

def code_blocks(text: str) -> list[str]:
  """The README's fenced code blocks and 4-space indented blocks, continuation
  lines (a trailing backslash) joined."""
  blocks = [m.group(0).split("\n", 1)[1].rsplit("\n", 1)[0] for m in _FENCE.finditer(text)]
  rest = _FENCE.sub("", text)
  indented, cur = [], []
  for line in rest.splitlines() + [""]:
    if line.startswith("    ") and (cur or not line.lstrip().startswith(("-", "*"))):
      cur.append(line[4:])
    elif cur:
      indented.append("\n".join(cur))
      cur = []
  return [b.replace("\\\n", " ") for b in blocks + indented]


_HEADS = ("python", "python3", ".venv/bin/python", "jax-al", "bash")


def commands(block: str) -> list[list[str]]:
  """Each command of a block that starts with one of _HEADS, as words
  (environment assignments in front dropped, `&&`, `;` and `|` split)."""
  out = []
  for line in block.splitlines():
    line = line.split(" #", 1)[0].strip()
    for part in re.split(r"&&|;|\|\|?", line):
      try:
        words = shlex.split(part)
      except ValueError:  # an unbalanced quote: not a command line
        continue
      while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words = words[1:]
      if words and words[0] in _HEADS:
        out.append(words)
  return out


def _module_exists(name: str) -> bool:
  if name.split(".")[0] != "jax_al":
    return importlib.util.find_spec(name) is not None
  p = ROOT.joinpath(*name.split("."))
  return p.with_suffix(".py").is_file() or (p / "__main__.py").is_file()


def _config_exists(spec: str) -> bool:
  return (ROOT / spec.split(":", 1)[0]).is_file()


def command_problem(words: list[str]) -> str | None:
  """Why a command names nothing that exists, or None when it does."""
  from jax_al.commands import COMMANDS

  head, args = words[0], words[1:]
  if head == "jax-al":
    if not args or args[0] not in COMMANDS:
      return f"`jax-al {args[0] if args else ''}` is not in jax_al/commands.py COMMANDS"
  elif head == "bash":
    if not args or not (ROOT / args[0]).is_file():
      return f"no script {args[0] if args else '(none)'}"
  else:  # a python interpreter
    if args[:1] == ["-m"]:
      if len(args) < 2 or not _module_exists(args[1]):
        return f"no module {args[1] if len(args) > 1 else '(none)'}"
    elif args and args[0] != "-c" and not args[0].startswith("-"):
      if not (ROOT / args[0]).is_file():
        return f"no file {args[0]}"
  for i, a in enumerate(args):
    spec = a.split("=", 1)[1] if a.startswith("--config=") else (
        args[i + 1] if a == "--config" and i + 1 < len(args) else None)
    if spec and not spec.startswith(("PATH", "CONFIG")) and not _config_exists(spec):
      return f"no config file {spec.split(':', 1)[0]}"
  return None


def page_commands(page: Path) -> list[list[str]]:
  return [w for b in code_blocks(page.read_text()) for w in commands(b)]


def test_the_readme_has_commands_to_check():
  heads = {w[0] for w in page_commands(ROOT / "README.md")}
  assert {".venv/bin/python", "python", "jax-al"} <= heads, heads


@pytest.mark.parametrize("words", page_commands(ROOT / "README.md"), ids=lambda w: " ".join(w)[:60])
def test_every_readme_command_names_something_that_exists(words):
  assert command_problem(words) is None, " ".join(words)


@pytest.mark.parametrize("page", PAGES[1:], ids=[str(p.relative_to(ROOT)) for p in PAGES[1:]])
def test_every_command_in_docs_names_something_that_exists(page):
  """The same check for the code blocks of the docs/ pages."""
  assert [" ".join(w) for w in page_commands(page) if command_problem(w)] == []


@pytest.mark.parametrize("line, why", [
    ("python nope.py --config configs/digits.py", "no file nope.py"),
    ("python -m jax_al.nope", "no module jax_al.nope"),
    ("jax-al nope --x", "is not in jax_al/commands.py COMMANDS"),
    ("bash benchmarks/nope.sh speed", "no script benchmarks/nope.sh"),
    ("python run.py --config configs/nope.py:rank", "no config file configs/nope.py"),
    ("X=1 .venv/bin/python run.py --config=configs/nope.py", "no config file configs/nope.py"),
])
def test_the_command_check_refuses_what_does_not_exist(line, why):
  (words,) = commands(line)
  assert why in (command_problem(words) or "")


def test_the_command_check_accepts_what_exists():
  block = ("python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/python run.py "
           "--config configs/digits.py\njax-al select --pool p.npz  # a comment\n"
           "python -m jax_al.study --config configs/cifar10.py \\\n  --plan\n"
           "PYTHONPATH=. python benchmarks/selection_compiles.py\nbash benchmarks/gpu.sh study\n")
  found = [w for b in code_blocks("```bash\n" + block + "```\n") for w in commands(b)]
  assert [w[0] for w in found] == ["python3", ".venv/bin/python", "jax-al", "python", "python",
                                   "bash"]
  assert [command_problem(w) for w in found] == [None] * 6
