"""The name→recipe table and the shared model factory."""

import pytest

from dlhash_jax import models
from dlhash_jax import methods
from dlhash_jax import train


def test_table_holds_each_recipe_under_its_name():
    expected = {
        "cnnh", "csq", "dcmh", "dh", "discrete_supervised", "dlbhc", "dnnh", "dpsh", "drsch", "dsh",
        "dsrh", "dsrh_triplet", "fingerprint", "glsp", "greedyhash", "hashnet", "hinge_softmax",
        "knn_graph", "order_sensitive", "sdh", "sparse_similarity", "ssdh", "udh",
    }
    assert set(methods.RECIPES) == expected
    for name, recipe in methods.RECIPES.items():
        assert recipe.name == name
        assert methods.get_recipe(name) is recipe
    assert methods.CROSS_MODAL == ("dcmh", "glsp")


def test_cross_modal_network_factory_pairs_two_hash_networks():
    config = train.default_config()
    config.bits = 12
    config.model.text_features = (9, 7)
    model = methods.cross_modal_network(config, relaxation="none")
    assert isinstance(model, models.CrossModalNetwork)
    assert model.image.head.bits == model.text.head.bits == 12
    assert tuple(model.text.backbone.features) == (9, 7)


def test_unknown_method_lists_known_names():
    with pytest.raises(ValueError, match=r"Unknown method 'dpsh2'; known methods: cnnh, csq, "):
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
                       r"'resnet'\), got 'vit'"):
        methods.build_backbone(model_config)
