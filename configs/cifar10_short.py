"""configs/cifar10.py's protocol shortened in epochs, for a study in one GPU call.

ResNet-18 (CIFAR variant), 5,000 random initial labels, +2,500 per cycle,
7 cycles, 10,000 scored candidates, the same SGD recipe (lr 0.1, momentum
0.9, weight decay 5e-4, batch 128, x0.1 once, warm start, flip + crop), but
EPOCHS (20) epochs per cycle with the decay at DECAY_AT (80 %) of them, the
test set evaluated once, at the end of each cycle. Three trials train as one
vmapped program (`compare.parallel = "vmap"`), in bfloat16.

The milestone and the evaluation epoch follow `train.epochs`: overriding
`--config.train.epochs=30` moves the decay to epoch 24 and the evaluation
to epoch 30 (they are read after the command line's overrides); an explicit
`--config.train.milestones=...` or `--config.train.eval_every=...` replaces
them. The data is TFDS `cifar10`, or the JPEG copy as `benchmarks/gpu.sh`
passes it:

    python run.py --config configs/cifar10_short.py --config.data.source=folder \
        --config.data.path=.device/cifar10-jpeg.tar.gz
    python -m jax_al.study --config configs/cifar10_short.py --out runs/study_short \
        --study.trials_per_job=3 --study.trials=3 --study.report_trials=3 \
        --config.data.source=folder --config.data.path=.device/cifar10-jpeg.tar.gz
"""

from ml_collections import config_dict
from ml_collections.config_dict import config_dict as _cd

from configs import cifar10

EPOCHS = 20      # per cycle (the protocol: 200)
DECAY_AT = 0.8   # the learning rate drops x0.1 after this fraction of the epochs (160 of 200)
TRIALS = 3       # vmapped trials of a run


def decay_epoch(epochs: int) -> int:
  """The milestone for `epochs` epochs: DECAY_AT of them, at least epoch 1."""
  return max(1, int(DECAY_AT * epochs))


def _derived(epochs: config_dict.FieldReference, fn, field_type):
  """A field computed from `epochs` when read, so that it follows a command-line
  `--config.train.epochs`; setting the field itself replaces it.

  ml_collections' lazy reference op (`_Op`, as its own `FieldReference.to_int`
  uses); its public ops cannot produce a tuple.
  """
  return config_dict.FieldReference(fn(epochs.get()), field_type=field_type,
                                    op=_cd._Op(lambda _, n: fn(n), [epochs]))


def get_config(preset: str = "users"):
  c = cifar10.get_config(preset)
  epochs = config_dict.FieldReference(EPOCHS)
  c.train.epochs = epochs
  c.train.milestones = _derived(epochs, lambda n: (decay_epoch(n),), tuple)
  c.train.eval_every = _derived(epochs, int, int)   # once per cycle, after its last epoch
  c.train.dtype = "bfloat16"
  c.num_trials = TRIALS
  c.compare.parallel = "vmap"
  return c
