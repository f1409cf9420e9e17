"""Tests of dlhash_jax.train: config checks, optimizer, the step, the loop, resume, NaN stop."""

import dataclasses
import functools
import json
import os
import select
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import safetensors.numpy
import train_helpers

from dlhash_jax import methods
from dlhash_jax import models
from dlhash_jax import train
from dlhash_jax.data import image_pipeline
from dlhash_jax.data.image_pipeline import ImageSource
from dlhash_jax.train import run as train_run

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)


def _subprocess_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT, TESTS_DIR, env.get("PYTHONPATH", "")])
    return env


# --- config validation -------------------------------------------------------------------------


def test_default_config_is_valid():
    recipe = train.validate_config(train_helpers.tiny_config())
    assert recipe is methods.RECIPES["dpsh"]


@pytest.mark.parametrize(
    "dotted, value, message",
    [
        ("method", "dpshh", r"Unknown method 'dpshh'; known methods: adsh, .*, udh, .*\."),
        ("protocol", "digitz", r"Unknown protocol 'digitz'.*Did you mean 'digits'\?"),
        ("model.backbone", "vit", r"model.backbone must be one of"),
        ("optimizer.name", "lion", r"optimizer.name must be one of"),
        ("parallel", "pjit", r"parallel must be one of \('pmap', 'shard_map'\)"),
        ("evaluation.ties", "first", r"evaluation.ties must be one of"),
        ("batch_size", 0, r"config.batch_size must be a positive integer, got 0"),
        ("num_devices", 9, r"num_devices=9 but only 4 local devices"),
    ],
)
def test_validate_config_rejects_bad_values(dotted, value, message):
    config = train_helpers.tiny_config(**{dotted: value})
    with pytest.raises(ValueError, match=message):
        train.validate_config(config)


def test_validate_config_rejects_typo_fields_with_suggestion():
    config = train_helpers.tiny_config()
    config.optimizer.learning_rte = 0.1
    with pytest.raises(ValueError, match=r"'optimizer.learning_rte' \(did you mean "
                       r"'optimizer.learning_rate'\?\)"):
        train.validate_config(config)
    config = train_helpers.tiny_config()
    config.num_epoch = 3
    with pytest.raises(ValueError, match=r"'num_epoch' \(did you mean 'num_epochs'\?\)"):
        train.validate_config(config)


def test_validate_config_rejects_unknown_hparam_and_uneven_batch():
    config = train_helpers.tiny_config()
    config.hparams.etta = 1.0
    with pytest.raises(ValueError, match=r"Unknown hyper-parameter\(s\) \['etta'\] for method "
                       r"'dpsh'; its hyper-parameters are \['eta'\]"):
        train.validate_config(config)
    config = train_helpers.tiny_config(num_devices=4, batch_size=50)
    with pytest.raises(ValueError, match=r"batch_size=50 must be divisible by the number of "
                       r"devices \(4\)"):
        train.validate_config(config)


def test_config_error_fails_before_anything_is_written(tmp_path):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match="Unknown method"):
        train.fit(train_helpers.tiny_config(method="nope"), str(workdir))
    assert not workdir.exists()


# --- optimizer ---------------------------------------------------------------------------------


def test_schedule_matches_closed_form():
    opt = train.default_config().optimizer
    opt.learning_rate = 0.2
    opt.warmup_steps = 10
    schedule = train.make_schedule(opt, num_steps=110)
    for step in (0, 5, 10, 60, 110):
        if step < 10:
            expected = 0.2 * step / 10
        else:
            expected = 0.1 * (1 + np.cos(np.pi * (step - 10) / 100))
        np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-5, atol=1e-7)
    opt.schedule = "constant"
    opt.warmup_steps = 0
    assert float(train.make_schedule(opt, num_steps=5)(3)) == pytest.approx(0.2)


