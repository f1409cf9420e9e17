"""Named recipes from the literature and the one name→recipe table configs refer to.

A recipe (:class:`Recipe`) is a model factory, a loss over a batch and the training state, the
paper's hyper-parameters and a citation; ``dlhash_jax.train`` runs any of them. Add a method by
writing a module with a ``RECIPE`` and one line in ``RECIPES``.
"""

from dlhash_jax.methods import dpsh
from dlhash_jax.methods import dsh
from dlhash_jax.methods._recipe import AXIS_NAME
from dlhash_jax.methods._recipe import BACKBONES
from dlhash_jax.methods._recipe import LossFn
from dlhash_jax.methods._recipe import MemoryBank
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import build_backbone
from dlhash_jax.methods._recipe import hash_network

RECIPES = {
    "dpsh": dpsh.RECIPE,
    "dsh": dsh.RECIPE,
}


def get_recipe(name: str) -> Recipe:
    """The recipe registered under ``name``.

    Raises:
      ValueError: if ``name`` is not in ``RECIPES``; the message lists the known names.
    """
    if name not in RECIPES:
        raise ValueError(f"Unknown method {name!r}; known methods: {', '.join(sorted(RECIPES))}.")
    return RECIPES[name]


__all__ = [
    "AXIS_NAME",
    "BACKBONES",
    "LossFn",
    "MemoryBank",
    "RECIPES",
    "Recipe",
    "build_backbone",
    "dpsh",
    "dsh",
    "get_recipe",
    "hash_network",
]
