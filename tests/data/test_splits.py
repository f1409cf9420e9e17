"""Tests for dlhash_jax/data/splits.py: drawing a protocol's splits and the rules they obey."""

import numpy as np
import pytest

from dlhash_jax.data import sources
from dlhash_jax.data import splits


def _source(num_items=60, num_classes=3, groups=None):
    labels = sources.one_hot(np.arange(num_items) % num_classes, num_classes)
    return sources.Source(np.zeros((num_items, 2), np.float32), labels, groups=groups or {})


SIZES = {"query_size": 6, "train_size": 12, "validation_size": 3}


def test_draws_are_stratified_disjoint_and_a_pure_function_of_the_seed():
    drawn = splits.make_splits("p", _source(), SIZES, seed=4)
    labels = _source().labels
    # n // C per class plus one for the first n % C classes (here n is a multiple of C).
    for split, per_class in (("query", 2), ("train", 4), ("validation", 1)):
        np.testing.assert_array_equal(labels[drawn[split]].sum(axis=0), [per_class] * 3)
    np.testing.assert_array_equal(drawn["database"], np.setdiff1d(np.arange(60), drawn["query"]))
    assert not np.intersect1d(drawn["train"], drawn["validation"]).size
    again = splits.make_splits("p", _source(), SIZES, seed=4)
    assert all(np.array_equal(drawn[k], again[k]) for k in drawn)
    other = splits.make_splits("p", _source(), SIZES, seed=5)
    assert not np.array_equal(drawn["query"], other["query"])


def test_queries_from_a_group_and_training_items_out_of_the_database():
    source = _source(groups={"test": np.arange(45, 60)})
    drawn = splits.make_splits("p", source, SIZES, seed=0, query_group="test",
                               train_in_database=False)
    assert drawn["query"].min() >= 45
    np.testing.assert_array_equal(
        drawn["database"], np.setdiff1d(np.arange(60), np.union1d(drawn["query"], drawn["train"])))
    assert np.isin(drawn["validation"], drawn["database"]).all()


def test_check_splits_names_each_broken_rule():
    good = splits.make_splits("p", _source(), SIZES, seed=0)
    broken = dict(good, validation=np.append(good["validation"], good["query"][0]))
    with pytest.raises(ValueError, match="validation must lie inside the database"):
        splits.check_splits("p", broken, 60)
    outside = dict(good, database=np.setdiff1d(good["database"], good["train"][:2]))
    with pytest.raises(ValueError, match="train must lie inside the database; 2 of its 12"):
        splits.check_splits("p", outside, 60)
    with pytest.raises(ValueError, match="train must lie outside the database; 12 of its 12"):
        splits.check_splits("p", good, 60, train_in_database=False)
    with pytest.raises(ValueError, match=r"needs query 61 = 61 items from the source but it has 60"):
        splits.make_splits("p", _source(), dict(SIZES, query_size=61), seed=0)