def test_step_schedule_is_a_staircase_after_the_warmup():
    opt = train.default_config().optimizer
    opt.update(learning_rate=0.2, schedule="step", decay_every=30, decay_rate=0.1, warmup_steps=5)
    schedule = train.make_schedule(opt, num_steps=1000)
    expected = {0: 0.0, 4: 0.16, 5: 0.2, 34: 0.2, 35: 0.02, 64: 0.02, 65: 0.002, 95: 0.0002}
    for step, rate in expected.items():
        np.testing.assert_allclose(float(schedule(step)), rate, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize(
    "field, value, message",
    [("decay_every", 0, "decay_every"), ("decay_rate", 0.0, "decay_rate"),
     ("decay_rate", 1.5, "decay_rate")],
)
def test_bad_step_schedule_fields_are_refused(field, value, message):
    config = train.default_config()
    config.optimizer[field] = value
    with pytest.raises(ValueError, match=message):
        train.validate_config(config)


def test_sgd_with_coupled_weight_decay_matches_hand_update():
    opt = train.default_config().optimizer
    opt.update(name="sgd", learning_rate=0.5, schedule="constant", momentum=0.0,
               weight_decay=0.1)
    tx = train.make_optimizer(opt, num_steps=10)
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.3, 0.4])}
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    np.testing.assert_allclose(new["w"], [1.0 - 0.5 * (0.3 + 0.1), -2.0 - 0.5 * (0.4 - 0.2)])


def test_backbone_parameters_learn_at_the_multiplied_rate_after_global_clipping():
    opt = train.default_config().optimizer
    opt.update(name="sgd", learning_rate=0.5, schedule="constant", momentum=0.0,
               grad_clip_norm=1.0, backbone_lr_multiplier=0.1)
    tx = train.make_optimizer(opt, num_steps=10)
    params = {"network": {"backbone": {"w": jnp.array([1.0, 2.0])}, "head": {"w": jnp.ones(1)}}}
    grads = {"network": {"backbone": {"w": jnp.array([3.0, 0.0])}, "head": {"w": jnp.array([4.0])}}}
    updates, _ = tx.update(grads, tx.init(params), params)
    # One clip over all gradients (norm 5 → 1), then 0.5 × 0.1 for the backbone, 0.5 for the rest.
    np.testing.assert_allclose(updates["network"]["backbone"]["w"], [-0.5 * 0.1 * 0.6, 0.0],
                               rtol=1e-6)
    np.testing.assert_allclose(updates["network"]["head"]["w"], [-0.5 * 0.8], rtol=1e-6)
    opt.backbone_lr_multiplier = 1.0
    plain = train.make_optimizer(opt, num_steps=10)
    updates, _ = plain.update(grads, plain.init(params), params)
    np.testing.assert_allclose(updates["network"]["backbone"]["w"], [-0.5 * 0.6, 0.0], rtol=1e-6)


def test_backbone_multiplier_needs_backbone_parameters_and_a_positive_value():
    opt = train.default_config().optimizer
    opt.backbone_lr_multiplier = 0.1
    tx = train.make_optimizer(opt, num_steps=10)
    with pytest.raises(ValueError, match=r"no parameters under a 'backbone' submodule \(its "
                       r"top-level parameter groups: \['encoder', 'hash'\]\)"):
        tx.init({"encoder": {"w": jnp.ones(2)}, "hash": {"w": jnp.ones(2)}})
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        config = train.default_config()
        config.optimizer.backbone_lr_multiplier = bad
        with pytest.raises(ValueError, match="config.optimizer.backbone_lr_multiplier must be "
                           "positive"):
            train.validate_config(config)


