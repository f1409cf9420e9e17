"""Published table: CSQ with an ImageNet-pretrained ResNet-50 on ImageNet-100, at 16, 32 and 64 bits.

Command (the list files of the CSQ authors, or of HashNet's, whose ImageNet-100 lists they copied,
in ``/data/imagenet100`` with the images below it, as README.md, "Reproducing a published table",
shows; ResNet-50 weights converted to ``.safetensors`` as docs/pretrained.md shows):

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/published/imagenet100_resnet50.py:/data/imagenet100,bits=64 \
        --config.model.pretrained_path=weights/resnet50.safetensors \
        --workdir=runs/published/csq_imagenet100_64

The argument is ``"<folder>,bits=<L>,seed=<s>"``: the protocol is ``imagelist:<folder>`` with
``dataset="imagenet100"`` (``train.txt``: 13,000 images, 130 per class; ``test.txt``: 5,000
queries from ImageNet's validation images; ``database.txt``: the ImageNet training images of the
100 classes; 100 classes), scored by mAP@1,000 as published.

Settings: the CSQ authors' (yuanli2333/Hadamard-Matrix-for-hashing, ``train.py`` and
``options.py``, README command ``--data_name imagenet --model_type resnet50 --lambda1 0
--lambda2 0.05 --R 1000``): Adam at 1e-3 for the hash layer and 0.01 times that for the backbone
(``multi_lr``), multiplied by 0.7 every 10 epochs, batch 64, 90 epochs; central similarity
(Hadamard centres) plus 0.05 times the quantization term (the recipe's defaults,
``dlhash_jax/methods/csq.py``); shorter side to 256, random 224x224 crop and flip in training,
the centre crop in evaluation. Deviation: model selection on a validation split of database
images outside train.txt every 10 epochs, where the authors test on the queries every 5.

Published mAP@1,000 (the authors' README, "The MAP of retrieval on the three datasets"; its
third column, labelled "16bit" there, is 64 bits, as the released
``imagenet_64bit_0.8734_resnet50.pkl`` shows):

| bits | 16 | 32 | 64 |
|---|---|---|---|
| CSQ, ResNet-50 | 0.851 | 0.865 | 0.873 |

DeepHash-pytorch's re-implementation reports 0.881 at 64 bits (CSQ.py header). Nothing of this
table can be trained on the 2-CPU machine this repository is tested on;
``tests/test_published_configs.py`` runs it end to end on generated images with random weights.
"""

from experiments.configs import base

METHOD = "csq"
BITS = (16, 32, 64)
DATASET = "imagenet100"
TRAIN_SIZE = 13000
BATCH_SIZE = 64


def get_config(argument="/data/imagenet100,bits=64"):
    folder, fields = base.parse_argument(argument)
    config = base.get_config(f"imagelist:{folder},bits=64", method=METHOD)
    steps_per_epoch = TRAIN_SIZE // BATCH_SIZE
    layers = {
        "protocol_overrides.dataset": DATASET,
        # ImageNet-100's published cutoff; the folder need not exist where the config is built.
        "evaluation.topk": (1000,),
        "model.backbone": "resnet50",
        "images.resize": 256,
        "images.crop": 224,
        "num_devices": 0,
        "batch_size": BATCH_SIZE,
        "num_epochs": 90,
        "optimizer.name": "adam",
        "optimizer.learning_rate": 1e-3,
        "optimizer.backbone_lr_multiplier": 0.01,
        "optimizer.schedule": "step",
        "optimizer.decay_rate": 0.7,
        "optimizer.decay_every": 10 * steps_per_epoch,
        "optimizer.weight_decay": 0.0,
        "eval_every": 10 * steps_per_epoch,
        "checkpoint_every": 10 * steps_per_epoch,
        "log_every": 50,
    }
    for dotted, value in layers.items():
        base.set_field(config, dotted, value)
    for key, value in fields.items():
        config[key] = value
    return config
