"""Writes tests/golden/study_k1.json: the plan text and job list (workdir, seed, phase,
digest of the full run config) of two one-trial-per-job studies, from the code of
commit d2c230b, before grouped jobs existed. tests/test_study.py holds later code to it.

    PYTHONPATH=. python tests/golden/make_study_k1.py > tests/golden/study_k1.json
"""
import hashlib, json, sys
from configs import digits, cifar10
from jax_al import study
# The cost constants of that commit: the calibration on the committed digits
# study came later (tests/test_limits.py holds it); the plans here pin the rest.
study.cost.CALIBRATED = {}
# That commit's dataset table: TFDS cifar10 had 50,000 training and 10,000 test
# images without looking (today the sizes come from the prepared dataset, if any).
from jax_al import data
data.SIZES["tfds"] = lambda d: (50_000, 10_000)
# Fields added to every config after that commit, each at the value that keeps
# the code's results of before (workdir.ADDED_FIELDS): left out of the digest.
LATER = {"al.coreset_search": "dense"}
def digest(cfg):
  d = cfg.to_dict()
  for field, value in LATER.items():
    *path, leaf = field.split(".")
    node = d
    for part in path: node = node[part]
    assert node.pop(leaf) == value, field
  return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]
def build(cfg, spec, mode, **kw):
  f = study.fields.study_defaults()
  with f.unlocked():
    for k, v in kw.items(): f[k] = v
  return study.build(cfg, f, config_spec=spec, mode=mode, out="OUT")
out = {}
# That commit's assumed throughputs (its THROUGHPUT table), given: the plan
# measures them now, or states them unknown for another device than this one.
# The plan's basis line names the source ("given by ..."); test_study.py
# compares it with that part left out.
for key, st in (("digits_ci", build(digits.get_config(), "configs/digits.py", "ci", baselines="random", device="cpu",
                                    train_images_per_s=40_000.0)),
                ("cifar10_full", build(cifar10.get_config(), "configs/cifar10.py", "full", device="gpu",
                                       train_images_per_s=20_000.0))):
  jobs = st.phase1_jobs() + st.phase2_jobs("u_batch")
  out[key] = {"plan": study.plan_text(st),
              "jobs": [[str(j.workdir), j.seed, j.phase, digest(st.run_config(j.run, j.seed))] for j in jobs]}
json.dump(out, sys.stdout, indent=1)
