"""Data layer: dataset loaders, DataError messages, timm transforms, collator (CPU, offline, seconds)."""

from __future__ import annotations

import gzip
import io
import shutil
import socket
import time
from collections import Counter
from pathlib import Path

import datasets
import huggingface_hub
import numpy as np
import pytest
import torch
from datasets import __version__ as datasets_version
from packaging.version import Version
from PIL import Image

from elastoformer_hf.data import (
    FASHION_MNIST_CLASSES,
    BadImageError,
    DataError,
    ImageCollator,
    build_transforms,
    load_image_datasets,
    mean_std_from_processor,
    with_transforms,
)
from elastoformer_hf.data import datasets as data_mod
from elastoformer_hf.data.transforms import _ExampleTransform
from elastoformer_hf.errors import ElastoformerError

FMNIST_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
HAVE_FMNIST = all((data_mod.FASHION_MNIST_DIR / f).is_file() for f in FMNIST_FILES)
needs_fmnist = pytest.mark.skipif(
    not HAVE_FMNIST,
    reason=f"Fashion-MNIST idx files absent from {data_mod.FASHION_MNIST_DIR} "
    "(apt-get install dataset-fashion-mnist)",
)


def _check_schema(ds: datasets.Dataset, names: list[str]) -> None:
    assert ds.column_names == ["image", "label"]
    assert isinstance(ds.features["image"], datasets.Image)
    assert isinstance(ds.features["label"], datasets.ClassLabel)
    assert ds.features["label"].names == names


@pytest.fixture(scope="module")
def digits():
    return load_image_datasets("digits", seed=0)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """train/ and val/ with two classes of small PNGs (one grey, one palette image among them)."""
    root = tmp_path_factory.mktemp("imagefolder")
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                img = Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
                if i == 0:
                    img = img.convert("L")
                elif i == 1:
                    img = img.convert("P")
                img.save(root / split / cls / f"{i}.png")
    return root


# ---------------------------------------------------------------------------------------------- digits


def test_digits_split_sizes_and_labels(digits):
    train, eval_, names = digits
    assert names == [str(i) for i in range(10)]
    assert (len(train), len(eval_)) == (1437, 360)
    _check_schema(train, names)
    _check_schema(eval_, names)
    # stratified: each class keeps ~20% in eval
    tr, ev = Counter(train["label"]), Counter(eval_["label"])
    for c in range(10):
        assert abs(ev[c] / (tr[c] + ev[c]) - 0.2) < 0.02
    img = train[0]["image"]
    assert img.mode == "L" and img.size == (8, 8)
    assert max(np.asarray(train[i]["image"]).max() for i in range(20)) == 255


def test_digits_deterministic(digits):
    train, eval_, _ = digits
    train2, eval2, _ = load_image_datasets("digits", seed=0)
    assert train["label"] == train2["label"] and eval_["label"] == eval2["label"]
    assert np.array_equal(np.asarray(train[5]["image"]), np.asarray(train2[5]["image"]))
    train3, _, _ = load_image_datasets("digits", seed=1)
    assert train["label"] != train3["label"]


def test_digits_max_samples():
    train, eval_, _ = load_image_datasets("digits", max_train_samples=100, max_eval_samples=30, seed=3)
    assert (len(train), len(eval_)) == (100, 30)
    again, _, _ = load_image_datasets("digits", max_train_samples=100, max_eval_samples=30, seed=3)
    assert train["label"] == again["label"]


# --------------------------------------------------------------------------------------- fashion_mnist


@needs_fmnist
def test_fashion_mnist_full():
    t0 = time.perf_counter()
    train, eval_, names = load_image_datasets("fashion_mnist")
    assert time.perf_counter() - t0 < 30
    assert names == FASHION_MNIST_CLASSES and len(names) == 10 and names[9] == "Ankle boot"
    assert (len(train), len(eval_)) == (60000, 10000)
    _check_schema(train, names)
    _check_schema(eval_, names)
    assert train[0]["label"] == 9 and eval_[0]["label"] == 9  # first rows of the official files
    img = train[0]["image"]
    assert img.mode == "L" and img.size == (28, 28)
    assert np.bincount(eval_["label"]).tolist() == [1000] * 10


