"""The output ledger (jax_al/files.py): no command replaces a file it did not write."""

from __future__ import annotations

import json

import pytest

from jax_al import files


def test_a_users_file_is_refused_in_one_line_and_left_byte_identical(tmp_path):
  notes = tmp_path / "notes.json"
  notes.write_bytes(b"my notes\n")
  with pytest.raises(files.OutputError) as e:
    files.check_output(notes, "--json")
  msg = str(e.value)
  assert "\n" not in msg and "--json" in msg and str(notes) in msg and "Fix:" in msg
  assert notes.read_bytes() == b"my notes\n"
  assert not (tmp_path / files.LEDGER).exists()  # the check writes nothing


def test_a_file_jax_al_wrote_is_replaced(tmp_path):
  out = tmp_path / "sub" / "b.json"
  files.check_output(out, "--json")  # absent: allowed
  files.write_output_json(out, {"a": 1})
  assert json.loads(out.read_text()) == {"a": 1}
  assert files.written_by_us(out)
  files.check_output(out, "--json")  # ours: allowed again
  files.write_output(out, b"\x00bytes")
  assert out.read_bytes() == b"\x00bytes" and files.written_by_us(out)


def test_a_file_edited_after_jax_al_wrote_it_is_the_users(tmp_path):
  out = tmp_path / "b.json"
  files.write_output_json(out, {"a": 1})
  out.write_text('{"a": 1, "mine": true}\n')
  with pytest.raises(files.OutputError, match="did not write it"):
    files.check_output(out, "--json")


def test_a_ledger_that_is_not_ours_is_refused(tmp_path):
  ledger = tmp_path / files.LEDGER
  ledger.write_text('{"something": "else"}')
  out = tmp_path / "b.json"
  for attempt in (lambda: files.check_output(out, "--json"),  # refused by the check, unwritten
                  lambda: files.check_output_dir(tmp_path, "--profile-dir"),
                  lambda: files.write_output_json(out, {"a": 1})):
    with pytest.raises(files.OutputError) as e:
      attempt()
    assert "\n" not in str(e.value) and str(ledger) in str(e.value)
  assert ledger.read_text() == '{"something": "else"}' and not out.exists()
  # A ledger of ours does not vouch for a file the user put there by that name.
  ledger.unlink()
  files.write_output_json(tmp_path / "other.json", {})
  out.write_text("theirs")
  with pytest.raises(files.OutputError):
    files.check_output(out, "--json")


def test_legacy_recogniser_and_folders(tmp_path):
  old = tmp_path / "old.json"
  old.write_text('{"meta": {}}')
  files.check_output(old, "--json", legacy=lambda p: True)
  with pytest.raises(files.OutputError):  # a recogniser that fails means "not ours"
    files.check_output(old, "--json", legacy=lambda p: json.loads("not json"))
  with pytest.raises(files.OutputError, match="is a folder"):
    files.check_output(tmp_path, "--json")


def test_output_dirs(tmp_path):
  files.check_output_dir(tmp_path / "new", "--profile-dir")
  empty = tmp_path / "empty"
  empty.mkdir()
  files.check_output_dir(empty, "--profile-dir")
  theirs = tmp_path / "theirs"
  theirs.mkdir()
  (theirs / "paper.tex").write_text("x")
  with pytest.raises(files.OutputError, match="did not put there"):
    files.check_output_dir(theirs, "--profile-dir")
  assert (theirs / "paper.tex").read_text() == "x"
  ours = files.claim_output_dir(tmp_path / "ours")
  (ours / "trace.json.gz").write_bytes(b"t")
  files.check_output_dir(ours, "--profile-dir")  # marked as ours: filled again


def test_an_edited_file_is_refused_even_where_the_legacy_test_accepts_it(tmp_path):
  # The legacy recogniser (files from before the ledger) must not excuse a
  # file the ledger records with other bytes: a hand-edited report.md or bench
  # JSON beside our other outputs is the user's now.
  out = tmp_path / "report.md"
  files.write_output(out, "# report\n")
  out.write_text("# report\nmy edit\n")
  with pytest.raises(files.OutputError, match="edited"):
    files.check_output(out, "--out", legacy=lambda p: True)
  assert out.read_text() == "# report\nmy edit\n"
  # A file the ledger does not record still goes by the recogniser.
  (tmp_path / "old.md").write_text("old\n")
  files.check_output(tmp_path / "old.md", "--out", legacy=lambda p: True)
