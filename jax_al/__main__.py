"""`python -m jax_al <command>`: the same command as the installed `jax-al`."""

from jax_al.commands import main

if __name__ == "__main__":
  main()
