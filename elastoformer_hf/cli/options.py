"""Command-line options that several commands share, declared once."""

from __future__ import annotations

import argparse

MODEL_HELP = ("transformers Hub id or local folder (ViT/DeiT), timm name (resnet50, vgg16, vit_*), or torchvision "
              "name (torchvision:resnet50, or a name with --weights)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The base model: ``--model_name_or_path`` (as in the training recipes; ``--model_name`` is its old spelling),
    ``--random_init``, ``--weights``, ``--num_labels``."""
    parser.add_argument("--model_name_or_path", "--model_name", dest="model_name_or_path", required=True,
                        help=MODEL_HELP)
    parser.add_argument("--random_init", action="store_true", help="build from the config alone; fetch no weights")
    parser.add_argument("--weights", help="torchvision weights enum name, e.g. ResNet50_Weights.IMAGENET1K_V2")
    parser.add_argument("--num_labels", type=class_count,
                        help="replace the classifier with one of this many classes (>= 1)")


def positive_int(text: str) -> int:
    """``"16"`` -> ``16``; zero, a negative number or a non-integer is refused (argparse type of batch sizes,
    resolutions and class counts: a 0 there is a mistake, never "the default")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def class_count(text: str) -> int:
    """:func:`positive_int` for ``--num_labels``, saying why: transformers and timm read 0 classes as "no
    classifier", and a family planned from a headless model would not classify."""
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"{err} (the classifier's class count: 0 or less builds a model without "
                                         "a classifier)") from None


def int_list(text: str) -> list[int]:
    """``"1,3"`` -> ``[1, 3]`` (argparse type of ``--levels`` and ``--batch_sizes``)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def command_description(doc: str) -> str:
    """A subcommand's ``--help`` description from its module docstring: the text after the title's colon, without
    the reST double backticks the docstring uses (``--help`` is plain text)."""
    return doc.split(":", 1)[1].strip().replace("``", "")