def test_alternating_optimizer_updates_one_group_per_step_and_freezes_the_other():
    opt = train.default_config().optimizer
    opt.update(name="adam", learning_rate=0.1, schedule="constant")
    tx = train.make_optimizer(opt, num_steps=8, alternating=("image", "text"))
    params = {"image": {"w": jnp.array([1.0, 2.0])}, "text": {"w": jnp.array([-1.0])}}
    # Adam with momentum: a frozen group would still drift on a zero gradient if its optimizer
    # state moved, so the gradient of both groups is non-zero at every step.
    grads = {"image": {"w": jnp.array([0.5, -0.5])}, "text": {"w": jnp.array([0.25])}}
    state = tx.init(params)
    history = [params]
    for _ in range(4):
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        history.append(params)
    for step in range(4):
        before, after = history[step], history[step + 1]
        moved = {name: bool(np.any(before[name]["w"] != after[name]["w"])) for name in before}
        assert moved == {"image": step % 2 == 0, "text": step % 2 == 1}, (step, moved)
    # Each group's Adam has seen exactly its own two steps: its first update has magnitude lr.
    np.testing.assert_allclose(history[1]["image"]["w"], [0.9, 2.1], rtol=1e-6)
    np.testing.assert_allclose(history[2]["text"]["w"], [-1.1], rtol=1e-6)
    reference = train.make_optimizer(opt, num_steps=4)
    ref_params, ref_state = {"w": jnp.array([-1.0])}, None
    ref_state = reference.init(ref_params)
    for _ in range(2):
        updates, ref_state = reference.update(grads["text"], ref_state, ref_params)
        ref_params = optax.apply_updates(ref_params, updates)
    np.testing.assert_allclose(history[4]["text"]["w"], ref_params["w"], rtol=1e-6)
    with pytest.raises(ValueError, match="must be exactly the top-level parameter groups"):
        tx.init({"image": {"w": jnp.zeros(2)}, "audio": {"w": jnp.zeros(1)}})


def test_cross_modal_methods_and_protocols_must_match():
    with pytest.raises(ValueError, match="'dcmh' is cross-modal and needs image and text inputs"):
        train.setup_run(train_helpers.tiny_config(method="dcmh"))
    with pytest.raises(ValueError, match="'digits_mosaic_tags' is cross-modal.*method 'dpsh'"):
        train.setup_run(train_helpers.tiny_config(protocol="digits_mosaic_tags"))


# --- the step ----------------------------------------------------------------------------------

_TRACES = []


def _toy_loss(outputs, batch, ctx):
    """mean_ij u_i·bank_j: its gradient in u is the same for every row, easy to write by hand."""
    _TRACES.append(ctx.step)
    u = outputs["relaxed"]
    loss = ctx.hparams["scale"] * jnp.mean(u @ ctx.bank.outputs.T)
    return loss, {"scaled": loss}


_TOY_RECIPE = methods.Recipe(
    name="toy",
    title="toy",
    citation="none",
    taxonomy=methods.Taxonomy("single", "pairs"),
    make_model=functools.partial(methods.hash_network, relaxation="none"),
    loss_fn=_toy_loss,
    default_hparams={"scale": 2.0},
    bank_output="relaxed",
)


def test_train_step_updates_bank_before_loss_and_applies_sgd():
    rng = np.random.default_rng(0)
    num_items, dim, bits, batch_size, lr = 6, 3, 2, 4, 0.1
    split = types_split(rng.normal(size=(num_items, dim)), np.eye(2)[rng.integers(0, 2, num_items)])
    config = train.default_config()
    config.bits = bits
    config.model.features = ()  # identity backbone: outputs are x W + b
    model = _TOY_RECIPE.make_model(config, 2)
    tx = optax.sgd(lr)
    state = train.create_train_state(
        model, tx, seed=0, sample_inputs=split.inputs[:batch_size], recipe=_TOY_RECIPE,
        train_split=split,
    )
    kernel = np.asarray(state.params["head"]["hash"]["kernel"])
    bias = np.asarray(state.params["head"]["hash"]["bias"])
    np.testing.assert_allclose(state.bank.outputs, split.inputs @ kernel + bias, rtol=1e-5)

    runner = train.ReplicatedStep(
        train.make_step(_TOY_RECIPE, {"scale": 2.0}), parallel="pmap", devices=jax.devices()[:1]
    )
    placed = runner.put_state(jax.device_get(state))
    index = np.array([4, 0, 2, 5], np.int32)
    batch = {"inputs": split.inputs[index], "labels": split.labels[index], "index": index}
    _TRACES.clear()
    placed, step_metrics = runner(placed, runner.put_batch(batch))

    # Reference: rows of the batch are replaced first, then every row's gradient is
    # scale * mean_j bank_j / B, with the bank held constant.
    u = batch["inputs"] @ kernel + bias
    bank = split.inputs @ kernel + bias
    bank[index] = u
    expected_loss = 2.0 * np.mean(u @ bank.T)
    grad_u = np.tile(2.0 * bank.sum(0) / (batch_size * num_items), (batch_size, 1))
    new = runner.get(placed)
    np.testing.assert_allclose(runner.get(step_metrics)["loss"], expected_loss, rtol=1e-5)
    np.testing.assert_allclose(new.bank.outputs, bank, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        new.params["head"]["hash"]["kernel"], kernel - lr * batch["inputs"].T @ grad_u,
        rtol=1e-5, atol=1e-6,
    )
    np.testing.assert_allclose(
        new.params["head"]["hash"]["bias"], bias - lr * grad_u.sum(0), rtol=1e-5, atol=1e-6
    )
    assert int(new.step) == 1

    placed, _ = runner(placed, runner.put_batch(batch))
    placed, _ = runner(placed, runner.put_batch(batch))
    assert int(runner.get(placed.step)) == 3
    assert len(_TRACES) == 1, "the step was traced again: it recompiles every call"


