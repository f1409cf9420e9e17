"""The loss catalogue of deep learning to hash (DESIGN.md, survey §4).

Every term is a pure function of arrays (positional) and hyper-parameters (keyword-only) that
returns a float scalar and works under ``jit``, ``vmap`` and ``grad``. One name per line.
"""

# Code constraints, reconstruction, regularisers and graph terms (survey eq 1-13, 18).

# Pairwise, ranking and classification terms (survey eq 14-17, 19-27).
