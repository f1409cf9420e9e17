"""The experiments of dlhash_jax: configs and the command-line entry points.

Installed with the library (``pip install -e .``), so they run from any directory:

    python -m experiments.train --config=experiments/configs/dsh.py:digits,bits=64
    python -m experiments.evaluate --workdir=runs/dsh_digits_64
    python -m experiments.reproduce --tables=digits

and a notebook imports a config as ``from experiments.configs import dpsh``. The library
(``dlhash_jax``) never imports this package; the logic the entry points run lives there
(``dlhash_jax.experiment``, ``dlhash_jax.results_table``).
"""