def _counting_init(ctx):
    return {
        "updates": jnp.zeros((), jnp.int32),
        "last_step": -jnp.ones((), jnp.int32),
        "seen": jnp.zeros_like(ctx.bank.outputs),
    }


def _counting_update(discrete, ctx):
    assert ctx.discrete is discrete and ctx.params is None
    return {"updates": discrete["updates"] + 1, "last_step": ctx.step, "seen": ctx.bank.outputs}


def _counting_loss(outputs, batch, ctx):
    u = outputs["relaxed"]
    loss = jnp.mean(u @ ctx.bank.outputs.T)
    return loss, {"updates": ctx.discrete["updates"].astype(jnp.float32)}


_COUNTING_RECIPE = dataclasses.replace(
    _TOY_RECIPE,
    name="counting",
    loss_fn=_counting_loss,
    default_hparams={"every": 2},
    discrete=methods.DiscreteUpdate(
        init=_counting_init, update=_counting_update, every_epochs=lambda h: h["every"]
    ),
)


def test_discrete_variables_update_every_period_before_the_loss():
    rng = np.random.default_rng(1)
    split = types_split(rng.normal(size=(8, 3)), np.eye(2)[rng.integers(0, 2, 8)])
    config = train.default_config()
    config.bits = 2
    config.model.features = ()
    model = _COUNTING_RECIPE.make_model(config, 2)
    state = train.create_train_state(
        model, optax.sgd(0.1), seed=0, sample_inputs=split.inputs[:4], recipe=_COUNTING_RECIPE,
        train_split=split, hparams={"every": 2},
    )
    assert int(state.discrete["updates"]) == 0 and state.discrete["seen"].shape == (8, 2)
    with pytest.raises(ValueError, match=r"'counting' updates discrete variables every few "
                       r"epochs; pass steps_per_epoch"):
        train.make_step(_COUNTING_RECIPE, {"every": 2})
    # 2 epochs of 2 steps between updates: steps 0, 4 and 8.
    step_fn = train.make_step(_COUNTING_RECIPE, {"every": 2}, steps_per_epoch=2)
    runner = train.ReplicatedStep(step_fn, parallel="pmap", devices=jax.devices()[:1])
    placed = runner.put_state(jax.device_get(state))
    banks = [np.asarray(state.bank.outputs)]
    for step in range(9):
        index = np.array([(2 * step) % 8, (2 * step + 1) % 8], np.int32)
        batch = {"inputs": split.inputs[index], "labels": split.labels[index], "index": index}
        placed, step_metrics = runner(placed, runner.put_batch(batch))
        # The loss of step t already sees the update that starts its period.
        assert runner.get(step_metrics)["updates"] == step // 4 + 1, step
        banks.append(runner.get(placed.bank.outputs))
    discrete = runner.get(placed.discrete)
    assert int(discrete["updates"]) == 3 and int(discrete["last_step"]) == 8
    # The update of step 8 saw the bank as steps 0-7 left it, before step 8's rows.
    np.testing.assert_array_equal(discrete["seen"], banks[8])
    assert not np.array_equal(banks[8], banks[9])


