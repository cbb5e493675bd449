"""Per-point scores and the distance and kernel arithmetic behind them.

Modules: distances (blocked squared distances), kmeans (ott-jax k-means, one
set or per minibatch), minibatch (the consecutive-minibatch scope of the
k-means cluster-margin + MMD method),
cluster_margin (k-means margin uncertainty), mmd (Gaussian-kernel MMD and
per-candidate MMD terms, exact or random Fourier features), normalize (score
normalisations), greedy (set-level MMD batch selection).
"""
