"""Labeling rounds with real annotators: `jax-al round init|next|add|status|undo`.

A round folder DIR holds one labeling project:

  round.json          the pool's source, the model config, the class list,
                      the holdout and stop sets, the settings (written by init)
  pool.csv            row,id,path,sha256: one stable id per pool item (an
                      image's path relative to its folder or archive, or an
                      embedding file's id) and a digest of the item
  holdout.csv         id,label of the held-out labeled items (when given)
  labels.jsonl        the merged labels, append-only: id, label, round, merge,
                      time, source file and its sha256
  undone.jsonl        merges taken back by `round undo` (nothing is lost)
  round_<n>/          to_label.csv (id,path,rank,score), tasks.json (a Label
                      Studio import), selection.json (the picks and the round's
                      model: its stop-set predictions and holdout accuracy),
                      timing.json (seconds per phase), closed.json (when the
                      round was closed with items left unlabeled), report.md
                      and plots (written by `next` and `status`)

Each command changes the folder by one atomic step (a file or a folder
renamed into place), so a kill leaves the old state or the new one, and the
same command run again settles it. One process at a time holds DIR's lock.
"""
