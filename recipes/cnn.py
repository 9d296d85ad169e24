"""Train an elastic family of a CNN (timm or torchvision ResNet / VGG).

    accelerate launch recipes/cnn.py --config recipes/configs/resnet50_imagenet.yaml
    accelerate launch recipes/cnn.py --config recipes/configs/vgg16_cifar10.yaml --image_size 32

Flags override the YAML file (``--learning_rate 0.01 --output_dir runs/x``); ``--help`` lists every argument.
torchvision models: a torchvision name with ``--weights ResNet50_Weights.IMAGENET1K_V2``, or ``torchvision:resnet50``.
Vision transformers are refused: use ``recipes/deit.py``.
"""

from __future__ import annotations

import sys

from elastoformer_hf.recipe import recipe_main


def main(argv: list[str] | None = None) -> int:
    return recipe_main(argv, kind="cnn", prog="recipes/cnn.py")


if __name__ == "__main__":
    sys.exit(main())
