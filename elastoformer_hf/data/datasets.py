"""Load image-classification datasets as ``datasets.Dataset`` pairs with ``image``/``label`` columns.

Every loader returns ``(train_ds, eval_ds, label_names)`` where both datasets have exactly two columns:
``image`` (a :class:`datasets.Image` feature, decoded to PIL) and ``label`` (a :class:`datasets.ClassLabel`).
Anything that would stop a run (unknown name, missing files, no Hub access) raises :class:`DataError`
*before* training starts, with a message that says what is accepted and how to get the data.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
from PIL import Image as PILImage

from .catalog import DATASET_NAMES, DATASETS, DataError, canonical_name, is_shortcut
from .transforms import check_streaming_support

__all__ = [
    "DATASET_NAMES",
    "DataError",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "load_image_datasets",
]


# Split names tried, in order, when ``eval_split`` is not given.
_EVAL_SPLIT_CANDIDATES = ("validation", "val", "valid", "test")

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

DUMMY_TRAIN_SIZE = 512
DUMMY_EVAL_SIZE = 128


def load_image_datasets(
    dataset_name: str,
    data_path: str | os.PathLike | None = None,
    *,
    dataset_config: str | None = None,
    image_column_name: str | None = None,
    label_column_name: str | None = None,
    train_split: str = "train",
    eval_split: str | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    dummy_num_classes: int = 1000,
    dummy_image_size: int = 224,
    streaming: bool = False,
) -> tuple[datasets.Dataset, datasets.Dataset, list[str]]:
    """Load a train/eval pair of image-classification datasets.

    Args:
        dataset_name (`str`): one of :data:`DATASET_NAMES` (case-insensitive, ``-`` and ``_``
            interchangeable), or any Hub dataset id (``AI-Lab-Makerere/beans``) or local dataset folder, loaded
            with ``datasets.load_dataset`` (transformers' ``run_image_classification.py`` convention).
        data_path (`str` or `os.PathLike`, *optional*): local data. Required for ``imagefolder``; for a Hub id
            it is a local copy of that dataset (loaded instead of the Hub; the cards still name the Hub id); for
            ``imagenet``/``cifar10``/``cifar100`` it replaces the Hub download (an imagefolder, or a local
            snapshot of the Hub repo); for ``fashion_mnist`` it is the folder holding the four idx files
            (default :data:`FASHION_MNIST_DIR`). Ignored by ``digits``/``dummy``.
        dataset_config (`str`, *optional*): the dataset's configuration (``load_dataset``'s ``name``), for a Hub
            id or local folder.
        image_column_name (`str`, *optional*): the image column (default: ``image``/``img``, else the first
            ``Image`` column).
        label_column_name (`str`, *optional*): the label column (default: ``label``/``fine_label``/``labels``,
            else the first ``ClassLabel`` column).
        train_split (`str`, *optional*, defaults to `"train"`): split used for training.
        eval_split (`str`, *optional*): split used for evaluation; ``None`` picks the first of
            validation/val/valid/test that exists (``fashion_mnist``/``digits``: ``"test"``, their only
            other split).
        max_train_samples (`int`, *optional*): keep a random subset of this many training rows (drawn with
            ``seed``, kept in the original order). For ``dummy`` it is the dataset size (default
            :data:`DUMMY_TRAIN_SIZE`).
        max_eval_samples (`int`, *optional*): the same for the evaluation rows (``dummy``: default
            :data:`DUMMY_EVAL_SIZE`).
        seed (`int`, *optional*, defaults to `0`): seed for subsampling, the ``digits`` split and ``dummy``
            generation.
        cache_dir (`str` or `os.PathLike`, *optional*): ``datasets`` cache folder for Hub/imagefolder loads.
        dummy_num_classes (`int`, *optional*, defaults to `1000`): the number of classes of the ``dummy``
            data.
        dummy_image_size (`int`, *optional*, defaults to `224`): the side of the ``dummy`` images (RGB). The
            defaults (1000 classes, 224x224 RGB) are like torchvision's ``FakeData`` used by the reference
            implementation.
        streaming (`bool`, *optional*, defaults to `False`): read the splits as ``datasets.IterableDataset``
            streams (``load_dataset(..., streaming=True)``) instead of downloading them whole: for sets too large
            to download (ImageNet-1k is about 150 GB). The training stream is shuffled through a buffer of
            :data:`SHUFFLE_BUFFER` rows (reshuffled every epoch); ``max_train_samples``/``max_eval_samples`` take
            the first rows of each stream. The in-memory shortcuts (``fashion_mnist``, ``digits``,
            ``dummy``) are subsampled as without streaming and then streamed from memory: the same images.

    Returns:
        `tuple[datasets.Dataset, datasets.Dataset, list[str]]`: ``(train_ds, eval_ds, label_names)``; both
        datasets have columns ``image`` (``Image()``) and ``label`` (``ClassLabel`` whose ``names`` equal
        ``label_names``); ``datasets.IterableDataset`` with ``streaming``.

    Raises:
        DataError: unknown name, missing/invalid ``data_path``, missing files, no Hub access, bad splits
            (also a ``max_*_samples`` that is not a positive integer, or train and eval splits with different
            class lists).
    """
    name = canonical_name(dataset_name)
    if streaming:
        check_streaming_support()
    for arg, value in (("max_train_samples", max_train_samples), ("max_eval_samples", max_eval_samples)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise DataError(f"{arg} must be a positive integer or None, got {value!r}")
    if not is_shortcut(name):
        dsd = _load_any(name, data_path, dataset_config, cache_dir, streaming)
        train_ds, eval_ds = _pick_splits(dsd, train_split, eval_split, f"dataset {name!r}")
        return _finish(train_ds, eval_ds, name, image_column_name, label_column_name, max_train_samples,
                       max_eval_samples, seed)
    if dataset_config is not None:
        raise DataError(f"--dataset_config {dataset_config!r} applies to a Hub id or a local dataset folder, not to "
                        f"the shortcut {name!r} (give its Hub id instead, e.g. {DATASETS[name].hub_id or 'org/name'})")

    if name == "dummy":
        train_ds = _make_dummy(
            max_train_samples or DUMMY_TRAIN_SIZE, dummy_num_classes, dummy_image_size, seed
        )
        eval_ds = _make_dummy(
            max_eval_samples or DUMMY_EVAL_SIZE, dummy_num_classes, dummy_image_size, seed + 1
        )
        return (*_streamed(train_ds, eval_ds, seed, streaming), list(train_ds.features["label"].names))

    if name == "digits":
        train_ds, eval_ds = _load_digits(seed, train_split, eval_split)
    elif name == "fashion_mnist":
        _check_fixed_splits(name, train_split, eval_split)
        folder = Path(data_path) if data_path is not None else FASHION_MNIST_DIR
        train_ds = _load_fashion_mnist_split(folder, "train", max_train_samples, seed)
        eval_ds = _load_fashion_mnist_split(folder, "test", max_eval_samples, seed)
        return (*_streamed(train_ds, eval_ds, seed, streaming), list(FASHION_MNIST_CLASSES))
    elif name == "imagefolder":
        if data_path is None:
            raise DataError(
                "dataset 'imagefolder' needs --data_path pointing at a folder with train/<class>/<image> and "
                "val/<class>/<image> (or validation/, test/) sub-folders."
            )
        folder = _existing_dir(data_path, name)
        dsd = _call_loader(
            lambda: datasets.load_dataset("imagefolder", data_dir=str(folder), cache_dir=cache_dir,
                                          streaming=streaming),
            f"imagefolder at {folder}",
        )
        train_ds, eval_ds = _pick_splits(dsd, train_split, eval_split, f"imagefolder at {folder}")
    else:  # Hub-backed names
        if data_path is not None:
            folder = _existing_dir(data_path, name)
            # load_dataset on a local folder infers the builder: imagefolder for image files,
            # parquet/arrow for a downloaded snapshot of the Hub repo.
            dsd = _call_loader(
                lambda: datasets.load_dataset(str(folder), cache_dir=cache_dir, streaming=streaming),
                f"{name} at {folder}",
            )
            train_ds, eval_ds = _pick_splits(dsd, train_split, eval_split, f"{name} at {folder}")
        else:
            dsd = _load_from_hub(name, DATASETS[name].hub_id, cache_dir, streaming)
            train_ds, eval_ds = _pick_splits(dsd, train_split, eval_split, DATASETS[name].hub_id)

    if name == "digits" and streaming:  # made in memory: subsampled as without streaming, then streamed
        train_ds = _subsample(train_ds, max_train_samples, seed)
        eval_ds = _subsample(eval_ds, max_eval_samples, seed)
        return (*_streamed(train_ds, eval_ds, seed, streaming), list(train_ds.features["label"].names))
    return _finish(train_ds, eval_ds, name, image_column_name, label_column_name, max_train_samples,
                   max_eval_samples, seed)


def _finish(train_ds, eval_ds, name, image_column_name, label_column_name, max_train_samples, max_eval_samples,
            seed):
    train_ds = _standardize_columns(train_ds, name, image_column_name, label_column_name)
    eval_ds = _standardize_columns(eval_ds, name, image_column_name, label_column_name)
    if train_ds.features["label"].names != eval_ds.features["label"].names:
        raise DataError(
            f"{name}: train and eval splits have different class lists "
            f"({train_ds.features['label'].num_classes} vs {eval_ds.features['label'].num_classes} classes); "
            "both splits need the same class sub-folders."
        )
    names = list(train_ds.features["label"].names)
    if isinstance(train_ds, datasets.IterableDataset):
        # the first rows of each stream (the same images at every epoch and evaluation); the training rows in
        # another order at every epoch
        if max_train_samples is not None:
            train_ds = train_ds.take(max_train_samples)
        if max_eval_samples is not None:
            eval_ds = eval_ds.take(max_eval_samples)
        return _shuffled_stream(train_ds, seed), eval_ds, names
    train_ds = _subsample(train_ds, max_train_samples, seed)
    eval_ds = _subsample(eval_ds, max_eval_samples, seed)
    return train_ds, eval_ds, names


# rows held by the training stream's shuffle buffer (datasets' default is 1,000): undecoded images, about 110 KB
# each on ImageNet, so about 1 GB; a larger buffer mixes a sharded stream better
SHUFFLE_BUFFER = 10_000


def _shuffled_stream(ds, seed: int):
    return ds.shuffle(seed=seed, buffer_size=SHUFFLE_BUFFER)


def _streamed(train_ds, eval_ds, seed: int, streaming: bool):
    """The in-memory splits as they are, or (``streaming``) as ``IterableDataset`` streams of the same rows."""
    if not streaming:
        return train_ds, eval_ds
    return _shuffled_stream(train_ds.to_iterable_dataset(), seed), eval_ds.to_iterable_dataset()


# --------------------------------------------------------------------------------------------------------
# helpers


def _existing_dir(data_path: str | os.PathLike, name: str) -> Path:
    folder = Path(data_path).expanduser()
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        expected = DATASET_NAMES.get(name, "a local copy of the dataset (its data files or image sub-folders)")
        raise DataError(f"--data_path {str(folder)!r} for dataset {name!r} {what}. Expected for {name}: {expected}.")
    return folder


def _check_fixed_splits(name: str, train_split: str, eval_split: str | None) -> None:
    if train_split != "train" or eval_split not in (None, "test"):
        raise DataError(
            f"dataset {name!r} has fixed splits 'train' and 'test'; got train_split={train_split!r}, "
            f"eval_split={eval_split!r}"
        )


def _encode_images(images: Sequence[np.ndarray] | np.ndarray) -> list[dict]:
    # datasets' Image() feature would PNG-encode each array (~13 s for Fashion-MNIST's 70k images);
    # PIL's uncompressed netpbm (PGM/PPM) writer is ~5x faster and the Image() feature decodes it natively.
    out = []
    for arr in images:
        buf = io.BytesIO()
        PILImage.fromarray(arr).save(buf, format="PPM")
        out.append({"bytes": buf.getvalue(), "path": None})
    return out


def _make_dataset(images, labels, names: Sequence[str]) -> datasets.Dataset:
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(names))})
    return datasets.Dataset.from_dict(
        {"image": _encode_images(images), "label": np.asarray(labels, dtype=np.int64).tolist()},
        features=features,
    )


def _subsample_indices(n_total: int, n: int | None, seed: int) -> np.ndarray | None:
    if n is None or n >= n_total:
        return None
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:n])


def _subsample(ds: datasets.Dataset, n: int | None, seed: int) -> datasets.Dataset:
    idx = _subsample_indices(len(ds), n, seed)
    return ds if idx is None else ds.select(idx.tolist())


def _make_dummy(n: int, num_classes: int, image_size: int, seed: int) -> datasets.Dataset:
    if num_classes < 1 or image_size < 1:
        raise DataError(
            f"dummy dataset needs num_classes >= 1 and image_size >= 1, got {num_classes}, {image_size}"
        )
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, image_size, image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=n)
    return _make_dataset(images, labels, [f"class_{i}" for i in range(num_classes)])


def _load_digits(seed: int, train_split: str, eval_split: str | None):
    _check_fixed_splits("digits", train_split, eval_split)
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # scikit-learn is a test extra, not a core dependency
        raise DataError("dataset 'digits' needs scikit-learn: pip install scikit-learn") from e
    digits = load_digits()
    # 8x8 float images in 0..16 -> 0..255 uint8 grey images
    images = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    full = _make_dataset(images, digits.target, [str(i) for i in range(10)])
    split = full.train_test_split(test_size=0.2, stratify_by_column="label", seed=seed)
    return split["train"], split["test"]


def _read_idx(path: Path) -> np.ndarray:
    # Hand-written because the idx format is trivial (2 zero bytes, dtype code, ndim, big-endian uint32 dims,
    # raw data) and torchvision's reader only handles its own decompressed raw/ folder layout.
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte idx file (bad magic number)")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: header says {tuple(dims)}, found {arr.size} values")
    return arr.reshape(tuple(dims))


def _find_idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _load_fashion_mnist_split(
    folder: Path, split: str, max_samples: int | None, seed: int
) -> datasets.Dataset:
    stems = _FASHION_MNIST_FILES[split]
    paths = [_find_idx_file(folder, stem) for stem in stems]
    if any(p is None for p in paths):
        missing = [f"{stem}[.gz]" for stem, p in zip(stems, paths) if p is None]
        hint = (
            "install the Debian package: apt-get install dataset-fashion-mnist, or pass --data_path"
            if folder == FASHION_MNIST_DIR
            else "check --data_path (it must hold the four Fashion-MNIST idx files) or drop it to use "
            f"{FASHION_MNIST_DIR} from `apt-get install dataset-fashion-mnist`"
        )
        raise DataError(f"fashion_mnist: missing {', '.join(missing)} in {folder}; {hint}")
    images, labels = _read_idx(paths[0]), _read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"fashion_mnist: unexpected idx shapes {images.shape} / {labels.shape} in {folder}")
    # Subsample before encoding so small runs don't pay for all 60k images.
    idx = _subsample_indices(len(labels), max_samples, seed)
    if idx is not None:
        images, labels = images[idx], labels[idx]
    return _make_dataset(images, labels, FASHION_MNIST_CLASSES)


def _call_loader(fn, what: str):
    try:
        return fn()
    except DataError:
        raise
    except Exception as e:  # datasets/hub raise many types (FileNotFoundError, ValueError, HTTP errors...)
        first_line = (str(e).strip().splitlines() or [""])[0]
        raise DataError(f"could not load {what}: {type(e).__name__}: {first_line}") from e


def _hub_failure(what: str, err: Exception) -> str:
    """Why ``what`` did not load, as huggingface_hub/datasets decided (no probing of our own): offline mode and a
    cold cache, a missing or private repo, or the library's own first line."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or datasets.config.HF_HUB_OFFLINE:
        return ("huggingface_hub is in offline mode (HF_HUB_OFFLINE=1) and it is not in the datasets cache: load it "
                "once with network access, or pass a local copy")
    first_line = (str(err).strip().splitlines() or [""])[0]
    hint = ("; without network, set HF_HUB_OFFLINE=1 (cache only, no retries) or pass a local copy"
            if isinstance(err, ConnectionError) or "reach" in first_line.lower() else "")
    return f"{type(err).__name__}: {first_line}{hint}"


