"""TBH recipe: its loss against a loop, the model's outputs and parameter groups, the draws from
the step's RNG, the one-loss minimax against the authors' two losses (parameter by parameter),
the global-batch weighting, several devices, defaults, config, and tiny runs (mAP, resume)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_helpers

from dlhash_jax import data as data_lib
from dlhash_jax import methods
from dlhash_jax import models
from dlhash_jax import train
from dlhash_jax.methods import tbh

from experiments.configs import tbh as tbh_config

SMALL = {"hidden_dim": 16, "continuous_dim": 12}
ACTOR = ("encoder_hidden", "hash", "continuous", "graph_convolution", "decoder_hidden",
         "decoder_output")


def _sigmoid(t):
    return 1 / (1 + math.exp(-t))


def _naive_tbh(inputs, outputs):
    """½ Σ (x − x̂)² plus, per discriminator, mean −log D(real) + mean −log(1 − D(fake))."""
    x = inputs.reshape(inputs.shape[0], -1).astype(float)
    reconstruction = 0.5 * sum((a - b) ** 2 for a, b in zip(x.ravel(),
                                                          outputs["reconstruction"].ravel()))
    adversarial = 0.0
    for kind in ("code", "continuous"):
        real = outputs[f"{kind}_real_logits"].ravel()
        fake = outputs[f"{kind}_fake_logits"].ravel()
        adversarial += sum(-math.log(_sigmoid(r)) for r in real) / len(real)
        adversarial += sum(-math.log(1 - _sigmoid(f)) for f in fake) / len(fake)
    return reconstruction + adversarial


def _loss(outputs, inputs):
    ctx = methods.LossContext(hparams=dict(tbh.DEFAULT_HPARAMS))
    return jax.jit(lambda out, x: tbh.loss_fn(out, {"inputs": x}, ctx))(outputs, inputs)


def _model(bits=8, features=(), **hparams):
    config = train.default_config()
    config.bits = bits
    config.model.features = features
    config.hparams = {**SMALL, **hparams}
    return tbh.make_model(config, 10)


def _init(model, x):
    """``model.init`` in evaluation mode as one compiled program (op by op, flax compiles each
    initialiser and operation separately)."""
    return jax.jit(functools.partial(model.init, train=False))(jax.random.key(0), x)


def _images(batch=6, seed=0):
    return np.random.default_rng(seed).uniform(size=(batch, 8, 8, 1)).astype(np.float32)


def _random_outputs(rng, batch=5, size=64):
    logits = {f"{kind}_{side}_logits": rng.normal(scale=2.0, size=(batch, 1)).astype(np.float32)
              for kind in ("code", "continuous") for side in ("real", "fake")}
    return {"reconstruction": rng.uniform(size=(batch, size)).astype(np.float32), **logits}


# --- the loss ---------------------------------------------------------------------------------


def test_loss_matches_loop_reference():
    rng = np.random.default_rng(0)
    inputs = rng.uniform(size=(5, 8, 8, 1)).astype(np.float32)
    outputs = _random_outputs(rng)
    loss, terms = _loss(outputs, inputs)
    np.testing.assert_allclose(float(loss), _naive_tbh(inputs, outputs), rtol=1e-5)
    assert set(terms) == {"reconstruction", "adversarial_code", "adversarial_continuous"}
    assert float(loss) == pytest.approx(sum(float(v) for v in terms.values()), rel=1e-6)


def test_hand_made_batch():
    # A perfect reconstruction and discriminators that cannot tell: 2 log 2 per discriminator.
    # One pixel off by 0.5 in one of the 3 items adds ½ · 0.25 (a sum, not a mean, over items).
    inputs = _images(batch=3)
    zeros = np.zeros((3, 1), np.float32)
    outputs = {"reconstruction": inputs.reshape(3, -1).copy(), "code_real_logits": zeros,
               "code_fake_logits": zeros, "continuous_real_logits": zeros,
               "continuous_fake_logits": zeros}
    loss, terms = _loss(outputs, inputs)
    assert float(terms["reconstruction"]) == 0.0
    assert float(loss) == pytest.approx(4 * math.log(2), rel=1e-6)
    outputs["reconstruction"][1, 7] += 0.5
    _, terms = _loss(outputs, inputs)
    assert float(terms["reconstruction"]) == pytest.approx(0.125, rel=1e-5)


def test_reconstruction_weighs_the_global_batch_on_every_device():
    # Two devices of 3 items each: each device's term is (6/2) · its mean, so the devices'
    # average is the authors' ½ Σ over all 6 items, and so is the averaged gradient.
    rng = np.random.default_rng(1)
    inputs = rng.uniform(size=(6, 64)).astype(np.float32)
    outputs = _random_outputs(rng, batch=6)
    ctx = methods.LossContext(hparams=dict(tbh.DEFAULT_HPARAMS))

    def reconstruction(x, out):
        return tbh.loss_fn(out, {"inputs": x}, ctx)[1]["reconstruction"]

    split = jax.tree.map(lambda a: a.reshape(2, 3, *a.shape[1:]), (inputs, outputs))
    per_device = jax.jit(jax.vmap(reconstruction, axis_name=methods.AXIS_NAME))(*split)
    whole = jax.jit(reconstruction)(inputs, outputs)
    assert float(whole) == pytest.approx(0.5 * float(np.sum(
        (inputs - outputs["reconstruction"]) ** 2)), rel=1e-5)
    assert float(jnp.mean(per_device)) == pytest.approx(float(whole), rel=1e-5)
    grad_devices = jax.jit(jax.vmap(jax.grad(reconstruction, argnums=1),
                                    axis_name=methods.AXIS_NAME))(*split)
    grad_whole = jax.jit(jax.grad(reconstruction, argnums=1))(inputs, outputs)
    # Each device's gradient of its rows, averaged over the 2 devices, is the whole gradient.
    np.testing.assert_allclose(grad_devices["reconstruction"].reshape(6, 64) / 2,
                               grad_whole["reconstruction"], rtol=1e-5)


# --- the model --------------------------------------------------------------------------------


def test_evaluation_outputs_and_every_parameter_created_at_init():
    model, x = _model(), _images()
    variables = _init(model, x)
    assert set(variables["params"]) == set(ACTOR) | set(tbh.CRITIC)
    # No hidden backbone layer: the encoder's Dense(hidden) reads the 64 pixels.
    assert variables["params"]["encoder_hidden"]["kernel"].shape == (64, 16)
    assert variables["params"]["hash"]["kernel"].shape == (16, 8)
    assert variables["params"]["continuous"]["kernel"].shape == (16, 12)
    assert variables["params"]["graph_convolution"]["kernel"].shape == (12, 12)
    assert variables["params"]["decoder_output"]["kernel"].shape == (16, 64)
    assert variables["params"]["code_discriminator"]["kernel"].shape == (8, 1)
    out = jax.jit(functools.partial(model.apply, train=False))(variables, x)
    assert set(out) == {"pre", "relaxed", "features"}
    assert out["pre"].shape == out["relaxed"].shape == (6, 8)
    np.testing.assert_array_equal(out["relaxed"], np.where(out["pre"] >= 0, 1.0, -1.0))
    np.testing.assert_array_equal(models.encode(model.apply, variables, x),
                                  np.where(out["pre"] >= 0, 1.0, -1.0))


def test_training_outputs_and_draws_from_the_dropout_rng():
    model, x = _model(), _images()
    variables = _init(model, x)
    evaluation = jax.jit(functools.partial(model.apply, train=False))(variables, x)

    @jax.jit
    def train_outputs(key, model=model):
        return model.apply(variables, x, train=True, rngs={"dropout": key},
                           mutable=["intermediates"])

    with pytest.raises(Exception, match="dropout"):
        model.apply(variables, x, train=True)
    out, state = train_outputs(jax.random.key(1))
    assert out["reconstruction"].shape == (6, 64)
    assert np.all(np.asarray(out["reconstruction"]) >= 0)  # the decoder ends in a ReLU
    for key in ("code_real_logits", "code_fake_logits", "continuous_real_logits",
                "continuous_fake_logits"):
        assert out[key].shape == (6, 1)
    # ε = 0.5 (the authors' code): the training code is the test-time code sgn(z), on ±1.
    np.testing.assert_array_equal(out["relaxed"], evaluation["relaxed"])
    # Two compiled programs: their float32 roundings may differ (measured: 3e-7 at most).
    np.testing.assert_allclose(out["pre"], evaluation["pre"], rtol=1e-6, atol=1e-6)
    (code_prior,), (continuous_prior,) = (state["intermediates"][name] for name in (
        "code_prior", "continuous_prior"))
    assert code_prior.shape == (6, 8) and set(np.unique(code_prior)) <= {0.0, 1.0}
    assert continuous_prior.shape == (6, 12)
    assert np.all((continuous_prior >= 0) & (continuous_prior < 1))
    # Same key, same draws; another key, other draws (and other discriminator scores).
    again, again_state = train_outputs(jax.random.key(1))
    jax.tree.map(np.testing.assert_array_equal, (out, state), (again, again_state))
    other, other_state = train_outputs(jax.random.key(2))
    assert not np.array_equal(other_state["intermediates"]["continuous_prior"][0],
                              continuous_prior)
    assert not np.allclose(other["continuous_real_logits"], out["continuous_real_logits"])
    np.testing.assert_array_equal(other["code_fake_logits"], out["code_fake_logits"])
    # The training step leaves "intermediates" immutable: sow keeps nothing.
    plain = jax.jit(lambda key: model.apply(variables, x, train=True, rngs={"dropout": key}))(
        jax.random.key(1))
    jax.tree.map(np.testing.assert_array_equal, plain, out)


def test_sampled_threshold_draws_codes_from_bernoulli_of_sigma():
    # sample_threshold=True (the paper): each bit is 1 with probability σ(z).
    model, x = _model(sample_threshold=True), _images(batch=200, seed=3)
    variables = _init(model, x)
    z = jax.jit(functools.partial(model.apply, train=False))(variables, x)["pre"]
    draw = jax.jit(lambda k: model.apply(variables, x, train=True, rngs={"dropout": k})["relaxed"])
    draws = jnp.stack([draw(k) for k in jax.random.split(jax.random.key(4), 40)])
    assert not np.array_equal(draws[0], draws[1])
    frequency = np.mean(np.asarray(draws) > 0, axis=0)
    error = frequency - np.asarray(jax.nn.sigmoid(z))
    assert abs(error.mean()) < 0.01 and np.abs(error).max() < 0.35


def test_model_refuses_inputs_without_a_feature_axis():
    model = _model()
    with pytest.raises(ValueError, match=r"TBH expects inputs \[B, \.\.\.\], got shape \(4,\)"):
        model.init(jax.random.key(0), np.zeros(4, np.float32), train=False)


# --- one loss, two players --------------------------------------------------------------------


def _tf_abs(t):
    """|t| with TensorFlow's derivative sign(t), 0 at 0 (JAX's abs has 1 there)."""
    return t * jax.lax.stop_gradient(jnp.sign(t))


def _authors_losses(params, x, code_prior, continuous_prior):
    """The authors' actor and critic losses (ymcidence/TBH train/tbh_train.py), written from
    their layers with the parameters of our model: {0, 1} codes, the |·|-form distance, the
    degree-normalised graph convolution, sigmoid discriminators and their cross-entropy."""

    def dense(name, inputs):
        return inputs @ params[name]["kernel"] + params[name]["bias"]

    flat = x.reshape(x.shape[0], -1)
    hidden = jax.nn.relu(dense("encoder_hidden", flat))
    prob = jax.nn.sigmoid(dense("hash", hidden))
    # sigmoid_sign with eps = 0.5 and the distributional derivative d code/d prob = 1.
    code = prob + jax.lax.stop_gradient((prob > 0.5).astype(prob.dtype) - prob)
    continuous = jax.nn.sigmoid(dense("continuous", hidden))
    bits = code.shape[1]
    m1 = code - 1
    distance = _tf_abs(code @ m1.T + m1 @ code.T) / bits
    adjacency = (1 - distance) ** 1.4
    degree = adjacency @ jnp.ones((adjacency.shape[0], 1))
    d_inv_sqrt = jnp.eye(adjacency.shape[0]) * (degree + 1e-8) ** -0.5
    laplacian = d_inv_sqrt @ adjacency @ d_inv_sqrt
    convolved = jax.nn.sigmoid(laplacian @ dense("graph_convolution", continuous))
    prediction = jax.nn.relu(dense("decoder_output", jax.nn.relu(dense("decoder_hidden",
                                                                       convolved))))

    def adv_loss(real, fake):
        return jnp.mean(-jnp.log(real)) + jnp.mean(-jnp.log(1 - fake))

    dis_1 = jax.nn.sigmoid(dense("code_discriminator", code))
    dis_2 = jax.nn.sigmoid(dense("continuous_discriminator", convolved))
    dis_1_sample = jax.nn.sigmoid(dense("code_discriminator", code_prior))
    dis_2_sample = jax.nn.sigmoid(dense("continuous_discriminator", continuous_prior))
    reconstruction = 0.5 * jnp.sum((prediction - flat) ** 2)  # tf.nn.l2_loss
    adversarial = adv_loss(dis_1_sample, dis_1) + adv_loss(dis_2_sample, dis_2)
    return reconstruction - adversarial, adversarial


def test_one_loss_gives_the_actor_and_the_critic_their_own_gradients(x64):
    model = _model(bits=6)
    x = jnp.asarray(_images(batch=7, seed=5), jnp.float64)
    variables = _init(model, x)
    params = jax.tree.map(lambda p: np.asarray(p, np.float64), variables["params"])
    key = jax.random.key(3)
    ctx = methods.LossContext(hparams=dict(tbh.DEFAULT_HPARAMS))

    def recipe_loss(p):
        outputs = model.apply({"params": p}, x, train=True, rngs={"dropout": key})
        return tbh.loss_fn(outputs, {"inputs": x}, ctx)

    # One compiled program for every value and gradient below (op by op, the float64 gradients
    # compiled each operation separately: 16 s).
    @jax.jit
    def values_and_gradients(params):
        _, state = model.apply({"params": params}, x, train=True, rngs={"dropout": key},
                               mutable=["intermediates"])
        priors = [state["intermediates"][name][0] for name in ("code_prior", "continuous_prior")]

        def authors(p, weight=0.0):
            actor_loss, critic_loss = _authors_losses(p, x, *priors)
            return actor_loss + weight * critic_loss

        return {
            "ours": jax.grad(lambda p: recipe_loss(p)[0])(params),
            "actor": jax.grad(authors)(params),
            "critic": jax.grad(lambda p: _authors_losses(p, x, *priors)[1])(params),
            "plain": jax.grad(functools.partial(authors, weight=2.0))(params),
            "authors_values": _authors_losses(params, x, *priors),
            "terms": recipe_loss(params)[1],
        }

    result = values_and_gradients(params)
    ours, actor, critic = result["ours"], result["actor"], result["critic"]
    # The same objective values first: our forward is the authors'.
    actor_value, critic_value = result["authors_values"]
    terms = result["terms"]
    adversarial = terms["adversarial_code"] + terms["adversarial_continuous"]
    assert float(critic_value) == pytest.approx(float(adversarial), rel=1e-12)
    assert float(actor_value) == pytest.approx(float(terms["reconstruction"] - adversarial),
                                               rel=1e-12)
    for group in ACTOR:
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12),
                     ours[group], actor[group])
        assert any(np.abs(leaf).max() > 0 for leaf in jax.tree.leaves(ours[group])), group
    for group in tbh.CRITIC:
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12),
                     ours[group], critic[group])
        assert any(np.abs(leaf).max() > 0 for leaf in jax.tree.leaves(ours[group])), group
    # Without the reversal the encoder would descend the adversarial terms instead: the hash
    # layer's gradient would differ.
    plain = result["plain"]  # the gradient of actor + 2 critic
    assert not np.allclose(plain["hash"]["kernel"], ours["hash"]["kernel"], rtol=1e-3)


# --- several devices --------------------------------------------------------------------------


@functools.cache
def _tiny_run_setup():
    """The run and its initial state (host arrays), built once for the tests below."""
    config = train_helpers.tiny_config(method="tbh", bits=8, batch_size=20, **{
        "model.features": (), "hparams.hidden_dim": 32, "hparams.continuous_dim": 16})
    run = train.setup_run(config)
    state = jax.device_get(train.create_train_state(
        run.model, run.tx, seed=0, sample_inputs=run.data.train.inputs[:20], recipe=run.recipe,
        train_split=run.data.train,
    ))
    return run, state


def _tbh_steps(num_devices, parallel, steps=3):
    run, state = _tiny_run_setup()
    runner = train.ReplicatedStep(
        train.make_step(run.recipe, run.hparams), parallel=parallel,
        devices=jax.devices()[:num_devices],
    )
    placed = runner.put_state(state)
    batches = data_lib.batches(run.data.train, 20, seed=0, epoch=0)
    losses = []
    for _ in range(steps):
        placed, step_metrics = runner(placed, runner.put_batch(next(batches)))
        losses.append(float(runner.get(step_metrics)["loss"]))
    return state.params, runner.get(placed.params), runner.replicas(placed.params), losses


def test_two_devices_under_pmap_and_shard_map_take_the_same_steps():
    # pmap and shard_map run the same per-device step: the same parameters, identical replicas.
    initial, _, _, one_losses = _tbh_steps(1, "pmap")
    _, pmap, pmap_replicas, pmap_losses = _tbh_steps(2, "pmap")
    _, shard, shard_replicas, shard_losses = _tbh_steps(2, "shard_map")
    assert all(np.isfinite(one_losses + pmap_losses + shard_losses))
    moved = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(pmap),
                                                           jax.tree.leaves(initial)))
    assert moved > 1e-4
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6), shard, pmap)
    np.testing.assert_allclose(shard_losses, pmap_losses, rtol=1e-5)
    for replicas in (pmap_replicas, shard_replicas):
        jax.tree.map(np.testing.assert_array_equal, replicas[0], replicas[1])


def test_each_device_builds_its_graph_over_its_share_of_the_batch():
    # The first 2-device step's loss is the mean of the two devices' losses, each on its 10
    # items (its own graph) with its own draws: the step's key folded with the device index.
    run, state = _tiny_run_setup()
    batch = next(data_lib.batches(run.data.train, 20, seed=0, epoch=0))
    ctx = methods.LossContext(hparams=run.hparams)

    def device_loss(inputs, device):
        key = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), device)
        outputs = run.model.apply({"params": state.params}, inputs, train=True,
                                  rngs={"dropout": key})
        return tbh.loss_fn(outputs, {"inputs": inputs}, ctx)[0]

    halves = batch["inputs"].reshape(2, 10, *batch["inputs"].shape[1:])
    per_device = jax.jit(jax.vmap(device_loss, axis_name=methods.AXIS_NAME))(halves,
                                                                             jnp.arange(2))
    runner = train.ReplicatedStep(train.make_step(run.recipe, run.hparams), parallel="pmap",
                                  devices=jax.devices()[:2])
    _, step_metrics = runner(runner.put_state(state), runner.put_batch(batch))
    assert float(runner.get(step_metrics)["loss"]) == pytest.approx(
        float(jnp.mean(per_device)), rel=1e-5)
    # A graph over all 20 items mixes other items into device 0's reconstructions.
    key = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), 0)

    @jax.jit
    def reconstruction(inputs):
        return run.model.apply({"params": state.params}, inputs, train=True,
                               rngs={"dropout": key})["reconstruction"][:10]

    difference = np.abs(reconstruction(batch["inputs"]) - reconstruction(halves[0]))
    assert difference.max() > 1e-4, difference.max()


# --- defaults and config ----------------------------------------------------------------------


def test_recipe_defaults_are_the_authors():
    recipe = methods.get_recipe("tbh")
    assert recipe is tbh.RECIPE
    assert recipe.bank_output is None and recipe.prepare is None and not recipe.alternating
    assert dict(recipe.default_hparams) == {
        "hidden_dim": 1024, "continuous_dim": 512, "power": 1.4, "sample_threshold": False}
    for author in ("Yuming Shen", "Jie Qin", "Jiaxin Chen", "Li Liu", "Fan Zhu", "Ling Shao"):
        assert author in recipe.citation
    assert "CVPR 2020" in recipe.citation
    assert str(recipe.taxonomy) == "none × single" and not recipe.taxonomy.supervised


def test_config_defaults():
    config = tbh_config.get_config()
    assert (config.method, config.protocol, config.bits) == ("tbh", "digits", 32)
    assert train.validate_config(config) is tbh.RECIPE
    assert config.optimizer.grad_clip_norm == 0  # one Adam = the authors' two (docstring)
    assert "--config=experiments/configs/tbh.py:digits,bits=32" in tbh_config.__doc__
    mnist = tbh_config.get_config("mnist5k,bits=32")
    assert mnist.optimizer.grad_clip_norm == 0
    assert train.validate_config(mnist) is tbh.RECIPE


# --- tiny runs ----------------------------------------------------------------------------------


def _tiny(**changes):
    return train_helpers.tiny_config(method="tbh", bits=16, **{
        "batch_size": 100, "model.features": (), "hparams.hidden_dim": 256,
        "hparams.continuous_dim": 128, "optimizer.learning_rate": 3e-3, **changes})


@pytest.mark.slow
def test_tiny_run_improves_validation_map_and_keeps_many_codes(tmp_path):
    # 500 steps; validation mAP stays near its untrained 0.24 for about 300 of them, then rises
    # (measured: 0.24 → 0.56).
    config = _tiny(num_epochs=100, eval_every=0, checkpoint_every=1000, log_every=100)
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.15, (before, after)
    result = train.fit(config, str(tmp_path))  # resumes the finished run: its final state
    variables = {"params": result.state.params, **result.state.model_state}
    training_codes = models.encode(result.run.model.apply, variables,
                                   result.run.data.train.inputs)
    # TBH groups items under shared codes (the digits config: 186 codes for the 500 training
    # items at 32 bits); here 73 at 16 bits, where a collapsed run has one or a handful.
    assert len(np.unique(training_codes, axis=0)) >= 30


class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_resumed_run_draws_what_an_uninterrupted_one_did(tmp_path):
    config = _tiny(num_epochs=6, batch_size=50)
    reference = train.fit(config, str(tmp_path / "reference"))

    def stop(step):
        if step == 17:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train.fit(config, str(tmp_path / "resumed"), hooks=[stop])
    resumed = train.fit(config, str(tmp_path / "resumed"))
    assert int(resumed.state.step) == int(reference.state.step) == 60
    jax.tree.map(np.testing.assert_array_equal, resumed.state.params, reference.state.params)
