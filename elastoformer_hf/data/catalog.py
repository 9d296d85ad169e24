"""The datasets elastoformer-hf knows by name (shortcuts): one table, read by the loaders and by the model cards.
Any other Hub dataset id or local folder loads through ``datasets.load_dataset``.

Free of the ``datasets`` library, so the cards can name a run's dataset without importing it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ElastoformerError

__all__ = ["DATASETS", "DATASET_NAMES", "DataError", "DatasetInfo", "canonical_name", "describe_dataset", "is_shortcut"]


class DataError(ElastoformerError, ValueError):
    """The requested dataset cannot be loaded (unknown name, missing files, no Hub access, bad layout).

    A one-line message (the CLI prints it and exits with status 2, like every :class:`ElastoformerError`).
    """


@dataclass(frozen=True)
class DatasetInfo:
    """One named dataset: where it comes from and how cards name it."""

    description: str  # what the name loads (help texts and error messages)
    pretty: str  # the name a card shows
    hub_id: str | None = None  # its Hub dataset id, when it has one


#: Accepted dataset names (``--dataset_name``) and what each one loads.
DATASETS: dict[str, DatasetInfo] = {
    "imagenet": DatasetInfo("ILSVRC/imagenet-1k from the Hub (gated: accept the terms and `hf auth login`), or an "
                            "imagefolder with train/ and val/ class sub-folders via --data_path", "ImageNet-1k",
                            "ILSVRC/imagenet-1k"),
    "cifar10": DatasetInfo("uoft-cs/cifar10 from the Hub (50k/10k, 10 classes), or a local copy via --data_path",
                           "CIFAR-10", "uoft-cs/cifar10"),
    "cifar100": DatasetInfo("uoft-cs/cifar100 from the Hub (50k/10k, 100 fine labels), or a local copy via "
                            "--data_path", "CIFAR-100", "uoft-cs/cifar100"),
    "imagefolder": DatasetInfo("--data_path/train/<class>/*.png and --data_path/{val,validation,test}/<class>/*.png",
                               "a local image folder"),
    "fashion_mnist": DatasetInfo("Fashion-MNIST idx files from the Debian package dataset-fashion-mnist (60k/10k, "
                                 "28x28 grey, 10 classes), or --data_path to a folder with the same four files",
                                 "Fashion-MNIST", "zalando-datasets/fashion_mnist"),
    "digits": DatasetInfo("scikit-learn's bundled 8x8 digits (1797 images, stratified 80/20 split by --seed); "
                          "offline", "scikit-learn digits"),
    "dummy": DatasetInfo("synthetic random images and labels (structure-only: for smoke tests and benchmarks, "
                         "accuracy is meaningless)", "synthetic images"),
}
#: name -> description (help texts)
DATASET_NAMES: dict[str, str] = {name: info.description for name, info in DATASETS.items()}

#: other spellings (lower case, ``-`` read as ``_``), Hub ids of the named datasets included
_ALIASES = {
    "imagenet1k": "imagenet",
    "imagenet_1k": "imagenet",
    "image_folder": "imagefolder",
    "fashionmnist": "fashion_mnist",
    "fake": "dummy",
    "fakedata": "dummy",
    **{info.hub_id.lower().replace("-", "_"): name for name, info in DATASETS.items() if info.hub_id},
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _key(name: str) -> str:
    key = str(name).strip().lower().replace("-", "_")
    return _ALIASES.get(key, key)


def canonical_name(dataset_name: str) -> str:
    """The table's name for ``dataset_name`` (case-insensitive, ``-`` and ``_`` alike, aliases and Hub ids of the
    named datasets), or the name itself, stripped, when the table does not hold it: any other Hub dataset id or
    local folder goes to ``datasets.load_dataset`` as it is (see :func:`is_shortcut`).

    Raises:
        DataError: an empty name.
    """
    if not str(dataset_name or "").strip():
        raise DataError(f"--dataset_name is empty; give a Hub dataset id, a local folder, or one of: {', '.join(DATASETS)}")
    key = _key(dataset_name)
    return key if key in DATASETS else str(dataset_name).strip()


def is_shortcut(dataset_name: str) -> bool:
    """Whether ``dataset_name`` is a name of the table (a shortcut), rather than a Hub id or a local folder."""
    return _key(dataset_name) in DATASETS


def describe_dataset(name: str | None) -> tuple[str | None, str | None, str | None]:
    """``(hub_id, dataset_type, pretty_name)`` for a card: a name of the table, or any Hub id as it is; all None
    for no name."""
    if not name:
        return None, None, None
    key = _key(name)
    if key in DATASETS:
        info = DATASETS[key]
        return info.hub_id, info.hub_id or key, info.pretty
    if _HUB_ID.match(str(name)):
        return str(name), str(name), str(name)
    return None, str(name), str(name)
