"""The family on disk: ``family_config.json`` (metadata and storage layout) and ``family.safetensors``.

Tensors in ``family.safetensors`` (no pickles):

* ``shared.{name}``: a shared tensor once, at full width, channels in family order (every level a prefix);
* ``level{k}.{name}``: level k's own tensors (classifier - or only its bias when the run shared the classifier
  weight, ``"share_classifier": true`` in the config -, tokens, position embeddings, BatchNorm), in family order;
* ``order.{i}``: channel order ``i`` (int32): the original index of the channel at every stored position.

Format versions: 1 is every family without grouped convolutions; 2 adds per-group prefixes on the channels of
grouped convolutions that are not depthwise (axis specs with ``"unit": "conv_groups"``). A family is written
with the lowest version that holds it, so a family without grouped convolutions is written byte for byte as
before; a reader of version 1 refuses a version 2 family naming the version ("upgrade elastoformer-hf"), and
this reader opens both.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..base_model import stored_spec
from ..errors import CheckpointError, ElastoformerError
from ..latency.entries import merge_latency
from ..run_folder import check_digests, read_json, staged_folder, weight_digests, write_json
from ..version import __version__
from .layout import Layout
from .parts import FamilyParts

CONFIG_FILE = "family_config.json"
WEIGHTS_FILE = "family.safetensors"
FORMAT = "elastoformer-family"
FORMAT_VERSION = 2  # the newest this reader opens; a family is written with Layout.format_version()


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def family_config(parts: FamilyParts) -> dict:
    """The content of ``family_config.json`` for ``parts``.

    Args:
        parts (`FamilyParts`): the family's storage and metadata.

    Returns:
        `dict`: the format name and version, the elastoformer_hf version, the family's info, the base model's
        spec, the level count and metadata, and the storage (weights file, dtype, tensor names, bytes per part
        and the layout).
    """
    shared = next(iter(parts.shared.values()), None)
    return {
        "format": FORMAT,
        "format_version": parts.layout.format_version(),
        "elastoformer_hf": __version__,
        **parts.info,
        "base_model": parts.spec.to_dict(),
        "num_levels": len(parts.levels),
        "levels": parts.levels,
        "storage": {
            "weights": WEIGHTS_FILE,
            "dtype": str(shared.dtype).removeprefix("torch.") if shared is not None else None,
            "tensors": {"shared": "shared.{name}", "own": "level{k}.{name}", "orders": "order.{i}"},
            "bytes": {"shared": _bytes(parts.shared.values()),
                      "own": [_bytes(own.values()) for own in parts.own],
                      "orders": 4 * sum(o.size for o in parts.layout.orders)},  # stored as int32
            "layout": parts.layout.to_json(),
        },
    }


def write_family(parts: FamilyParts, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``parts`` as a family folder: ``family.safetensors`` and ``family_config.json``.

    Write the folder aside and rename it into place: an interrupted save never leaves a half family.

    Args:
        parts (`FamilyParts`): the family's storage and metadata.
        path (`str` or `os.PathLike`): the folder to write.
        overwrite (`bool`, *optional*, defaults to `False`): replace an existing ``path``.

    Returns:
        `Path`: ``path``.

    Raises:
        CheckpointError: ``path`` exists and ``overwrite`` is False.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not overwrite:
        raise CheckpointError(f"{path} already exists; pass overwrite=True to replace it")
    with staged_folder(path) as tmp:
        tensors = {f"shared.{n}": t for n, t in parts.shared.items()}
        for k, own in enumerate(parts.own, start=1):
            tensors.update({f"level{k}.{n}": t for n, t in own.items()})
        tensors.update({f"order.{i}": o.perm.to(torch.int32) for i, o in enumerate(parts.layout.orders)})
        # one metadata entry only: safetensors writes the header's metadata from a hash map, in an order that
        # changes from one save to the next when it holds several, and the same family would get other bytes (and
        # be uploaded again by the push, which compares hashes); family_config.json says what the file is
        save_file({n: t.detach().cpu().contiguous() for n, t in tensors.items()}, str(tmp / WEIGHTS_FILE),
                  metadata={"format": "pt"})
        # the weights' digest, checked on every load (the config is written after the weights)
        write_json(tmp / CONFIG_FILE, {**family_config(parts), "sha256": weight_digests(tmp)}, indent=1)
    return path


def with_level_latency(folder: str | os.PathLike, by_level: dict[int, list[dict]],
                       records: dict[int, dict] | None = None) -> dict:
    """The config of the family in ``folder`` with latency entries (card form) merged into its levels' metadata
    (the newer entry winning, a measurement never replaced by an estimate); nothing is written.

    Args:
        folder (`str` or `os.PathLike`): a family folder (``family_config.json``).
        by_level (`dict[int, list[dict]]`): ``{level: entries}``.
        records (`dict[int, dict]`, *optional*): ``{level: elastic_level.json}`` of the run the entries come
            from; the family must be that run's (same level count and, per level, the same parameters and
            MACs).

    Returns:
        `dict`: the family config with the merged entries.

    Raises:
        ElastoformerError: the config is corrupt or not a family config, or the family is not the records'
            run's.
    """
    path = Path(folder) / CONFIG_FILE
    config = read_json(path, what="it is the family artifact's metadata (fix or delete it, nothing was changed)")
    levels = config.get("levels") if isinstance(config, dict) else None
    if not isinstance(levels, list) or config.get("format") != FORMAT:
        raise ElastoformerError(f"{path} is not an elastic family config (no 'format': '{FORMAT}' with a 'levels' "
                                "list)")
    for level, entries in by_level.items():
        if not 1 <= level <= len(levels):
            raise ElastoformerError(f"{Path(folder)} has {len(levels)} levels, not level {level}: it is not this "
                                    "run's family; rebuild it (elastoformer_hf.build_family)")
        info, theirs = (records or {}).get(level) or {}, levels[level - 1]
        differ = [k for k in ("params", "macs") if k in info and k in theirs and int(info[k]) != int(theirs[k])]
        if differ:
            raise ElastoformerError(f"{Path(folder)}'s level {level} has other {' and '.join(differ)} than the run's "
                                    f"dn{level}: it is not this run's family; rebuild it (elastoformer_hf.build_family)")
        theirs["latency"] = merge_latency(theirs.get("latency") or [], entries)
    return config


def write_config(folder: str | os.PathLike, config: dict) -> Path:
    """Replace the family's ``family_config.json`` (as :func:`write_family` writes it).

    Args:
        folder (`str` or `os.PathLike`): the family folder.
        config (`dict`): the new config (e.g. from :func:`with_level_latency`).

    Returns:
        `Path`: the file written.
    """
    return write_json(Path(folder) / CONFIG_FILE, config, indent=1)


def resolve_folder(name_or_path: str | os.PathLike, **hub_kwargs) -> Path:
    """The local folder of a family: a local folder as it is; otherwise a Hub repo id through
    ``snapshot_download`` (the local cache when offline).

    Only the family's config, weights and ``*.md`` files are fetched.

    Args:
        name_or_path (`str` or `os.PathLike`): a local folder or a Hub repo id (``org/name``).
        **hub_kwargs: go to ``snapshot_download`` (``revision``, ``cache_dir``, ``token``, ...).

    Returns:
        `Path`: the folder.

    Raises:
        CheckpointError: ``name_or_path`` is neither a folder nor a Hub repo id, or the repo cannot be fetched
            (offline without a cached copy, unknown repo, network and auth errors).
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    name = str(name_or_path)
    if name.count("/") != 1 or name.startswith((".", "/", "~")) or path.exists():
        raise CheckpointError(f"{name} is not a family folder (and not a Hub repo id)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE, "*.md"], **hub_kwargs))
    except Exception as err:  # offline without a cached copy, unknown repo, network and auth errors
        first = str(err).splitlines()[0][:300] if str(err) else ""
        raise CheckpointError(f"cannot fetch the family {name!r}: no such local folder, and as a Hub repo id: "
                              f"{type(err).__name__}: {first} (offline, only repos already in the Hugging Face "
                              "cache open)") from None


def read_family(folder: Path, device: str | torch.device = "cpu") -> FamilyParts:
    """Read and check a family folder: every tensor the layout names, with its shape, and nothing else.

    Args:
        folder (`Path`): the family folder.
        device (`str` or `torch.device`, *optional*, defaults to `"cpu"`): where the tensors are loaded.

    Returns:
        `FamilyParts`: the family's storage and metadata.

    Raises:
        CheckpointError: the folder has no config or weights file, the config is corrupt, not a family config,
            of a newer format version, incomplete or inconsistent, or the weights are corrupt or truncated,
            miss a tensor, hold one of another shape, or hold tensors the config does not describe.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{folder} is not an elastic family folder (no {CONFIG_FILE})")
    config = read_json(config_path, error=CheckpointError)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{config_path} is not an elastic family config (missing 'format': '{FORMAT}')")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{config_path} has format version {config['format_version']}, newer than this "
                              f"elastoformer-hf reads ({FORMAT_VERSION}); upgrade elastoformer-hf")
    if not weights_path.is_file():
        raise CheckpointError(f"{folder} has no {WEIGHTS_FILE}")
    try:
        tensors = load_file(str(weights_path), device=str(torch.device(device)))
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"{weights_path} is corrupt or truncated ({err})") from None
    try:
        storage = config["storage"]["layout"]
        layout = Layout.from_json(storage, {k: v for k, v in tensors.items() if k.startswith("order.")})
        levels = config["levels"]
        spec = stored_spec(config["base_model"], config_path)
        if len(levels) != layout.num_levels:
            raise ValueError(f"{len(levels)} levels of metadata for a {layout.num_levels}-level layout")
        for entry in levels:
            int(entry["params"]), int(entry["macs"]), list(entry["latency"]), dict(entry["heads"] or {})
            {str(k): int(v) for k, v in (entry.get("conv_groups") or {}).items()}
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{config_path} is incomplete or inconsistent ({type(err).__name__}: {err})") from None
    shared = {n: _take(tensors, f"shared.{n}", layout.shapes[n], weights_path) for n in layout.shared}
    own = [{n: _take(tensors, f"level{k}.{n}", layout.level_shape(n, k), weights_path) for n in layout.own}
           for k in range(1, layout.num_levels + 1)]
    unexpected = sorted(n for n in tensors if not n.startswith("order."))
    if unexpected:
        raise CheckpointError(f"{weights_path} holds tensors its config does not describe: {unexpected[:5]}")
    # last: the checks above name what is structurally wrong; this catches what still loads but is not what was
    # written (a flipped bit); families written before digests were recorded have none
    check_digests(folder, config.get("sha256") or {})
    info = {k: config.get(k) for k in ("model_name", "architecture", "image_size", "plan", "label_names")}
    info["share_classifier"] = bool(config.get("share_classifier", False))  # absent: written before the option
    return FamilyParts(spec, layout, shared, own, levels, info)


def _take(tensors: dict, key: str, shape: tuple, path: Path) -> torch.Tensor:
    tensor = tensors.pop(key, None)
    if tensor is None:
        raise CheckpointError(f"{path} is missing the tensor {key}")
    if tuple(tensor.shape) != tuple(shape):
        raise CheckpointError(f"{path}: {key} has shape {tuple(tensor.shape)}, its config says {tuple(shape)}")
    return tensor
