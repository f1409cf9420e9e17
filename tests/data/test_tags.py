"""Tests for sources.tags_from_labels: the synthetic text modality of digits_mosaic_tags."""

import math

import numpy as np
import pytest

from dlhash_jax import data
from dlhash_jax.data import sources

VOCABULARY = sources.TAG_VOCABULARY
NUM_TAGS = len(VOCABULARY)


def _labels(*class_sets):
    labels = np.zeros((len(class_sets), 10), np.float32)
    for row, classes in enumerate(class_sets):
        labels[row, list(classes)] = 1.0
    return labels


def _tags(row):
    return {VOCABULARY[j] for j in np.flatnonzero(row)}


def _random_labels(num_items, seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random((num_items, 10)) < 0.2).astype(np.float32)
    labels[np.arange(num_items), rng.integers(0, 10, num_items)] = 1.0  # Every item has a class.
    return labels


def _implied(labels):
    # Built from the documented table, independently of the module's implication matrix.
    shape_of = {c: shape for shape, classes in sources.TAG_SHAPES.items() for c in classes}
    implied = np.zeros((labels.shape[0], NUM_TAGS), bool)
    for row, classes in enumerate(labels):
        for c in np.flatnonzero(classes):
            implied[row, VOCABULARY.index(sources.DIGIT_WORDS[c])] = True
            implied[row, VOCABULARY.index(str(c))] = True
            implied[row, VOCABULARY.index(shape_of[c])] = True
    return implied


def test_vocabulary_and_shape_table():
    assert VOCABULARY[:10] == ("zero", "one", "two", "three", "four", "five", "six", "seven",
                               "eight", "nine")
    assert VOCABULARY[10:20] == ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
    assert sources.DIGIT_NUMERALS == VOCABULARY[10:20]
    assert VOCABULARY[20:23] == ("loop", "straight", "curve")
    assert VOCABULARY[23:] == sources.TAG_DISTRACTORS
    # 80 distinct tags: at least the 64 bits CCA+ITQ needs (min(D_image, D_text) bits).
    assert NUM_TAGS == len(set(VOCABULARY)) == 80 and len(sources.TAG_DISTRACTORS) == 57
    assert VOCABULARY[23:28] == ("scan", "pixel", "blur", "noise", "grain")
    assert VOCABULARY[-3:] == ("clock", "bag", "key")
    # Distractors are lowercase words, none a class word, numeral or shape.
    assert all(tag.isalpha() and tag.islower() for tag in sources.TAG_DISTRACTORS)
    # Every class has exactly one shape.
    shapes = sorted(c for classes in sources.TAG_SHAPES.values() for c in classes)
    assert shapes == list(range(10))
    assert data.TAG_VOCABULARY is VOCABULARY and data.tags_from_labels is sources.tags_from_labels


def test_noiseless_tags_are_the_implied_ones():
    labels = _labels({0}, {1, 4}, {2, 6, 7}, set(), range(10), {8, 9})
    tags = sources.tags_from_labels(labels, seed=0, drop_rate=0.0, spurious_rate=0.0)
    assert tags.dtype == np.float32 and tags.shape == (6, 80)
    assert _tags(tags[0]) == {"zero", "0", "loop"}
    assert _tags(tags[1]) == {"one", "1", "four", "4", "straight"}
    assert _tags(tags[2]) == {"two", "2", "six", "6", "seven", "7", "curve", "loop", "straight"}
    assert _tags(tags[3]) == set()
    assert _tags(tags[4]) == set(VOCABULARY[:23])
    assert _tags(tags[5]) == {"eight", "8", "nine", "9", "loop"}
    # Columns by hand: "three" is 3, "3" is 13, "curve" is 22.
    np.testing.assert_array_equal(
        np.flatnonzero(sources.tags_from_labels(_labels({3}), seed=0, drop_rate=0.0,
                                                spurious_rate=0.0)[0]), [3, 13, 22])
    assert set(np.unique(tags)) == {0.0, 1.0}


def test_seeded_and_row_prefix_stable():
    labels = _random_labels(300, seed=0)
    tags = sources.tags_from_labels(labels, seed=5)
    np.testing.assert_array_equal(sources.tags_from_labels(labels, seed=5), tags)
    assert not np.array_equal(sources.tags_from_labels(labels, seed=6), tags)
    # Row i's noise depends on (seed, i) only, so a prefix of the items keeps its tags.
    np.testing.assert_array_equal(sources.tags_from_labels(labels[:40], seed=5), tags[:40])
    # Boolean and integer labels give the same tags as float ones.
    np.testing.assert_array_equal(sources.tags_from_labels(labels.astype(bool), seed=5), tags)