@needs_fmnist
def test_fashion_mnist_max_samples_and_alias():
    train, eval_, _ = load_image_datasets("Fashion-MNIST", max_train_samples=64, max_eval_samples=16, seed=1)
    assert (len(train), len(eval_)) == (64, 16)
    again, _, _ = load_image_datasets("fashion_mnist", max_train_samples=64, max_eval_samples=16, seed=1)
    assert train["label"] == again["label"]


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_data_path_override(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    train, eval_, names = load_image_datasets("fashion_mnist", data_path=tmp_path)
    assert (len(train), len(eval_)) == (12, 5) and names == FASHION_MNIST_CLASSES
    assert train["label"] == [i % 10 for i in range(12)]


def test_fashion_mnist_missing_files(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_image_datasets("fashion_mnist", data_path=tmp_path)
    monkeypatch.setattr(data_mod, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(DataError, match=r"apt-get install dataset-fashion-mnist, or pass --data_path"):
        load_image_datasets("fashion_mnist")


# ----------------------------------------------------------------------------------------------- dummy


def test_dummy_dataset():
    train, eval_, names = load_image_datasets(
        "dummy", max_train_samples=6, max_eval_samples=4, dummy_image_size=32
    )
    assert (len(train), len(eval_), len(names)) == (6, 4, 1000)
    _check_schema(train, names)
    img = train[0]["image"]
    assert img.mode == "RGB" and img.size == (32, 32)
    small, _, names10 = load_image_datasets(
        "dummy", max_train_samples=3, dummy_num_classes=10, dummy_image_size=8
    )
    assert len(names10) == 10 and all(0 <= y < 10 for y in small["label"])
    default_train, default_eval, _ = load_image_datasets("dummy", dummy_image_size=4)
    assert (len(default_train), len(default_eval)) == (data_mod.DUMMY_TRAIN_SIZE, data_mod.DUMMY_EVAL_SIZE)


# ----------------------------------------------------------------------------------------- imagefolder


def test_imagefolder(image_folder, tmp_path):
    train, eval_, names = load_image_datasets("imagefolder", image_folder, cache_dir=tmp_path)
    assert names == ["cat", "dog"]
    assert (len(train), len(eval_)) == (8, 4)
    _check_schema(train, names)
    assert sorted(Counter(eval_["label"]).values()) == [2, 2]
    sub, _, _ = load_image_datasets("imagefolder", image_folder, max_train_samples=3, cache_dir=tmp_path)
    assert len(sub) == 3


def test_imagenet_and_hub_names_accept_local_imagefolder(image_folder, tmp_path):
    for name in ("imagenet", "cifar10"):
        train, eval_, names = load_image_datasets(name, data_path=image_folder, cache_dir=tmp_path)
        assert names == ["cat", "dog"] and (len(train), len(eval_)) == (8, 4)


def test_local_hub_snapshot_column_renaming(tmp_path):
    """A local parquet copy of uoft-cs/cifar100 (img, fine_label, coarse_label) becomes image/label."""
    feats = datasets.Features(
        {
            "img": datasets.Image(),
            "fine_label": datasets.ClassLabel(names=["apple", "bee", "cloud"]),
            "coarse_label": datasets.ClassLabel(names=["a", "b"]),
        }
    )
    snap = tmp_path / "cifar100"
    snap.mkdir()
    for split, n in (("train", 6), ("test", 3)):
        imgs = [Image.new("RGB", (4, 4), (i * 10, 0, 0)) for i in range(n)]
        ds = datasets.Dataset.from_dict(
            {"img": imgs, "fine_label": [i % 3 for i in range(n)], "coarse_label": [0] * n}, features=feats
        )
        ds.to_parquet(str(snap / f"{split}.parquet"))
    train, eval_, names = load_image_datasets("cifar100", data_path=snap, cache_dir=tmp_path / "cache")
    assert names == ["apple", "bee", "cloud"] and (len(train), len(eval_)) == (6, 3)
    _check_schema(train, names)


def test_imagefolder_errors(tmp_path, image_folder):
    with pytest.raises(DataError, match="needs --data_path"):
        load_image_datasets("imagefolder")
    with pytest.raises(DataError, match="does not exist"):
        load_image_datasets("imagefolder", tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        load_image_datasets("imagefolder", tmp_path / "file.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="could not load imagefolder"):
        load_image_datasets("imagefolder", empty, cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=r"no eval split .*available splits: \['train'\]"):
        load_image_datasets("imagefolder", image_folder / "train", cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="no eval split 'nope'"):
        load_image_datasets("imagefolder", image_folder, eval_split="nope", cache_dir=tmp_path / "cache")


def test_bad_names_and_arguments(monkeypatch):
    """A name that is no shortcut goes to datasets.load_dataset (a Hub id or folder); when that fails the one-line
    message says why, as huggingface_hub decided, and lists the shortcuts."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as err:
        load_image_datasets("mnist-typo")
    msg = str(err.value)
    assert "dataset 'mnist-typo' could not be loaded from the Hub" in msg and "offline mode" in msg
    for name in data_mod.DATASET_NAMES:
        assert name in msg
    assert "\n" not in msg  # one line: the CLI prints ElastoformerError messages as they are
    assert issubclass(DataError, ValueError) and issubclass(DataError, ElastoformerError)
    with pytest.raises(DataError, match="max_train_samples"):
        load_image_datasets("digits", max_train_samples=0)
    with pytest.raises(DataError, match="fixed splits"):
        load_image_datasets("digits", eval_split="validation")
    with pytest.raises(DataError, match="--dataset_config 'x' applies to a Hub id"):
        load_image_datasets("digits", dataset_config="x")


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "imagenet", "AI-Lab-Makerere/beans"])
def test_hub_names_offline_fail_fast(name, monkeypatch, tmp_path):
    """huggingface_hub's offline mode (read from HF_HUB_OFFLINE at import) decides; nothing probes the network."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(socket, "create_connection", _no_socket)
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="local") as err:
        load_image_datasets(name, cache_dir=tmp_path)
    assert time.perf_counter() - t0 < 30
    assert "offline mode (HF_HUB_OFFLINE=1)" in str(err.value) and "\n" not in str(err.value)


def _no_socket(*args, **kwargs):
    raise AssertionError("the loader opened a socket of its own")


def test_unreachable_hub_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)

    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'uoft-cs/cifar10' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(DataError, match="without network, set HF_HUB_OFFLINE=1"):
        load_image_datasets("cifar10", cache_dir=tmp_path)
    with pytest.raises(DataError, match="could not be loaded from the Hub: ConnectionError"):
        load_image_datasets("AI-Lab-Makerere/beans", cache_dir=tmp_path)


def _hub_style_folder(root: Path, class_label: bool = False) -> Path:
    """A dataset laid out like a Hub repo (parquet shards under data/), with its own column names and an extra
    column: what `huggingface-cli download --repo-type dataset` leaves on disk. Its labels are strings, or
    (``class_label``) a ClassLabel of bean/leaf/rust, as the Hub's beans has."""
    rng = np.random.default_rng(0)
    names = ["bean", "leaf", "rust"]
    kind = datasets.ClassLabel(names=names) if class_label else datasets.Value("string")
    features = datasets.Features({"picture": datasets.Image(), "kind": kind, "note": datasets.Value("string")})
    for split, n in (("train", 12), ("test", 6)):
        rows = {"picture": [Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)) for _ in range(n)],
                "kind": [i % 3 if class_label else names[i % 3] for i in range(n)], "note": ["x"] * n}
        (root / "data").mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(root / "data" / f"{split}-00000.parquet"))
    return root


