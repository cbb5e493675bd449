"""The stopping signal of stabilizing predictions (Bloodgood & Vijay-Shanker,
CoNLL 2009): Cohen's kappa between consecutive rounds' predictions on a
fixed stop set of pool items, and a suggestion to stop once kappa has
stayed at or above a threshold for a number of rounds in a row."""

from __future__ import annotations

import numpy as np


def cohen_kappa(a, b) -> float:
  """Cohen's kappa of two label sequences of equal length.

  kappa = (p_o - p_e) / (1 - p_e), with p_o the observed agreement and p_e
  the agreement expected from each sequence's class frequencies. When p_e
  is 1 (both give one and the same class throughout) kappa is 1.
  """
  a, b = np.asarray(a), np.asarray(b)
  if a.shape != b.shape or a.ndim != 1 or a.size == 0:
    raise ValueError(f"need two non-empty sequences of one length, got {a.shape}, {b.shape}")
  classes = np.union1d(a, b)
  pa = np.array([(a == c).mean() for c in classes])
  pb = np.array([(b == c).mean() for c in classes])
  p_o = float((a == b).mean())
  p_e = float((pa * pb).sum())
  if p_e >= 1.0:
    return 1.0
  return (p_o - p_e) / (1.0 - p_e)


def kappas(predictions: list[tuple[int, list[int] | None]]) -> list[tuple[int, float]]:
  """(round, kappa against the previous round's model) for each round whose
  model and the previous round's both predicted the stop set."""
  out = []
  for (_, prev), (n, cur) in zip(predictions, predictions[1:]):
    if prev is not None and cur is not None:
      out.append((n, cohen_kappa(prev, cur)))
  return out


def suggest_stop(ks: list[tuple[int, float]], threshold: float, window: int) -> bool:
  """True when the last `window` kappas are all >= threshold."""
  last = [k for _, k in ks[-window:]]
  return len(last) == window and all(k >= threshold for k in last)
