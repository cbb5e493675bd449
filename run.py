"""Entry point: parses flags and calls the library (an alias of `jax-al run`).

    python run.py --config configs/digits.py
    python run.py --config configs/cifar10.py:rank --config.al.lam=0.5 --workdir runs/x
    python run.py --config configs/digits.py --config.compare.strategies=random,entropy

The command itself is `jax_al/run_main.py` (installed as `jax-al run`).
"""

if __name__ == "__main__":
  from jax_al import run_main
  run_main.entry()