def test_any_dataset_with_its_own_columns_from_a_local_folder(tmp_path):
    folder = _hub_style_folder(tmp_path / "beans")
    cache = tmp_path / "cache"
    train, evaluation, names = load_image_datasets(str(folder), image_column_name="picture",
                                                   label_column_name="kind", cache_dir=cache)
    assert names == ["bean", "leaf", "rust"] and (len(train), len(evaluation)) == (12, 6)
    assert list(train.features) == ["image", "label"] and isinstance(train.features["image"], datasets.Image)
    assert train[0]["image"].size == (8, 8) and train[1]["label"] == names.index("leaf")
    # a Hub id with a local copy: the copy loads, the id is what the run (and its cards) call it
    again, _, _ = load_image_datasets("AI-Lab-Makerere/beans", data_path=folder, image_column_name="picture",
                                      label_column_name="kind", cache_dir=cache, max_train_samples=5)
    assert len(again) == 5
    with pytest.raises(DataError, match=r"no image column 'photo'; its columns: \['picture', 'kind', 'note'\]"):
        load_image_datasets(str(folder), image_column_name="photo", label_column_name="kind", cache_dir=cache)
    with pytest.raises(DataError, match="--image_column_name / --label_column_name"):
        load_image_datasets(str(folder), cache_dir=cache)  # no image/label column it could guess