@dataclasses.dataclass
class _Split:
    inputs: np.ndarray
    labels: np.ndarray


def types_split(inputs, labels):
    return _Split(np.asarray(inputs, np.float32), np.asarray(labels, np.float32))


# --- multi-device (separate process, 4 fake CPU devices) ---------------------------------------


def test_pmap_and_shard_map_match_single_device():
    proc = subprocess.run(
        [sys.executable, os.path.join(TESTS_DIR, "multidevice_worker.py")],
        capture_output=True, text=True, timeout=240, env=_subprocess_env(), check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["initial_param_change"] > 1e-3  # the steps really moved the parameters
    for path in ("shard_map_1", "pmap_4", "shard_map_4"):
        result = report[path]
        assert result["step"] == 4, (path, result)
        assert result["param_diff"] < 1e-5, (path, result)
        assert result["bank_diff"] < 1e-5, (path, result)
        assert result["loss_diff"] < 1e-5, (path, result)
        assert result["replica_bank_spread"] == 0.0, (path, result)
    assert report["pmap_4"]["num_replicas"] == 4
    assert report["shard_map_4"]["num_replicas"] == 4
    for method in ("dsdh", "adsh"):
        for parallel in ("pmap", "shard_map"):
            result = report[f"{method}_{parallel}_4"]
            assert result["initial_discrete_change"] > 0.5, (method, parallel, result)
            assert result["num_replicas"] == 4
            assert result["replica_discrete_spread"] == 0.0, (method, parallel, result)
            for key in ("param_diff", "bank_diff", "loss_diff", "discrete_diff"):
                assert result[key] < 1e-4, (method, parallel, key, result)
    dcmh = report["dcmh_pmap_4"]
    # Four steps alternate image, text, image, text: both networks moved.
    assert min(dcmh["initial_param_change"].values()) > 1e-4, dcmh
    assert dcmh["step"] == 4, dcmh
    assert dcmh["param_diff"] < 1e-5 and dcmh["bank_diff"] < 1e-5, dcmh


# --- the loop ----------------------------------------------------------------------------------


def _params_equal(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


def _read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.mark.parametrize("method", sorted(train_helpers.RESUME_CHANGES))
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, method):
    config = train_helpers.tiny_config(**train_helpers.RESUME_CHANGES[method])
    reference = train.fit(config, str(tmp_path / "reference"))

    workdir = tmp_path / "killed"
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, os.path.join(TESTS_DIR, "resume_worker.py"), str(workdir), "17",
             method],
            stdout=subprocess.PIPE, stderr=log, text=True, env=_subprocess_env(),
        )
    try:
        # The worker prints PAUSED after step 17 and sleeps; the checkpoint of step 14 (mid-epoch)
        # is written asynchronously, so wait until its directory is committed too.
        deadline = time.time() + 120
        ready, _, _ = select.select([proc.stdout], [], [], deadline - time.time())
        line = proc.stdout.readline() if ready else ""
        assert line.strip() == "PAUSED", log_path.read_text()[-3000:]
        while not (workdir / "checkpoints" / "14").is_dir():
            assert time.time() < deadline, "the first checkpoint never appeared"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (workdir / "checkpoints" / "30").exists()

    resumed = train.fit(config, str(workdir))
    assert int(resumed.state.step) == int(reference.state.step) == 30
    _params_equal(resumed.state.params, reference.state.params)
    _params_equal(resumed.state.opt_state, reference.state.opt_state)
    np.testing.assert_array_equal(resumed.state.bank.outputs, reference.state.bank.outputs)
    # ADSH's codes V, updated at steps 0, 10 and 20, the last one after the resume at step 14.
    jax.tree.map(np.testing.assert_array_equal, resumed.state.discrete, reference.state.discrete)
    assert (resumed.best_val_map, resumed.best_step) == (
        reference.best_val_map, reference.best_step)
    if method == "adsh":
        run = train.setup_run(config, workdir=str(workdir))
        for which in ("best", "last"):
            codes = [train.restore_for_evaluation(str(w), run, which=which).train_codes
                     for w in (workdir, tmp_path / "reference")]
            np.testing.assert_array_equal(codes[0], codes[1])
        np.testing.assert_array_equal(codes[0], reference.state.discrete["V"])

    # The log of the killed run past its checkpoint was dropped and redone once.
    log = _read_jsonl(workdir / "metrics.jsonl")
    reference_log = _read_jsonl(tmp_path / "reference" / "metrics.jsonl")
    assert [r["step"] for r in log] == [r["step"] for r in reference_log]
    for mine, theirs in zip(log, reference_log):
        for key in mine.keys() - {"steps_per_sec"}:
            assert mine[key] == pytest.approx(theirs[key], rel=1e-6)
    assert {"config.json", "split_indices.npz", "metrics.jsonl", "checkpoints", "best"} <= set(
        os.listdir(workdir))


