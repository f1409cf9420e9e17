"""CIBHash recipe: its loss against a loop, the probabilistic binary layer (sampling, gradient),
the two views drawn from the step's RNG, defaults, config, and tiny runs (mAP, resume)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import cibhash

from experiments.configs import cibhash as cibhash_config


def _naive_cibhash(codes, logits, temperature, beta):
    """NT-Xent over the 2N views' codes + β · ½ (KL(1‖2) + KL(2‖1)), summed over bits."""
    views = np.concatenate([codes[0], codes[1]]).astype(float)
    n = codes.shape[1]
    contrastive = 0.0
    for k in range(2 * n):
        def cos(m):
            return float(views[k] @ views[m]) / math.sqrt(float(views[k] @ views[k])
                                                           * float(views[m] @ views[m]))
        partner = (k + n) % (2 * n)
        others = sum(math.exp(cos(m) / temperature) for m in range(2 * n) if m != k)
        contrastive += math.log(others) - cos(partner) / temperature
    kl = 0.0
    for i in range(n):
        for j in range(logits.shape[2]):
            q = 1 / (1 + math.exp(-logits[0, i, j]))
            r = 1 / (1 + math.exp(-logits[1, i, j]))
            kl += q * math.log(q / r) + (1 - q) * math.log((1 - q) / (1 - r))
            kl += r * math.log(r / q) + (1 - r) * math.log((1 - r) / (1 - q))
    return contrastive / (2 * n) + beta * kl / (2 * n)


def _loss(outputs, **hparams):
    hparams = {**cibhash.DEFAULT_HPARAMS, **hparams}
    ctx = methods.LossContext(hparams=hparams)
    return jax.jit(lambda out: cibhash.loss_fn(out, {}, ctx))(outputs)


def _model(bits=6, **hparams):
    config = train.default_config()
    config.bits = bits
    config.model.features = (16,)
    config.hparams = dict(hparams)
    return cibhash.make_model(config, 10)


def _images(batch=4, seed=0):
    return np.random.default_rng(seed).uniform(size=(batch, 8, 8, 1)).astype(np.float32)


@pytest.mark.parametrize("temperature, beta", [(0.3, 0.001), (1.0, 0.5)])
def test_loss_matches_loop_reference(temperature, beta):
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(2, 6, 8)).astype(np.float32)
    codes = np.where(rng.uniform(size=logits.shape) < 0.5, -1.0, 1.0).astype(np.float32)
    loss, terms = _loss({"view_codes": codes, "view_pre": logits}, temperature=temperature,
                        beta=beta)
    np.testing.assert_allclose(float(loss), _naive_cibhash(codes, logits, temperature, beta),
                               rtol=1e-5)
    assert set(terms) == {"contrastive", "kl"}


def test_hand_made_batch():
    # Identical views and logits: the KL is 0, and with codes [1, 1] and [1, −1] each anchor's
    # loss is log(1 + 2 e^{−1/τ}) (partner cos 1, the other item's two views cos 0).
    codes = np.array([[1.0, 1.0], [1.0, -1.0]], np.float32)
    logits = np.array([[0.5, -2.0], [1.0, 3.0]], np.float32)
    loss, terms = _loss({"view_codes": np.stack([codes, codes]),
                         "view_pre": np.stack([logits, logits])})
    assert float(terms["kl"]) == 0.0
    assert float(loss) == pytest.approx(math.log(1 + 2 * math.exp(-1 / 0.3)), rel=1e-5)


def test_stochastic_sign_samples_and_passes_the_gradient_to_the_probability():
    z = jnp.array([-2.0, -0.1, 0.3, 1.5])
    u = jnp.array([0.5, 0.4, 0.6, 0.9])
    # σ(z) = 0.119, 0.475, 0.574, 0.818 against u: −1, +1, −1, −1.
    np.testing.assert_array_equal(cibhash.stochastic_sign(z, u), [-1.0, 1.0, -1.0, -1.0])
    # u = 0.5 is the test-time code sgn(z).
    np.testing.assert_array_equal(cibhash.stochastic_sign(z, jnp.full(4, 0.5)), np.sign(z))
    weights = jnp.array([1.0, -2.0, 3.0, 0.5])
    grad_z, grad_u = jax.grad(
        lambda z, u: jnp.sum(weights * cibhash.stochastic_sign(z, u)), argnums=(0, 1))(z, u)
    q = jax.nn.sigmoid(z)
    np.testing.assert_allclose(grad_z, weights * q * (1 - q), rtol=1e-6)
    np.testing.assert_array_equal(grad_u, 0.0)
    # Each bit is +1 with probability σ(z).
    draws = jax.vmap(lambda k: cibhash.stochastic_sign(z, jax.random.uniform(k, (4,))))(
        jax.random.split(jax.random.key(0), 4000))
    np.testing.assert_allclose(np.mean(np.asarray(draws) > 0, axis=0), q, atol=0.03)


