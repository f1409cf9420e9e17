"""The name→recipe table, the recipe contract (taxonomy, alternation) and the model factories."""

import dataclasses
import pkgutil

import jax
import pytest

from dlhash_jax import models
from dlhash_jax import methods
from dlhash_jax import train


def test_table_holds_the_recipe_of_every_method_module_under_its_name():
    modules = {
        info.name for info in pkgutil.iter_modules(methods.__path__) if not info.name.startswith("_")
    }
    assert len(modules) >= 23 and "dpsh" in modules
    assert set(methods.RECIPES) == modules
    for name, recipe in methods.RECIPES.items():
        assert recipe.name == name
        assert methods.get_recipe(name) is recipe
        assert getattr(methods, name).RECIPE is recipe
    assert {"dcmh", "glsp"} <= set(methods.CROSS_MODAL) and "dpsh" not in methods.CROSS_MODAL


def test_every_recipe_declares_its_taxonomy():
    for recipe in methods.RECIPES.values():
        taxonomy = recipe.taxonomy
        assert isinstance(taxonomy, methods.Taxonomy)
        assert taxonomy.labels in methods.LABEL_KINDS
        assert taxonomy.input_form in methods.INPUT_FORMS
        assert recipe.cross_modal == taxonomy.cross_modal == (recipe.name in methods.CROSS_MODAL)
        if taxonomy.cross_modal:
            assert recipe.alternating, recipe.name
    assert str(methods.dpsh.RECIPE.taxonomy) == "single × pairs"
    assert str(methods.dcmh.RECIPE.taxonomy) == "multi × pairs (cross-modal)"
    assert not methods.dh.RECIPE.taxonomy.supervised and methods.dsh.RECIPE.taxonomy.supervised


def test_taxonomy_and_recipe_refuse_unknown_kinds():
    with pytest.raises(ValueError, match=r"Taxonomy.labels must be one of .*'multi'\)"):
        methods.Taxonomy("mult", "pairs")
    with pytest.raises(ValueError, match=r"Taxonomy.input_form must be one of .*'triplets'"):
        methods.Taxonomy("single", "triplets")
    with pytest.raises(ValueError, match=r"dpsh: bank_init must be one of"):
        dataclasses.replace(methods.dpsh.RECIPE, bank_init="zeros")


def test_active_group_runs_only_the_branch_of_the_step():
    groups = ("image", "text")
    assert [int(methods.active_group_index(step, 2)) for step in range(4)] == [0, 1, 0, 1]
    for step, expected in [(0, 10.0), (1, 20.0), (6, 10.0), (7, 20.0)]:
        value = jax.jit(
            lambda s: methods.active_group(groups, s, lambda g: {"image": 10.0, "text": 20.0}[g])
        )(step)
        assert float(value) == expected
    assert methods.active_group(("only",), 5, lambda g: g) == "only"


def test_cross_modal_network_factory_pairs_two_hash_networks():
    config = train.default_config()
    config.bits = 12
    config.model.text_features = (9, 7)
    model = methods.cross_modal_network(config, relaxation="none")
    assert isinstance(model, models.CrossModalNetwork)
    assert model.image.head.bits == model.text.head.bits == 12
    assert tuple(model.text.backbone.features) == (9, 7)


def test_unknown_method_lists_known_names():
    with pytest.raises(ValueError, match=r"Unknown method 'dpsh2'; known methods: adsh, .*cnnh, "):
        methods.get_recipe("dpsh2")


@pytest.mark.parametrize(
    "backbone, cls", [("mlp", models.MLP), ("convnet", models.ConvNet), ("resnet", models.ResNet)]
)
def test_build_backbone_uses_the_config_fields(backbone, cls):
    model_config = train.default_config().model
    model_config.backbone = backbone
    model_config.features = (7, 5)
    model_config.conv_features = (4,)
    model_config.depth = 8
    module = methods.build_backbone(model_config)
    assert isinstance(module, cls)
    if backbone == "mlp":
        assert tuple(module.features) == (7, 5)
    if backbone == "convnet":
        assert tuple(module.conv_features) == (4,)
    if backbone == "resnet":
        assert module.depth == 8 and module.bn_axis_name == methods.AXIS_NAME


def test_build_backbone_rejects_unknown_name():
    model_config = train.default_config().model
    model_config.backbone = "vit"
    with pytest.raises(ValueError, match=r"model.backbone must be one of \('mlp', 'convnet', "
                       r"'resnet', 'alexnet', 'vgg16', 'resnet50', 'vit_b16'\), got 'vit'"):
        methods.build_backbone(model_config)