def test_config_images_reads_every_split_through_the_image_pipeline(tmp_path):
    config = train_helpers.tiny_config(**train_helpers.RESUME_CHANGES["images"])
    run = train.setup_run(config)
    plain = train.setup_run(train_helpers.tiny_config())
    assert run.data.input_shape == (8, 8, 3)
    for name in ("train", "validation", "query", "database"):
        split, source = getattr(plain.data, name), getattr(run.data, name).inputs
        assert isinstance(source, ImageSource) and source.shape == (len(split), 8, 8, 3)
        np.testing.assert_array_equal(getattr(run.data, name).labels, split.labels)
    # The eval transform of the 8x8 digits at resize 10, crop 8: a centre crop of the upscaled
    # grey image, repeated to RGB.
    expected = image_pipeline.eval_transform(
        np.repeat(np.rint(plain.data.query.inputs[3] * 255).astype(np.uint8), 3, axis=-1),
        resize=10, crop=8)
    np.testing.assert_array_equal(run.data.query.inputs[3], expected)
    result = train.fit(config, str(tmp_path))
    assert int(result.state.step) == 30


@pytest.mark.parametrize(
    "changes, message",
    [({"images.resize": 10, "images.crop": 8, "augment": True}, "cannot be combined"),
     ({"images.resize": 8, "images.crop": 10}, "exceeds"),
     ({"images.resize": 8}, "both 0"),
     ({"images.resize": 10, "images.crop": 8, "protocol": "digits_mosaic_tags",
       "method": "dcmh"}, "cross-modal")],
)
def test_config_images_refuses_what_cannot_work(changes, message):
    with pytest.raises(ValueError, match=message):
        train.setup_run(train_helpers.tiny_config(**changes))


def test_workdir_with_another_config_is_refused(tmp_path):
    train.fit(train_helpers.tiny_config(num_epochs=1), str(tmp_path))
    with pytest.raises(ValueError, match=r"different config \(fields \['bits'\] differ\)"):
        train.fit(train_helpers.tiny_config(num_epochs=1, bits=16), str(tmp_path))


def _nan_after_three_steps(outputs, batch, ctx):
    loss, terms = methods.dpsh.loss_fn(outputs, batch, ctx)
    return jnp.where(ctx.step >= 3, jnp.nan, loss), terms


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    recipe = dataclasses.replace(methods.dpsh.RECIPE, loss_fn=_nan_after_three_steps)
    config = train_helpers.tiny_config(checkpoint_every=2, log_every=10, eval_every=0)
    with pytest.raises(train.NonFiniteLossError,
                       match=r"non-finite loss at step 4 \(\{'loss': nan\}\); the last good "
                             r"checkpoint \(step 2\) is kept"):
        train.fit(config, str(tmp_path), recipe=recipe)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2"]
    run = train.setup_run(config, recipe=recipe, workdir=str(tmp_path))
    variables, step, which = train.restore_variables(str(tmp_path), run, which="last")
    assert (step, which) == (2, "last")
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(variables))


