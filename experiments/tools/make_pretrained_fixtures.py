"""Writes ``tests/fixtures/pretrained/``: the reference features the parity tests compare with.

For each pretrained backbone of ``dlhash_jax.models.pretrained`` it builds the reference model
(torchvision's AlexNet, VGG-16 and ResNet-50 without their classifier, timm's
``vit_base_patch16_224`` with ``num_classes=0``), loads the seeded weights of
``pretrained.random_weights`` into it (``strict=True``: every array the features use, no other),
runs it in evaluation mode on the seeded images of ``pretrained.random_images``, and writes
``<name>.npz`` with the features (float32 ``[B, D]``), the image shape and the two seeds. It
also writes ``adaptive_avg_pool.npz``, PyTorch's ``adaptive_avg_pool2d`` of seeded maps for sizes
that divide, do not divide and grow. Nothing but outputs is stored (about 100 kB in all): the
tests regenerate weights and inputs from the seeds, so a change to ``random_weights`` or
``random_images`` needs a new fixture.

PyTorch is never a requirement of the library or its tests; run this by hand, from the
repository root, in an environment of its own (CPU wheels suffice):

    python3.11 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu
    /tmp/torchenv/bin/pip install timm safetensors jax==0.10.2 flax==0.12.8 optax
    PYTHONPATH=. /tmp/torchenv/bin/python experiments/tools/make_pretrained_fixtures.py

(jax, flax and optax are there because ``dlhash_jax.models`` imports them; the weights and
images come from that module so that both sides use one generator.) The committed fixture was
made with torch 2.14.1, torchvision 0.29.1 and timm 1.0.31 (stored in each file as
``versions``). The script also prints the largest difference between the reference features
and this library's, the number the tests check against 1e-4, taking about a minute and 3 GB
of memory on two cores.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import timm
import torch
import torchvision

from dlhash_jax.models import pretrained

FIXTURE_DIR = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "pretrained"
)

# Small non-square images where the architecture allows (the parity test runs all four on CPU):
# AlexNet's last map is 4×3 and VGG's 3×2, so adaptive pooling to 6×6 / 7×7 repeats cells and
# averages overlapping ones, and fc6 sees a map whose cells differ; ViT-B/16 at 64 px has a 4×4
# grid of patches (timm's img_size=64, the loader reads it off the position embeddings).
CASES = {
    "alexnet": {"image_shape": (2, 160, 128, 3), "weight_seed": 0, "image_seed": 100},
    "vgg16": {"image_shape": (2, 96, 64, 3), "weight_seed": 1, "image_seed": 101},
    "resnet50": {"image_shape": (2, 64, 48, 3), "weight_seed": 2, "image_seed": 102},
    "vit_b16": {"image_shape": (2, 64, 64, 3), "weight_seed": 3, "image_seed": 103},
}

# (input H, W) -> (output h, w) of adaptive average pooling, on maps [2, H, W, 3] drawn by
# default_rng((POOL_SEED, H, W)), which the test recomputes from the key.
POOL_CASES = (((4, 3), (6, 6)), ((7, 7), (6, 6)), ((1, 1), (6, 6)), ((14, 14), (7, 7)),
              ((3, 2), (7, 7)), ((13, 10), (7, 7)))
POOL_SEED = 104


def pool_key(size_in: tuple[int, int], size_out: tuple[int, int]) -> str:
    return f"{size_in[0]}x{size_in[1]}_to_{size_out[0]}x{size_out[1]}"


def reference_model(name: str, image_size: int) -> torch.nn.Module:
    """The reference implementation of ``name``, returning the features ``pretrained`` gives."""
    if name == "alexnet":
        model = torchvision.models.alexnet()
        model.classifier = model.classifier[:6]  # Everything before fc8; keeps the key names.
    elif name == "vgg16":
        model = torchvision.models.vgg16()
        model.classifier = model.classifier[:6]
    elif name == "resnet50":
        model = torchvision.models.resnet50()
        model.fc = torch.nn.Identity()
    else:
        model = timm.create_model(
            "vit_base_patch16_224", pretrained=False, num_classes=0, img_size=image_size
        )
    return model.eval()


def reference_features(name: str, case: dict) -> np.ndarray:
    image_size = case["image_shape"][1] if name == "vit_b16" else None
    weights = pretrained.random_weights(name, case["weight_seed"], image_size=image_size)
    model = reference_model(name, case["image_shape"][1])
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    images = pretrained.random_images(name, case["image_shape"], case["image_seed"])
    with torch.no_grad():
        features = model(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
    features = features.numpy().astype(np.float32)

    module, variables = pretrained.variables_from_state_dict(name, weights)
    ours = np.asarray(module.apply(variables, images, train=False))
    print(f"{name}: features {features.shape}, |reference| max {np.abs(features).max():.3g}, "
          f"max |ours - reference| {np.abs(ours - features).max():.3g}")
    return features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=FIXTURE_DIR, help="fixture directory")
    parser.add_argument("--names", nargs="*", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)  # Nothing should draw from it; fixed all the same.
    versions = np.array(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}"
    )
    for name in args.names:
        case = CASES[name]
        np.savez(
            os.path.join(args.out, f"{name}.npz"),
            features=reference_features(name, case),
            image_shape=np.array(case["image_shape"]),
            weight_seed=np.array(case["weight_seed"]),
            image_seed=np.array(case["image_seed"]),
            versions=versions,
        )

    pooled = {}
    for size_in, size_out in POOL_CASES:
        maps = np.random.default_rng((POOL_SEED, *size_in)).standard_normal((2, *size_in, 3),
                                                                             np.float32)
        out = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(maps).permute(0, 3, 1, 2),
                                                      size_out)
        pooled[pool_key(size_in, size_out)] = out.permute(0, 2, 3, 1).numpy()
    np.savez(os.path.join(args.out, "adaptive_avg_pool.npz"), seed=np.array(POOL_SEED),
             versions=versions, **pooled)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