def _load_any(name: str, data_path, config: str | None, cache_dir, streaming: bool = False):
    """Any Hub dataset id or local folder, through ``datasets.load_dataset`` (a folder of images becomes an
    imagefolder, a downloaded Hub snapshot its parquet/arrow files). ``data_path``, when given, is a local copy
    of the Hub dataset ``name``: it is what loads, and ``name`` is what the cards call it."""
    folder = _existing_dir(data_path, name) if data_path is not None else Path(name).expanduser()
    source = str(folder) if folder.is_dir() else name
    try:
        return datasets.load_dataset(source, config, cache_dir=cache_dir, streaming=streaming)
    except Exception as e:  # datasets/hub raise many types (DatasetNotFoundError, ConnectionError, ValueError...)
        where = f"the local folder {str(folder)!r}" if folder.is_dir() else "the Hub"
        raise DataError(
            f"dataset {name!r} could not be loaded from {where}: {_hub_failure(name, e)}. Shortcut names: "
            f"{', '.join(DATASETS)} (offline: fashion_mnist, digits, dummy)"
        ) from e


def _load_from_hub(name: str, repo: str, cache_dir, streaming: bool = False):
    try:
        return datasets.load_dataset(repo, cache_dir=cache_dir, streaming=streaming)
    except Exception as e:
        gated = (
            " It is gated: accept its terms on the Hub and run `hf auth login`." if name == "imagenet" else ""
        )
        raise DataError(
            f"dataset {name!r} could not be loaded from the Hub repo {repo!r}: {_hub_failure(repo, e)}.{gated} "
            f"Alternatively pass --data_path to a local imagefolder (train/<class>/<image> and "
            f"val/<class>/<image>) or a downloaded copy of {repo}; "
            "offline-ready names: fashion_mnist, digits, dummy."
        ) from e