@pytest.mark.slow
def test_tiny_dpsh_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        bits=16, num_epochs=40, eval_every=0, checkpoint_every=1000, log_every=100,
        **{"model.features": (128,), "optimizer.learning_rate": 1e-3},
    )
    run = train.setup_run(config)
    untrained = train.create_train_state(
        run.model, run.tx, seed=0, sample_inputs=run.data.train.inputs[:50], recipe=run.recipe,
        train_split=run.data.train, fill_bank=False,
    )
    before = train.validation_map(run, {"params": untrained.params})
    result = train.fit(config, str(tmp_path))
    after = train.validation_map(run, {"params": result.state.params})
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
    codes = models.encode(run.model.apply, {"params": result.state.params},
                          run.data.validation.inputs)
    assert set(np.unique(codes)) == {-1.0, 1.0}


def test_pretrained_backbone_needs_its_weights_file_and_only_it_reads_one(tmp_path):
    config = train_helpers.tiny_config(**{"model.backbone": "resnet50"})
    with pytest.raises(ValueError, match=r"config.model.backbone='resnet50' is an "
                       r"ImageNet-pretrained network: set config.model.pretrained_path"):
        train.validate_config(config)
    config.model.pretrained_path = str(tmp_path / "absent.safetensors")
    with pytest.raises(ValueError, match=r"pretrained_path=.*absent.safetensors'?: no such file"):
        train.validate_config(config)
    scratch = train_helpers.tiny_config(**{"model.pretrained_path": str(tmp_path)})
    with pytest.raises(ValueError, match=r"pretrained_path is set but config.model.backbone='mlp' "
                       r"is trained from scratch; pretrained backbones: alexnet, vgg16"):
        train.validate_config(scratch)


@pytest.mark.slow
def test_a_run_on_a_pretrained_backbone_starts_from_the_file_and_scales_its_rate(tmp_path):
    weights = models.pretrained.random_weights("alexnet", 5)
    weights_path = str(tmp_path / "alexnet.safetensors")
    safetensors.numpy.save_file(weights, weights_path)
    rng = np.random.default_rng(0)
    features = str(tmp_path / "images.npz")
    np.savez(features, x=rng.uniform(size=(60, 64, 64, 3)).astype(np.float32),
             y=np.arange(60) % 3)
    config = train_helpers.tiny_config(**{
        "protocol": f"features:{features}",
        "protocol_overrides": {"query_size": 10, "train_size": 30, "validation_size": 10},
        "model.backbone": "alexnet", "model.pretrained_path": weights_path,
        "batch_size": 10, "optimizer.backbone_lr_multiplier": 0.1})
    run = train.setup_run(config)
    state = train_run.initial_state(run, fill_bank=True)
    _, expected = models.load_pretrained("alexnet", weights_path)
    (loaded,) = state.params["backbone"].values()
    assert jax.tree.all(jax.tree.map(np.array_equal, loaded, expected["params"]))
    # The bank was filled by the pretrained network, not by a random one. (Jitted here and below:
    # op by op, the 61M-parameter AlexNet and its optimizer compiled some 200 programs.)
    apply = jax.jit(functools.partial(run.model.apply, train=False))
    outputs = apply({"params": state.params, **state.model_state},
                    run.data.train.inputs[:4])["relaxed"]
    np.testing.assert_allclose(state.bank.outputs[:4], outputs, rtol=1e-4, atol=1e-4)

    # backbone_lr_multiplier found the backbone: a first update moves it 10x less than the head.
    @jax.jit
    def first_update(params):
        grads = jax.tree.map(jnp.ones_like, params)
        return run.tx.update(grads, run.tx.init(params), params)[0]

    updates = first_update(state.params)
    (backbone_update,) = updates["backbone"].values()
    first_backbone = jax.tree.leaves(backbone_update)[0].ravel()[0]
    first_head = jax.tree.leaves(updates["head"])[0].ravel()[0]
    np.testing.assert_allclose(first_backbone, 0.1 * first_head, rtol=1e-5)
