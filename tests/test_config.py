"""The schema (`jax_al.schema`) and the field checks built on it (`jax_al.config`)."""

import importlib.util
import json

import pytest

from conftest import REPO, tiny_digits_config
from configs import common
from jax_al import config as config_lib
from jax_al import schema
from jax_al import workdir as workdir_lib
from jax_al.errors import ConfigError
from jax_al.study import fields as study_fields

SHIPPED = sorted(p for p in (REPO / "configs").glob("*.py")
                 if p.name not in ("__init__.py", "common.py"))


def _load(path):
  spec = importlib.util.spec_from_file_location(f"cfg_{path.stem}", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def test_the_configs_folder_holds_the_shipped_configs():
  assert {p.stem for p in SHIPPED} >= {"digits", "cifar10", "cifar10_features", "embeddings"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_leaf_of_every_shipped_config_is_declared(path):
  """Each leaf of each config file (and each of its presets) is a schema
  field, and each run field of the schema is in it: no field lives outside
  the one table."""
  mod = _load(path)
  names = [None] + [n for n in ("users", "rank", "greedy", "random")]
  for preset in names:
    c = mod.get_config() if preset is None else mod.get_config(preset)
    leaves = schema.leaves(c.to_dict())
    assert schema.undeclared(c.to_dict()) == [], (path.name, preset)
    assert set(leaves) == set(config_lib.FIELDS), (path.name, preset)
    for name, spec in config_lib.FIELDS.items():  # every shipped value passes its check
      config_lib.check_field(name, leaves[name], spec)


def test_the_study_section_is_the_schemas():
  s = study_fields.study_defaults()
  assert schema.undeclared(s.to_dict(), "study.") == []
  assert set(schema.leaves(s.to_dict(), "study.")) == {
      k for k in schema.FIELDS if schema.section_of(k) == "study"}


def test_common_base_is_the_schemas_defaults():
  b = common.base()
  assert b.to_dict() == schema.defaults().to_dict()
  for name, f in schema.FIELDS.items():
    head, rest = name.split(".", 1) if "." in name else (name, "")
    node = schema.defaults(head if head == "study" else None)
    parts = (rest if head == "study" else name).split(".")
    for p in parts[:-1]:
      node = node[p]
    assert node[parts[-1]] == f.default, name


def test_every_default_passes_its_own_check_and_has_its_kind():
  kinds = {"int": int, "float": float, "bool": bool, "str": str}
  for name, f in schema.FIELDS.items():
    config_lib.check_field(name, f.default, f)
    if f.default is None:
      assert f.optional, name
    elif f.kind in kinds:
      assert type(f.default) is kinds[f.kind], name
    elif f.kind == "choice":
      assert f.default in f.options(), name
    else:
      assert isinstance(f.default, tuple), name


def test_a_bad_value_is_one_line_naming_the_field_the_value_and_the_fix():
  for name, bad in (("al.strategy", "entropyy"), ("model.name", "resnet"),
                    ("data.source", "folders"), ("data.coates.k", 1),
                    ("study.slurm.cpus", 0), ("compile_cache_dir", 3)):
    with pytest.raises(ConfigError) as e:
      config_lib.check_field(name, bad)
    msg = str(e.value)
    assert f"`{name}`" in msg and repr(bad) in msg and "\n" not in msg, msg
  with pytest.raises(ConfigError, match="Did you mean 'entropy'"):
    config_lib.check_field("al.strategy", "entropyy")


def test_a_config_missing_a_field_or_holding_an_undeclared_one_is_refused():
  c = tiny_digits_config("random")
  del c.train["flat_state"]
  with pytest.raises(ConfigError, match=r"`train\.flat_state` = 'missing'.*base\(\)"):
    config_lib.check_config(c)
  c = tiny_digits_config("random")
  with c.unlocked():
    c.al.lamda = 0.5  # misspelt: would otherwise be ignored
  with pytest.raises(ConfigError) as e:
    config_lib.check_config(c)
  assert "`al.lamda` = 0.5" in str(e.value) and "Did you mean 'al.lam'" in str(e.value)


def test_execution_only_and_added_fields_come_from_the_declarations():
  assert workdir_lib.EXECUTION_ONLY == schema.EXECUTION_ONLY
  assert set(schema.EXECUTION_ONLY) == {
      "resume", "compare.parallel", "compile_cache_dir", "train.skip_padding",
      "train.bn_mask", "train.epochs_per_call", "train.flat_state", "log.tensorboard"}
  assert workdir_lib.ADDED_FIELDS == schema.ADDED_FIELDS
  assert schema.ADDED_FIELDS["al.coreset_search"] == "dense"
  assert schema.ADDED_FIELDS["data.coates.k"] == 400
  for name, f in schema.FIELDS.items():
    assert not (f.execution_only and f.before is not schema.ALWAYS), name


def test_a_saved_config_is_completed_by_the_schema(tmp_path):
  """An old config.json lacking added and execution-only fields loads with
  every field: the added ones at the value it ran with, the others at their
  defaults. Execution-only fields never change the digest."""
  c = tiny_digits_config("random")
  old = json.loads(json.dumps(workdir_lib.config_record(c)))
  del old["train"]["flat_state"], old["train"]["skip_padding"], old["log"]
  (tmp_path / "config.json").write_text(json.dumps(old))
  assert workdir_lib.config_hash(workdir_lib.load_config(tmp_path)) \
      == workdir_lib.saved_hash(tmp_path) == workdir_lib.config_hash(c)
  del old["al"]["coreset_search"], old["data"]["coates"]
  (tmp_path / "config.json").write_text(json.dumps(old))
  loaded = workdir_lib.load_config(tmp_path)
  assert loaded.al.coreset_search == "dense" and loaded.data.coates.k == 400
  assert loaded.train.flat_state is False and loaded.train.skip_padding == "cond"
  assert loaded.log.tensorboard is False
  assert schema.undeclared(loaded.to_dict()) == []
  assert set(schema.leaves(loaded.to_dict())) == set(config_lib.FIELDS)
  assert workdir_lib.comparable(loaded.to_dict()) == workdir_lib.comparable(c.to_dict())
  config_lib.check_config(loaded)