def _pick_split(
    dsd: datasets.DatasetDict, requested: str | None, candidates: Sequence[str], what: str, role: str
):
    available = list(dsd.keys())
    if requested is not None:
        if requested not in dsd:
            raise DataError(f"{what} has no {role} split {requested!r}; available splits: {available}")
        return dsd[requested]
    for cand in candidates:
        if cand in dsd:
            return dsd[cand]
    raise DataError(
        f"{what} has no {role} split (looked for {list(candidates)}); available splits: {available}. "
        "An imagefolder needs train/ and val/ (or validation/, test/) sub-folders."
    )


def _pick_splits(dsd, train_split: str, eval_split: str | None, what: str):
    train = _pick_split(dsd, train_split, (), what, "train")
    eval_ = _pick_split(dsd, eval_split, _EVAL_SPLIT_CANDIDATES, what, "eval")
    return train, eval_


def _column(feats, requested: str | None, names: Sequence[str], kind, role: str, name: str) -> str | None:
    if requested is not None:
        if requested not in feats:
            raise DataError(f"{name}: no {role} column {requested!r}; its columns: {list(feats)}")
        return requested
    found = next((c for c in names if c in feats), None)
    return found or next((c for c, f in feats.items() if isinstance(f, kind)), None)


def _standardize_columns(ds: datasets.Dataset, name: str, image_column: str | None = None,
                         label_column: str | None = None) -> datasets.Dataset:
    """Rename the image/label columns (the given ones, or those of known layouts: cifar's img, fine_label) to
    ``image``/``label`` and drop everything else."""
    if isinstance(ds, datasets.IterableDataset) and ds.features is None:
        ds = _call_loader(ds._resolve_features, f"the first row of {name}")  # a stream without a schema (json)
    feats = ds.features
    image_col = _column(feats, image_column, ("image", "img"), datasets.Image, "image", name)
    label_col = _column(feats, label_column, ("label", "fine_label", "labels"), datasets.ClassLabel, "label", name)
    if image_col is None or label_col is None:
        raise DataError(
            f"{name}: expected an image column and a class-label column, found {dict(feats)}; name them with "
            "--image_column_name / --label_column_name. An imagefolder needs class sub-folders: "
            "<split>/<class>/<image>."
        )
    if not isinstance(feats[label_col], datasets.ClassLabel):
        if isinstance(ds, datasets.IterableDataset):  # the class list is the set of every value: a whole pass
            raise DataError(f"{name}: the label column {label_col!r} is {feats[label_col]}, not a ClassLabel; a "
                            "stream's classes cannot be listed without reading it all: load it without --streaming "
                            "(or give the dataset a ClassLabel column)")
        ds = ds.class_encode_column(label_col)
    ds = ds.select_columns([image_col, label_col])
    renames = {old: new for old, new in ((image_col, "image"), (label_col, "label")) if old != new}
    if renames:
        ds = ds.rename_columns(renames)
    if not isinstance(ds.features["image"], datasets.Image):
        ds = ds.cast_column("image", datasets.Image())
    return ds
