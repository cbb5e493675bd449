"""Training and evaluation, in two modules.

`jax_al.train.steps`: the pure functions (step settings, the SGD step and its
fused chunks, epoch orders, inference chunks, the learning-rate schedule).
`jax_al.train.trainer`: what jits them and runs them from the host
(`Trainer`, the epoch loops `run_epoch` / `run_epochs`, `fit_epochs`).
The names below are re-exported so `from jax_al.train import Trainer` works.
"""

from jax_al.train.steps import (DROPOUT_FOLD, StepConfig, StepVariant, TrainState,
                                auto_steps_per_call, epoch_order,
                                epoch_order_n, eval_chunk, full_chunks,
                                init_model, learning_rate, loss_chunk, loss_fn,
                                make_optimizer, mc_chunk, train_chunk, train_epochs,
                                train_step, train_steps)
from jax_al.train.trainer import (StepFns, Trainer, divergence_fix, epoch_segments, fit_epochs,
                                  run_epoch, run_epochs)

__all__ = ["DROPOUT_FOLD", "StepConfig", "StepFns", "StepVariant", "TrainState", "Trainer",
           "auto_steps_per_call", "divergence_fix", "epoch_order", "epoch_order_n",
           "epoch_segments", "eval_chunk", "fit_epochs", "full_chunks", "init_model",
           "learning_rate", "loss_chunk", "loss_fn", "make_optimizer", "mc_chunk", "run_epoch",
           "run_epochs", "train_chunk", "train_epochs", "train_step", "train_steps"]
