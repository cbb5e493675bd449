"""The README's opening commands and .ci/run stay in step."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _first_block():
  text = (ROOT / "README.md").read_text()
  block = text.split("```bash\n", 1)[1].split("```", 1)[0]
  return [l for l in block.splitlines() if l.strip()]


def test_readme_opens_with_exactly_two_commands():
  lines = _first_block()
  assert len(lines) == 2
  assert "run.py --config configs/digits.py" in lines[0]
  assert "pytest" in lines[1]


def test_ci_runs_the_readme_test_command_word_for_word():
  ci = (ROOT / ".ci" / "run").read_text().splitlines()
  assert _first_block()[1] in ci