# ------------------------------------------------------------------------------------------ transforms


@pytest.mark.parametrize("is_training", [False, True])
def test_build_transforms_grey_input(is_training):
    tf = build_transforms(
        32,
        (0.5, 0.5, 0.5),
        (0.5, 0.5, 0.5),
        is_training=is_training,
        auto_augment="rand-m9-mstd0.5-inc1",
        re_prob=0.25,
    )
    out = tf(Image.fromarray(np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert out.shape == (3, 32, 32)


def test_mean_std_from_processor():
    from transformers import DeiTImageProcessor, ViTImageProcessor

    vit = mean_std_from_processor(ViTImageProcessor())
    assert vit == {
        "image_size": 224,
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "crop_pct": 1.0,
        "interpolation": "bilinear",
    }
    deit = mean_std_from_processor(DeiTImageProcessor())
    assert deit["image_size"] == 224 and deit["crop_pct"] == pytest.approx(224 / 256)
    assert deit["interpolation"] == "bicubic"
    timm_cfg = {
        "input_size": (3, 160, 160),
        "mean": (0.1, 0.2, 0.3),
        "std": (0.4, 0.5, 0.6),
        "crop_pct": 0.95,
        "interpolation": "bicubic",
    }
    cfg = mean_std_from_processor(timm_cfg)
    assert cfg["image_size"] == 160 and cfg["mean"] == (0.1, 0.2, 0.3) and cfg["crop_pct"] == 0.95
    default = mean_std_from_processor(None)
    assert default["image_size"] == 224 and default["mean"] == pytest.approx((0.485, 0.456, 0.406))
    tf = build_transforms(**cfg, is_training=False)
    assert tf(Image.new("RGB", (200, 180))).shape == (3, 160, 160)
    with pytest.raises(TypeError):
        mean_std_from_processor(object())


def test_with_transforms_and_collator(digits):
    train, _, _ = digits
    small = train.select(range(5))
    view = with_transforms(small, build_transforms(16, is_training=False))
    item = view[0]
    assert set(item) == {"pixel_values", "labels"}
    assert item["pixel_values"].shape == (3, 16, 16) and isinstance(item["labels"], int)
    assert small.column_names == ["image", "label"] and isinstance(small[0]["image"], Image.Image)

    batch = ImageCollator()([view[i] for i in range(4)])
    assert batch["pixel_values"].shape == (4, 3, 16, 16) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == small["label"][:4]

    loader = torch.utils.data.DataLoader(view, batch_size=2, collate_fn=ImageCollator())
    assert [b["pixel_values"].shape[0] for b in loader] == [2, 2, 1]


@pytest.mark.parametrize("workers", [0, 1], ids=["main-process", "worker"])
def test_an_image_that_does_not_decode_is_named_in_one_line(image_folder, tmp_path, workers):
    """Finding 8a: a text file named .jpg (or a truncated JPEG) fails when its row is read, as one DataError line
    naming the file, also from a DataLoader worker; every good row still reads, and the view keeps the dataset's
    fingerprint (a run records it)."""
    root = tmp_path / "images"
    shutil.copytree(image_folder, root)
    (root / "train" / "cat" / "zz_not_an_image.jpg").write_text("<html>404</html>")
    jpeg = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(jpeg, format="JPEG")
    (root / "train" / "dog" / "zz_truncated.jpg").write_bytes(jpeg.getvalue()[:200])
    train, _, _ = load_image_datasets("imagefolder", root, cache_dir=tmp_path / "cache")
    transform = build_transforms(16, is_training=False)
    view = with_transforms(train, transform)
    # the images decode in the transform now; the view's fingerprint is the one a decoding view had
    assert view._fingerprint == train.with_transform(_ExampleTransform(transform))._fingerprint
    names = {}
    for i in range(len(view)):
        try:
            assert view[i]["pixel_values"].shape == (3, 16, 16)
        except ElastoformerError as err:
            names[i] = str(err)
    assert len(names) == 2 and all("\n" not in m and "cannot be read as an image" in m for m in names.values())
    assert any("zz_not_an_image.jpg" in m for m in names.values()) and any("zz_truncated.jpg" in m for m in
                                                                            names.values())
    loader = torch.utils.data.DataLoader(view, batch_size=4, num_workers=workers, collate_fn=ImageCollator())
    with pytest.raises(BadImageError) as info:
        list(loader)
    assert "\n" not in str(info.value) and "zz_" in str(info.value) and isinstance(info.value, DataError)


def test_collator_mixup_soft_labels():
    torch.manual_seed(0)
    features = [{"pixel_values": torch.randn(3, 8, 8), "labels": i % 10} for i in range(8)]
    coll = ImageCollator(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=10)
    batch = coll(features)
    assert batch["pixel_values"].shape == (8, 3, 8, 8)
    assert batch["labels"].shape == (8, 10) and batch["labels"].dtype == torch.float32
    assert torch.allclose(batch["labels"].sum(-1), torch.ones(8))

    odd = coll(features[:5])  # odd batch: not mixed, still soft (smoothed one-hot)
    assert odd["labels"].shape == (5, 10)
    assert torch.allclose(odd["labels"].sum(-1), torch.ones(5))
    assert odd["labels"].argmax(-1).tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(odd["pixel_values"], torch.stack([f["pixel_values"] for f in features[:5]]))

    plain = coll.for_eval()(features)
    assert plain["labels"].dtype == torch.long and plain["labels"].shape == (8,)
    with pytest.raises(ValueError, match="num_classes"):
        ImageCollator(mixup_alpha=0.8)


@pytest.mark.skipif(Version(datasets_version) < Version("4.0.0"), reason="streaming needs datasets >= 4.0.0 (refused below)")
def test_streaming_any_dataset_and_the_shortcuts(tmp_path):
    """``streaming=True``: a Hub-style folder (ClassLabel column under its own name) becomes IterableDataset streams
    with image/label columns and the dataset's class names; max_*_samples take the first rows; a shortcut streams the
    same images as without streaming; a label column that is not a ClassLabel cannot be listed from a stream."""
    names = ["bean", "leaf", "rust"]
    root = _hub_style_folder(tmp_path / "beans", class_label=True)
    train, evaluation, found = load_image_datasets(str(root), image_column_name="picture", label_column_name="kind",
                                                   max_eval_samples=4, streaming=True, cache_dir=tmp_path / "c")
    assert isinstance(train, datasets.IterableDataset) and isinstance(evaluation, datasets.IterableDataset)
    assert found == names and list(train.features) == ["image", "label"]
    rows = list(train)
    assert len(rows) == 12 and sorted(r["label"] for r in rows) == sorted(i % 3 for i in range(12))
    assert rows[0]["image"].size == (8, 8)
    assert [r["label"] for r in evaluation] == [0, 1, 2, 0]  # the first 4 rows, in order
    transformed = with_transforms(evaluation, build_transforms(16, is_training=False))
    passes = [[int(r["labels"]) for r in transformed] for _ in range(2)]  # every evaluation of every level
    assert passes == [[0, 1, 2, 0]] * 2

    memory, _, _ = load_image_datasets("digits", max_train_samples=40)
    streamed, _, _ = load_image_datasets("digits", max_train_samples=40, streaming=True)
    assert sorted(r["label"] for r in streamed) == sorted(memory["label"])

    with pytest.raises(DataError, match="not a ClassLabel; a stream's classes cannot be listed"):
        load_image_datasets(str(_hub_style_folder(tmp_path / "strings")), image_column_name="picture",
                            label_column_name="kind", streaming=True, cache_dir=tmp_path / "c")


def test_streaming_is_refused_where_datasets_reads_a_stream_once(monkeypatch):
    """datasets 2.21 (the floor otherwise) yields a taken or mapped stream's rows on the first pass only: streaming is
    refused there in one line naming the version it needs, before anything is read."""
    import elastoformer_hf.data.transforms as transforms_module

    monkeypatch.setattr(transforms_module.datasets, "__version__", "2.21.0")
    with pytest.raises(DataError, match=r"streaming needs datasets >= 4\.0\.0 \(datasets 2\.21\.0 reads a stream"):
        load_image_datasets("digits", streaming=True)