def test_training_draws_two_views_and_codes_from_the_dropout_rng():
    model, x = _model(), _images()
    variables = model.init(jax.random.key(0), x, train=False)
    evaluation = model.apply(variables, x, train=False)
    np.testing.assert_array_equal(evaluation["relaxed"],
                                  np.where(evaluation["pre"] >= 0, 1.0, -1.0))

    def train_outputs(key, model=model):
        return model.apply(variables, x, train=True, rngs={"dropout": key})

    with pytest.raises(Exception, match="dropout"):
        model.apply(variables, x, train=True)
    first = train_outputs(jax.random.key(1))
    assert first["view_pre"].shape == first["view_codes"].shape == (2, 4, 6)
    assert set(np.unique(first["view_codes"])) <= {-1.0, 1.0}
    # Same key, same views and codes; the two views differ from each other and from the input.
    jax.tree.map(np.testing.assert_array_equal, first, train_outputs(jax.random.key(1)))
    assert not np.allclose(first["view_pre"][0], first["view_pre"][1])
    assert not np.allclose(first["view_pre"][0], evaluation["pre"])
    assert not np.array_equal(first["view_codes"], train_outputs(jax.random.key(2))["view_codes"])
    # Views of zero strength are the input itself: both views' logits are the evaluation's.
    plain = _model(max_shift=0, min_area=1.0, noise_std=0.0)
    out = plain.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    for view in range(2):
        np.testing.assert_allclose(out["view_pre"][view], evaluation["pre"], rtol=1e-6)


def test_without_sampling_the_training_codes_are_the_signs_of_the_logits():
    # sample_codes=False: the authors' code thresholds σ(z) at 0.5 in training too.
    model, x = _model(sample_codes=False), _images()
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    np.testing.assert_array_equal(out["view_codes"], np.where(out["view_pre"] >= 0, 1.0, -1.0))
    sampled = _model().apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    np.testing.assert_array_equal(sampled["view_pre"], out["view_pre"])  # The same views.
    assert not np.array_equal(sampled["view_codes"], out["view_codes"])


def test_training_refuses_feature_vectors():
    model = _model()
    x = np.zeros((4, 64), np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    with pytest.raises(ValueError, match=r"image inputs \[B, H, W, C\], got shape \(4, 64\)"):
        model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})


def test_recipe_defaults_are_the_authors():
    recipe = methods.get_recipe("cibhash")
    assert recipe is cibhash.RECIPE
    assert recipe.bank_output is None and recipe.prepare is None
    assert dict(recipe.default_hparams) == {
        "temperature": 0.3, "beta": 0.001, "max_shift": 0, "min_area": 0.5, "noise_std": 0.3,
        "sample_codes": True}
    for author in ("Zexuan Qiu", "Qinliang Su", "Zijing Ou", "Jianxing Yu", "Changyou Chen"):
        assert author in recipe.citation
    assert "IJCAI 2021" in recipe.citation
    assert str(recipe.taxonomy) == "none × single" and not recipe.taxonomy.supervised


def test_config_defaults():
    config = cibhash_config.get_config()
    assert (config.method, config.protocol, config.bits) == ("cibhash", "digits", 32)
    assert config.hparams.to_dict() == dict(cibhash.DEFAULT_HPARAMS)
    assert train.validate_config(config) is cibhash.RECIPE
    assert "--config=experiments/configs/cibhash.py:digits,bits=32" in cibhash_config.__doc__
    mnist = cibhash_config.get_config("mnist5k,bits=32")
    assert mnist.hparams.to_dict() == dict(cibhash.DEFAULT_HPARAMS)
    assert train.validate_config(mnist) is cibhash.RECIPE


def _tiny(**changes):
    return train_helpers.tiny_config(method="cibhash", bits=16, **{
        "model.features": (64,), "optimizer.learning_rate": 3e-3, **changes})


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    # Sampled codes of an untrained network are noise, so the loss first sits at log(2B − 1)
    # (all codes alike) and validation mAP falls before it rises: 600 steps (0.27 → 0.47).
    config = _tiny(num_epochs=60, eval_every=0, checkpoint_every=1000, log_every=100)
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.1, (before, after)


class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_resumed_run_draws_the_same_views_as_an_uninterrupted_one(tmp_path):
    # The views and codes come from the step's RNG, so a run stopped after step 17 and resumed
    # from its checkpoint at step 14 ends with the parameters of an uninterrupted run.
    config = _tiny(num_epochs=3)
    reference = train.fit(config, str(tmp_path / "reference"))

    def stop(step):
        if step == 17:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train.fit(config, str(tmp_path / "resumed"), hooks=[stop])
    resumed = train.fit(config, str(tmp_path / "resumed"))
    assert int(resumed.state.step) == int(reference.state.step) == 30
    jax.tree.map(np.testing.assert_array_equal, resumed.state.params, reference.state.params)
