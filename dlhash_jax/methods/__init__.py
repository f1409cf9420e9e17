"""Named recipes from the literature and the one name→recipe table configs refer to.

A recipe (:class:`Recipe`) is a model factory, a loss ``loss_fn(outputs, batch, ctx)`` over a
batch and a :class:`LossContext`, its :class:`Taxonomy`, the paper's hyper-parameters and a
citation; ``dlhash_jax.train`` runs any of them. Add a method by writing a module with a
``RECIPE``, one line in ``RECIPES`` and one config file in ``experiments/configs/``.
"""

from dlhash_jax.methods import adsh
from dlhash_jax.methods import bihalf
from dlhash_jax.methods import cibhash
from dlhash_jax.methods import cnnh
from dlhash_jax.methods import csq
from dlhash_jax.methods import dbdh
from dlhash_jax.methods import dch
from dlhash_jax.methods import dcmh
from dlhash_jax.methods import dfh
from dlhash_jax.methods import dh
from dlhash_jax.methods import dhn
from dlhash_jax.methods import discrete_supervised
from dlhash_jax.methods import dlbhc
from dlhash_jax.methods import dnnh
from dlhash_jax.methods import dpn
from dlhash_jax.methods import dpsh
from dlhash_jax.methods import drsch
from dlhash_jax.methods import dsdh
from dlhash_jax.methods import dsh
from dlhash_jax.methods import dsrh
from dlhash_jax.methods import dsrh_triplet
from dlhash_jax.methods import dtsh
from dlhash_jax.methods import fingerprint
from dlhash_jax.methods import glsp
from dlhash_jax.methods import greedyhash
from dlhash_jax.methods import greedyhash_unsupervised
from dlhash_jax.methods import hashnet
from dlhash_jax.methods import hinge_softmax
from dlhash_jax.methods import idhn
from dlhash_jax.methods import jmlh
from dlhash_jax.methods import knn_graph
from dlhash_jax.methods import lcdsh
from dlhash_jax.methods import mihash
from dlhash_jax.methods import order_sensitive
from dlhash_jax.methods import orthohash
from dlhash_jax.methods import sdh
from dlhash_jax.methods import sparse_similarity
from dlhash_jax.methods import ssdh
from dlhash_jax.methods import tbh
from dlhash_jax.methods import udh
from dlhash_jax.methods import uh_bdnn
from dlhash_jax.methods._recipe import AXIS_NAME
from dlhash_jax.methods._recipe import BACKBONES
from dlhash_jax.methods._recipe import INPUT_FORMS
from dlhash_jax.methods._recipe import DiscreteUpdate
from dlhash_jax.methods._recipe import LABEL_KINDS
from dlhash_jax.methods._recipe import LossContext
from dlhash_jax.methods._recipe import LossFn
from dlhash_jax.methods._recipe import MemoryBank
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import active_group
from dlhash_jax.methods._recipe import active_group_index
from dlhash_jax.methods._recipe import build_backbone
from dlhash_jax.methods._recipe import cross_modal_network
from dlhash_jax.methods._recipe import hash_network

RECIPES = {
    "adsh": adsh.RECIPE,
    "bihalf": bihalf.RECIPE,
    "cibhash": cibhash.RECIPE,
    "cnnh": cnnh.RECIPE,
    "csq": csq.RECIPE,
    "dbdh": dbdh.RECIPE,
    "dch": dch.RECIPE,
    "dcmh": dcmh.RECIPE,
    "dfh": dfh.RECIPE,
    "dh": dh.RECIPE,
    "dhn": dhn.RECIPE,
    "discrete_supervised": discrete_supervised.RECIPE,
    "dlbhc": dlbhc.RECIPE,
    "dnnh": dnnh.RECIPE,
    "dpn": dpn.RECIPE,
    "dpsh": dpsh.RECIPE,
    "drsch": drsch.RECIPE,
    "dsdh": dsdh.RECIPE,
    "dsh": dsh.RECIPE,
    "dsrh": dsrh.RECIPE,
    "dsrh_triplet": dsrh_triplet.RECIPE,
    "dtsh": dtsh.RECIPE,
    "fingerprint": fingerprint.RECIPE,
    "glsp": glsp.RECIPE,
    "greedyhash": greedyhash.RECIPE,
    "greedyhash_unsupervised": greedyhash_unsupervised.RECIPE,
    "hashnet": hashnet.RECIPE,
    "hinge_softmax": hinge_softmax.RECIPE,
    "idhn": idhn.RECIPE,
    "jmlh": jmlh.RECIPE,
    "knn_graph": knn_graph.RECIPE,
    "lcdsh": lcdsh.RECIPE,
    "mihash": mihash.RECIPE,
    "order_sensitive": order_sensitive.RECIPE,
    "orthohash": orthohash.RECIPE,
    "sdh": sdh.RECIPE,
    "sparse_similarity": sparse_similarity.RECIPE,
    "ssdh": ssdh.RECIPE,
    "tbh": tbh.RECIPE,
    "udh": udh.RECIPE,
    "uh_bdnn": uh_bdnn.RECIPE,
}


# Recipes that take image and text inputs (a cross-modal protocol).
CROSS_MODAL = tuple(name for name, recipe in RECIPES.items() if recipe.cross_modal)


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
    "CROSS_MODAL",
    "DiscreteUpdate",
    "INPUT_FORMS",
    "LABEL_KINDS",
    "LossContext",
    "LossFn",
    "MemoryBank",
    "RECIPES",
    "Recipe",
    "Taxonomy",
    "active_group",
    "active_group_index",
    "build_backbone",
    "cross_modal_network",
    "adsh",
    "bihalf",
    "cibhash",
    "cnnh",
    "csq",
    "dbdh",
    "dch",
    "dcmh",
    "dfh",
    "dh",
    "dhn",
    "discrete_supervised",
    "dlbhc",
    "dnnh",
    "dpn",
    "dpsh",
    "drsch",
    "dsdh",
    "dsh",
    "dsrh",
    "dsrh_triplet",
    "dtsh",
    "fingerprint",
    "get_recipe",
    "glsp",
    "greedyhash",
    "greedyhash_unsupervised",
    "hash_network",
    "hashnet",
    "hinge_softmax",
    "idhn",
    "jmlh",
    "knn_graph",
    "lcdsh",
    "mihash",
    "order_sensitive",
    "orthohash",
    "sdh",
    "sparse_similarity",
    "ssdh",
    "tbh",
    "udh",
    "uh_bdnn",
]
