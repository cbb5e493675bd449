"""What the study measures inside single selection steps, through `jax_al.replay`.

Selection steps of the uncertainty-only run (`u_batch`) are rebuilt exactly
(the model, the candidates and the selection key of that step). Every variant
then selects from the same step with the same key, so differences between
picks come from the strategy alone:

- the share of picks each lam changes: picks with (norm, lam) against picks
  with (norm, lam = 0) from the same step, and lam = 0 against
  uncertainty only (use_mmd = False), which must share all picks;
- the raw uncertainty u and MMD term t of the cluster-margin + MMD method
  (preset `users`) at one step
  (their scales), and where each variant's picks sit (PCA picture, distance
  to the labeled set, pool density, classes covered).

`run_analysis` is a job like the runs (it goes through the same executor)
and writes `<out>/analysis/analysis.json` and `analysis.npz`.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from jax_al import files

DENSITY_REF = 2000  # candidates the pool density is measured against (memory: N x 2000)


def overlap(a, b) -> float:
  """|a & b| / |a|: the share of picks two selections have in common."""
  a = np.asarray(a)
  return len(np.intersect1d(a, np.asarray(b))) / max(len(a), 1)


def inputs_key(st, best: str) -> str:
  """What the analysis depends on; a rerun with the same key reuses it."""
  from jax_al import workdir as workdir_lib

  parts = {"best": best, "probe_cycles": list(st.probe_cycles),
           "probe_seeds": _probes(st) if st.k > 1 else st.select_seeds[:st.fields.probe_trials],
           "pca": st.pca_cycle,
           "runs": {n: [r.preset, sorted((k, str(v)) for k, v in r.al.items())]
                    for n, r in st.runs.items()},
           "base": workdir_lib.config_hash(st.run_config("u_batch", st.select_seeds[0])),
           "version": 1}
  return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def raw_terms(step, config) -> dict:
  """The raw u and MMD term t the uncertainty + MMD method ranks at `step`,
  with sigma (`replay.raw_scores`: the strategy's own `raw_terms`)."""
  from jax_al import replay

  r = replay.raw_scores(step, config)
  return {"u": np.asarray(r["u"]), "t": np.asarray(r["t"]), "sigma": float(r["sigma"])}


def pca_2d(x: np.ndarray, fit_on: np.ndarray | None = None) -> np.ndarray:
  """[n, 2] projection of x on the two leading principal axes of `fit_on` (default x)."""
  x = np.asarray(x, np.float64)
  ref = x if fit_on is None else np.asarray(fit_on, np.float64)
  mu = ref.mean(0)
  _, _, vt = np.linalg.svd(ref - mu, full_matrices=False)
  return (x - mu) @ vt[:2].T


def _sq_dist(a, b):
  return np.maximum((a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T, 0)


def density_and_distance(x: np.ndarray, l: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per candidate: percentile (0-100) of pool density mean_u k(x, u) and the
  distance to the nearest labeled point, relative to its mean over candidates.

  The density uses a Gaussian kernel with the median-heuristic width against
  up to DENSITY_REF evenly spaced candidates.
  """
  x = np.asarray(x, np.float64)
  l = np.asarray(l, np.float64)
  near = np.sqrt(_sq_dist(x, l).min(1))
  ref = x[np.linspace(0, len(x) - 1, min(len(x), DENSITY_REF)).astype(int)]
  d2 = _sq_dist(x, ref)
  rr = _sq_dist(ref, ref)
  sigma2 = np.median(rr[np.triu_indices(len(ref), 1)]) if len(ref) > 1 else 1.0
  dens = np.exp(-d2 / (2 * max(sigma2, 1e-12))).mean(1)
  pct = 100.0 * (np.argsort(np.argsort(dens)) / max(len(x) - 1, 1))
  return pct, near / max(near.mean(), 1e-12)


def run_analysis(st, name: str, best: str) -> dict:
  """Replays the probe steps and writes the analysis files; returns the summary."""
  from jax_al import replay

  out = st.out / "analysis"
  key = inputs_key(st, best)
  done = out / "analysis.json"
  if done.is_file():
    try:
      prev = json.loads(done.read_text())
      if prev.get("inputs") == key and (out / "analysis.npz").is_file():
        return {"seconds": 0.0, "reused": True}
    except ValueError:
      pass
  import time

  from jax_al import compiles
  t0 = time.perf_counter()
  # The runs' compiled programs are on disk: the replays load them (as loop.run does;
  # the folder was checked with the study's fields, `fields.check_study`).
  compiles.use_persistent_cache(st.base.compile_cache_dir)
  select_runs = [n for n, r in st.runs.items() if r.phase == "select"]
  probes = _probes(st)
  steps = []
  for seed, trial in probes:
    wd = st.job(name_u := "u_batch", seed, "select").workdir
    for c in st.probe_cycles:
      step = replay.step(wd, trial, c)
      own = replay.select(step)  # u_batch's own picks: uncertainty only
      rec = {"seed": seed, "cycle": c, "labeled": int(len(step.labeled)),
             "candidates": int(len(step.subset)), "restored": bool(step.restored),
             "own_equals_run": None, "share_vs_u_only": {}, "share_vs_lam0": {},
             "lam0_vs_u_only": {}}
      if st.k > 1:
        rec["trial"] = trial
      # The replay reproduces the run's own pick of this step.
      sel = replay.selected_sets(wd).get((trial, c))
      if sel is not None:
        rec["own_equals_run"] = bool(np.array_equal(np.sort(step.subset[own]), np.sort(sel)))
      lam0 = {}

      def lam0_picks(nm):
        """The picks with (normalisation nm, lam = 0) of this step, selected once."""
        if nm not in lam0:
          cfg0 = replay.with_al(step.config, **{**_users(), "normalize": nm, "lam": 0.0})
          lam0[nm] = replay.select(step, cfg0)
          rec["lam0_vs_u_only"][nm] = overlap(lam0[nm], own)
        return lam0[nm]

      for nm in dict.fromkeys(list(st.fields.norms) + [st.fields.sign_norm]):
        lam0_picks(nm)
      for n in select_runs:
        r = st.runs[n]
        picks = replay.select(step, replay.with_al(step.config, **r.al))
        rec["share_vs_u_only"][n] = overlap(picks, own)
        if r.al.get("use_mmd") and r.al.get("mode") == "topk" and r.al.get("term") == "per_sample" \
            and r.al.get("u_scope") == "batch" and r.al.get("mmd_scope") == "batch":
          # Every sweep run has its lam = 0 reference, also a normalisation
          # outside study.norms (the users' run is "none" with any --study.norms).
          rec["share_vs_lam0"][n] = overlap(picks, lam0_picks(r.al["normalize"]))
      steps.append(rec)
      if (seed, trial) == probes[0] and c == st.pca_cycle:
        pca_step = step
  scales, arrays = _scales(st, pca_step)
  pca, parr = _pca(st, pca_step, best)
  arrays.update(parr)
  out.mkdir(parents=True, exist_ok=True)
  summary = {"inputs": key, "best": best, "steps": steps, "scales": scales, "pca": pca,
             "seconds": time.perf_counter() - t0,
             "probe_seeds": [s for s, _ in probes] if st.k == 1 else [st.label(*x) for x in probes],
             "probe_cycles": list(st.probe_cycles), "run": name_u}
  np.savez(out / "analysis.npz", **arrays)
  files.write_json(done, summary)
  return {"seconds": summary["seconds"], "reused": False}


def _probes(st) -> list[tuple[int, int]]:
  """(job seed, trial) of the replayed selection replicates: the first `probe_trials`."""
  return st.replicates(st.select_seeds)[:st.fields.probe_trials]


def _users() -> dict:
  from jax_al.study.grid import USERS
  return dict(USERS)


def _scales(st, step) -> tuple[dict, dict]:
  from jax_al import replay

  cfg = replay.with_al(step.config, **_users())
  raw = raw_terms(step, cfg)
  u, t = raw["u"], raw["t"]
  budget = cfg.al.budget
  cut = float(np.sort(u)[-budget]) if len(u) >= budget else float(u.min())
  s = {"seed": step.config.seed, **({"trial": step.trial} if st.k > 1 else {}),
       "cycle": step.cycle, "labeled": int(len(step.labeled)),
       "candidates": int(len(u)), "budget": int(budget), "sigma": raw["sigma"],
       "u_min": float(u.min()), "u_median": float(np.median(u)), "u_cut": cut,
       "u_max": float(u.max()), "t_min": float(t.min()), "t_median": float(np.median(t)),
       "t_max": float(t.max()), "t_range": float(t.max() - t.min()),
       "u_range_top": float(u.max() - cut)}
  return s, {"u": u, "t": t}


def _pca(st, step, best: str) -> tuple[dict, dict]:
  from jax_al import replay

  wanted = ["u_batch", "users", f"{st.fields.sign_norm}_lam1", f"{st.fields.sign_norm}_lam1_small",
            "witness", "greedy", best]
  names = [st.aliases.get(n, n) for n in wanted if st.aliases.get(n, n) in st.runs]
  names = list(dict.fromkeys(names))
  picks = {}
  for n in names:
    picks[n] = replay.select(step, replay.with_al(step.config, **st.runs[n].al))
  if "random" in st.runs:
    picks["random"] = replay.select(step, st.run_config("random", step.config.seed))
  x = np.asarray(step.pool.features)
  l = np.asarray(step.pool.labeled_features)
  allf = np.concatenate([x, l])
  xy, lxy = pca_2d(x, allf), pca_2d(l, allf)
  pct, dist = density_and_distance(x, l)
  prof = {}
  arrays = {"pca_pool": xy, "pca_labeled": lxy, "pool_labels": np.asarray(step.labels)}
  for n, p in picks.items():
    p = np.asarray(p)
    prof[n] = {"dist_labeled": float(dist[p].mean()), "density_pct": float(pct[p].mean()),
               "classes": int(len(np.unique(step.labels[p])))}
    arrays[f"picks__{n}"] = p
  return {"seed": step.config.seed, **({"trial": step.trial} if st.k > 1 else {}),
          "cycle": step.cycle, "labeled": int(len(step.labeled)),
          "variants": list(picks), "profile": prof,
          "num_classes": int(step.pool.num_classes)}, arrays
