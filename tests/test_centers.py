"""Hash centres (CSQ): Hadamard centres at distance L/2, random balanced centres, label centres."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlhash_jax import centers


def _distances(codes):
    return (codes.shape[1] - codes @ codes.T) / 2


@pytest.mark.parametrize("bits", [1, 2, 8, 16, 32, 64])
def test_hadamard_rows_are_orthogonal_codes(bits):
    h = centers.hadamard_matrix(bits)
    assert h.shape == (bits, bits) and h.dtype == np.float32
    assert set(np.unique(h)) <= {-1.0, 1.0}
    np.testing.assert_array_equal(h @ h.T, bits * np.eye(bits))


@pytest.mark.parametrize("bits", [8, 16, 32, 64])
def test_hadamard_centres_are_mutually_at_half_the_bits(bits):
    num_classes = 2 * bits
    c = centers.hash_centers(num_classes, bits)
    d = _distances(c)
    # Every pair at L/2, except each row and its negation (L apart).
    negation = np.zeros_like(d, dtype=bool)
    index = np.arange(bits)
    negation[index, index + bits] = negation[index + bits, index] = True
    off = ~np.eye(num_classes, dtype=bool)
    np.testing.assert_array_equal(d[off & ~negation], bits / 2)
    np.testing.assert_array_equal(d[negation], bits)
    # Up to L classes every pair is at exactly L/2.
    np.testing.assert_array_equal(_distances(c[:bits])[~np.eye(bits, dtype=bool)], bits / 2)


@pytest.mark.parametrize("num_classes, bits", [(10, 24), (10, 12), (40, 16), (3, 7)])
def test_random_centres_are_balanced_distinct_and_deterministic(num_classes, bits):
    c = centers.hash_centers(num_classes, bits, seed=3)
    assert c.shape == (num_classes, bits) and c.dtype == np.float32
    np.testing.assert_array_equal(np.sum(c < 0, axis=1), bits // 2)
    d = _distances(c)[~np.eye(num_classes, dtype=bool)]
    assert d.min() >= 1
    np.testing.assert_array_equal(c, centers.hash_centers(num_classes, bits, seed=3))
    assert not np.array_equal(c, centers.hash_centers(num_classes, bits, seed=4))


def test_more_draws_never_lower_the_minimum_distance():
    few = centers.hash_centers(20, 24, num_draws=1)
    many = centers.hash_centers(20, 24, num_draws=50)
    off = ~np.eye(20, dtype=bool)
    assert _distances(many)[off].min() >= _distances(few)[off].min()


def test_tie_break_code_is_fixed_per_seed():
    code = centers.tie_break_code(64, seed=5)
    assert code.shape == (64,) and set(np.unique(code)) == {-1.0, 1.0}
    np.testing.assert_array_equal(code, centers.tie_break_code(64, seed=5))


def _loop_label_centers(labels, table, tie_break):
    out = np.zeros((labels.shape[0], table.shape[1]))
    for i in range(labels.shape[0]):
        for k in range(table.shape[1]):
            vote = sum(table[c, k] for c in range(labels.shape[1]) if labels[i, c] > 0)
            out[i, k] = 1.0 if vote > 0 else (-1.0 if vote < 0 else tie_break[k])
    return out


def test_label_centers_match_loop_and_vmap():
    rng = np.random.default_rng(0)
    table = centers.hash_centers(6, 16)
    tie_break = centers.tie_break_code(16)
    labels = (rng.random((9, 6)) < 0.4).astype(np.float32)
    labels[0] = 0.0  # no label: the tie-breaking code
    got = jax.jit(centers.label_centers)(labels, table, tie_break)
    np.testing.assert_array_equal(np.asarray(got), _loop_label_centers(labels, table, tie_break))
    np.testing.assert_array_equal(np.asarray(got[0]), tie_break)
    stacked = labels.reshape(3, 3, 6)
    batched = jax.vmap(centers.label_centers, in_axes=(0, None, None))(stacked, table, tie_break)
    np.testing.assert_array_equal(np.asarray(batched).reshape(9, 16), np.asarray(got))


def test_one_hot_labels_get_their_class_centre():
    table = centers.hash_centers(5, 8)
    got = centers.label_centers(jnp.eye(5)[jnp.array([4, 0, 2])], table, jnp.ones(8))
    np.testing.assert_array_equal(np.asarray(got), table[[4, 0, 2]])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: centers.hadamard_matrix(12), r"power of two, got n=12"),
        (lambda: centers.hadamard_matrix(0), r"n must be a positive integer, got 0"),
        (lambda: centers.hash_centers(0, 8), r"num_classes must be a positive integer"),
        (lambda: centers.hash_centers(3, 8, num_draws=0), r"num_draws must be a positive"),
        (lambda: centers.label_centers(jnp.ones((2, 3)), jnp.ones((4, 8)), jnp.ones(8)),
         r"Y must be \[N, C\] and centers \[C, L\] with the same C, got shapes \(2, 3\) and "
         r"\(4, 8\)"),
        (lambda: centers.label_centers(jnp.ones((2, 4)), jnp.ones((4, 8)), jnp.ones(7)),
         r"tie_break must be \[L\] = \(8,\) for centers of shape \(4, 8\), got \(7,\)"),
    ],
)
def test_bad_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
