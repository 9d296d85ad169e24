"""Train an elastic family of a vision transformer (transformers ViT/DeiT, or a timm ViT).

    accelerate launch recipes/deit.py --config recipes/configs/deit_base_imagenet.yaml
    python recipes/deit.py --config recipes/configs/demo.yaml          # offline demo: trains its own small parent

Flags override the YAML file: ``--config recipes/configs/deit_base_imagenet.yaml --learning_rate 1e-3
--output_dir runs/x``. ``--help`` lists every argument (model, data, ElasticTrainingArguments, demo parent).
CNNs (ResNet/VGG) are refused: use ``recipes/cnn.py``.
"""

from __future__ import annotations

import sys

from elastoformer_hf.recipe import recipe_main


def main(argv: list[str] | None = None) -> int:
    return recipe_main(argv, kind="vit", prog="recipes/deit.py")


if __name__ == "__main__":
    sys.exit(main())