def _assert_rate(successes, trials, rate):
    # Binomial tolerance: 4 standard deviations of the count.
    tolerance = 4 * math.sqrt(trials * rate * (1 - rate))
    assert abs(successes - trials * rate) <= tolerance, (successes, trials, rate)


def test_measured_drop_and_spurious_rates_match_the_defaults():
    labels = _random_labels(20_000, seed=1)
    implied = _implied(labels)
    tags = sources.tags_from_labels(labels, seed=2).astype(bool)
    assert sources.TAG_DROP_RATE == 0.2 and sources.TAG_SPURIOUS_RATE == 0.02
    _assert_rate(int((implied & ~tags).sum()), int(implied.sum()), 0.2)
    _assert_rate(int((~implied & tags).sum()), int((~implied).sum()), 0.02)
    for column in range(NUM_TAGS):
        on, off = implied[:, column], ~implied[:, column]
        if on.sum():
            _assert_rate(int((~tags[on, column]).sum()), int(on.sum()), 0.2)
        _assert_rate(int(tags[off, column].sum()), int(off.sum()), 0.02)
    # Independence across tags of one item: a class's word and numeral (implied by it alone)
    # are both lost with probability 0.2², not 0.2 as a per-class drop would give.
    words, numerals = tags[:, :10], tags[:, 10:20]
    present = labels.astype(bool)
    _assert_rate(int((present & ~words & ~numerals).sum()), int(present.sum()), 0.04)
    # A single-class item keeps none of its three tags with probability 0.2³ = 0.8%.
    single = labels.sum(axis=1) == 1
    all_dropped = (implied[single] & ~tags[single]).sum(axis=1) == 3
    _assert_rate(int(all_dropped.sum()), int(single.sum()), 0.008)
    # The distractors are never implied, so they appear at the spurious rate only.
    assert not implied[:, 23:].any()


def test_custom_rates_are_measured_too():
    labels = _random_labels(5_000, seed=3)
    implied = _implied(labels)
    tags = sources.tags_from_labels(labels, seed=0, drop_rate=0.6, spurious_rate=0.3)
    tags = tags.astype(bool)
    _assert_rate(int((implied & ~tags).sum()), int(implied.sum()), 0.6)
    _assert_rate(int((~implied & tags).sum()), int((~implied).sum()), 0.3)


def test_edge_rates():
    labels = _random_labels(200, seed=4)
    implied = _implied(labels)

    def tags(drop, spurious):
        return sources.tags_from_labels(labels, seed=9, drop_rate=drop, spurious_rate=spurious)

    np.testing.assert_array_equal(tags(1.0, 0.0), np.zeros_like(implied, np.float32))
    np.testing.assert_array_equal(tags(0.0, 1.0), np.ones_like(implied, np.float32))
    np.testing.assert_array_equal(tags(1.0, 1.0), ~implied)
    np.testing.assert_array_equal(tags(0.0, 0.0), implied)
    np.testing.assert_array_equal(tags(1, 0), tags(1.0, 0.0))  # Integer rates are numbers too.
    assert sources.tags_from_labels(np.zeros((0, 10)), seed=0).shape == (0, 80)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"drop_rate": 1.5}, r"drop_rate must be a probability, a number in \[0, 1\], got 1.5"),
        ({"drop_rate": -0.1}, r"drop_rate must be .* got -0.1"),
        ({"spurious_rate": float("nan")}, r"spurious_rate must be .* got nan"),
        ({"spurious_rate": True}, r"spurious_rate must be .* got True"),
        ({"spurious_rate": "0.1"}, r"spurious_rate must be .* got '0.1'"),
        ({"seed": -1}, "seed must be a non-negative integer, got -1"),
        ({"seed": 0.5}, "seed must be a non-negative integer, got 0.5"),
    ],
)
def test_bad_rates_and_seeds_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sources.tags_from_labels(_labels({1}), **{"seed": 0, **kwargs})


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.ones((3, 9)), r"multi-hot \[N, 10\] over the digit classes, got shape \(3, 9\)"),
        (np.ones(10), r"got shape \(10,\)"),
        (np.full((2, 10), 2.0), r"only 0 and 1, found 20 other entries \(e.g. 2.0\)"),
        (np.array([[0.5] + [0.0] * 9]), r"found 1 other entries \(e.g. 0.5\)"),
        (np.array([[np.nan] + [0.0] * 9]), "found 1 other entries"),
        (np.array([["1"] * 10]), "must be numeric 0/1, got dtype <U1"),
    ],
)
def test_bad_labels_raise(labels, message):
    with pytest.raises(ValueError, match=message):
        sources.tags_from_labels(labels, seed=0)
