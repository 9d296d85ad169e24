"""Which level to run: the most accurate one within a budget, from the family's metadata.

Latency budgets read the levels' ``latency`` entries (the model cards' format, :mod:`elastoformer_hf.cards.latency`).
``elastoformer bench`` names devices by what they are (``"cpu: AMD EPYC 7B13 (8 threads)"``, ``"cuda: NVIDIA
H100 80GB HBM3"``, ``"Jetson Orin Nano 8GB (15W)"``), so a ``device`` asked for is matched in this order:

1. exactly (the name an entry carries, or ``"cpu"``/``"cuda:0"`` as ``add_latency`` stores a torch device);
2. a torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``): every entry of that device type (its ``device_type``, or
   the ``type:`` prefix of its name);
3. any other text: entries whose name contains it, ignoring case (``"H100"``, ``"Orin"``).

One setting (device name, runtime, precision) is then used for every level, so levels are compared on the same
footing: the one with entries for the most levels, then measured over estimated, then the ``torch`` runtime (what
the family itself runs), then the most recent. ``runtime`` and ``precision`` narrow the choice.
"""

from __future__ import annotations

import torch

from ..errors import ElastoformerError

Setting = tuple[str, str, str]  # (device name, runtime, precision)


def device_name(device: str | torch.device) -> str:
    """The name latency entries use for ``device``.

    Args:
        device (`str` or `torch.device`): a torch device (or its text), or any other device name.

    Returns:
        `str`: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` for torch devices (how ``add_latency`` names them); any
        other text (a benchmark's device name, ``"Jetson Orin Nano 8GB"``) as it is (stripped).
    """
    if isinstance(device, torch.device):
        return str(device)
    try:
        return str(torch.device(device))
    except (RuntimeError, TypeError, ValueError):
        return str(device).strip()


def _torch_type(device: str) -> str | None:
    try:
        return torch.device(device).type
    except (RuntimeError, TypeError, ValueError):
        return None


def entry_device_type(entry: dict) -> str | None:
    """The torch device type an entry was measured on: its ``device_type``, else its name's ``type:`` prefix.

    Args:
        entry (`dict`): a latency entry (card form).

    Returns:
        `str` or `None`: the device type (``"cpu"``, ``"cuda"``, ...), or None when neither names one.
    """
    if entry.get("device_type"):
        return str(entry["device_type"])
    return _torch_type(str(entry.get("device", "")).split(":", 1)[0].strip())


def _device_matches(entries: list[dict], device: str) -> list[dict]:
    exact = [e for e in entries if e.get("device") == device]
    if exact:
        return exact
    kind = _torch_type(device)
    if kind is not None:
        return [e for e in entries if entry_device_type(e) == kind]
    return [e for e in entries if device.lower() in str(e.get("device", "")).lower()]


def _runtime_matches(entry: dict, runtime: str | None) -> bool:
    if runtime is None:
        return True
    have, want = str(entry.get("runtime", "")).lower(), runtime.lower()
    return have == want or have.startswith(want + " ")  # "torch 2.14.1 eager" is a torch entry


def resolve_setting(levels: list[dict], device: str, batch_size: int, runtime: str | None = None,
                    precision: str | None = None) -> Setting | None:
    """The (device name, runtime, precision) whose entries :func:`select_level` compares (see the module
    docstring).

    Args:
        levels (`list[dict]`): the family's per-level metadata, with their ``latency`` entries.
        device (`str`): the device asked for: an entry's name, a torch device, or text in entries' names.
        batch_size (`int`): only entries at this batch size count.
        runtime (`str`, *optional*): only entries of this runtime count (``"torch"`` also matches
            ``"torch 2.x eager"``), ignoring case.
        precision (`str`, *optional*): only entries of this precision count.

    Returns:
        `tuple[str, str, str]` or `None`: the setting, or None when no level has an entry matching ``device``
        at ``batch_size``.
    """
    found: dict[Setting, dict] = {}
    for order, lv in enumerate(levels):
        entries = [e for e in lv.get("latency") or [] if e.get("batch_size") == batch_size
                   and _runtime_matches(e, runtime) and (precision is None or e.get("precision") == precision)]
        for e in _device_matches(entries, device):
            key = (e["device"], e["runtime"], e["precision"])
            stats = found.setdefault(key, {"levels": set(), "measured": 0, "date": "", "first": order})
            stats["levels"].add(lv["level"])
            stats["measured"] += e.get("method") == "measured"
            stats["date"] = max(stats["date"], str(e.get("date") or ""))
    if not found:
        return None

    def rank(item):
        (_, rt, _), stats = item
        return (len(stats["levels"]), stats["measured"], _runtime_matches({"runtime": rt}, "torch"), stats["date"],
                -stats["first"])

    return max(found.items(), key=rank)[0]


def latency_of(level: dict, device: str | Setting, batch_size: int) -> float | None:
    """The level's latest recorded latency (ms) for ``device`` at ``batch_size``.

    Args:
        level (`dict`): one level's metadata, with its ``latency`` entries.
        device (`str` or `tuple[str, str, str]`): a device name (matched as the module docstring says), or a
            :func:`resolve_setting` result (matched exactly).
        batch_size (`int`): the batch size.

    Returns:
        `float` or `None`: the latency in ms of the last matching entry, or None.
    """
    if isinstance(device, tuple):
        name, runtime, precision = device
        found = [e for e in level.get("latency") or [] if e.get("device") == name and e.get("runtime") == runtime
                 and e.get("precision") == precision and e.get("batch_size") == batch_size]
    else:
        found = _device_matches([e for e in level.get("latency") or [] if e.get("batch_size") == batch_size], device)
    return float(found[-1]["ms"]) if found else None


def _label(setting: Setting | None, device: str) -> str:
    return device if setting is None else f"{setting[0]} ({setting[1]}, {setting[2]})"


def _cost(level: dict, setting: Setting | None, device: str, batch_size: int, with_latency: bool) -> str:
    text = f"dn{level['level']}: {level['macs'] / 1e6:.4g} M MACs, {level['params'] / 1e6:.4g} M params"
    if with_latency:
        text += f", {latency_of(level, setting, batch_size):.4g} ms on {_label(setting, device)} (batch {batch_size})"
    return text


def select_level(levels: list[dict], *, max_macs: float | None = None, max_params: float | None = None,
                 max_latency_ms: float | None = None, device: str = "cpu", batch_size: int = 1,
                 runtime: str | None = None, precision: str | None = None) -> int:
    """The level with the best recorded accuracy among those within every given budget.

    Ties go to the cheaper (fewer MACs, then parameters). Levels without a recorded accuracy rank below those
    with one, and among themselves by size (a nested family's larger levels are the more accurate).

    Args:
        levels (`list[dict]`): the family's per-level metadata (``level``, ``macs``, ``params``, ``accuracy``,
            ``latency``).
        max_macs (`float`, *optional*): the most MACs a level may have.
        max_params (`float`, *optional*): the most parameters a level may have.
        max_latency_ms (`float`, *optional*): the longest latency (ms) a level may have; it reads the entries
            of one setting matching ``device`` (and ``runtime``/``precision`` when given; module docstring).
        device (`str`, *optional*, defaults to `"cpu"`): the device whose latencies are read.
        batch_size (`int`, *optional*, defaults to `1`): the batch size of the latencies read.
        runtime (`str`, *optional*): read only this runtime's entries.
        precision (`str`, *optional*): read only this precision's entries.

    Returns:
        `int`: the level (1-based).

    Raises:
        ElastoformerError: no level fits the budgets (naming the cheapest level), or with ``max_latency_ms``,
            some level has no latency recorded in the chosen setting at ``batch_size``.
    """
    setting = None
    if max_latency_ms is not None:
        setting = resolve_setting(levels, device, batch_size, runtime, precision)
        missing = [lv["level"] for lv in levels if setting is None or latency_of(lv, setting, batch_size) is None]
        if missing:
            narrowed = "".join(f", {n} {v}" for n, v in (("runtime", runtime), ("precision", precision)) if v)
            raise ElastoformerError(
                f"no latency recorded on {_label(setting, device)} at batch size {batch_size}{narrowed} for levels "
                f"{missing}: run a latency benchmark first (elastoformer bench RUN --device ... --batch_sizes "
                f"{batch_size}, family.measure_latency(batch_size={batch_size}), or family.add_latency(...) with "
                "your own numbers)")

    def fits(lv: dict) -> bool:
        return ((max_macs is None or lv["macs"] <= max_macs) and (max_params is None or lv["params"] <= max_params)
                and (max_latency_ms is None or latency_of(lv, setting, batch_size) <= max_latency_ms))

    candidates = [lv for lv in levels if fits(lv)]
    if not candidates:
        budget = ", ".join(f"{n}={v:g}" for n, v in (("max_macs", max_macs), ("max_params", max_params),
                                                       ("max_latency_ms", max_latency_ms)) if v is not None)
        cheapest = min(levels, key=lambda lv: (lv["macs"], lv["params"]))
        raise ElastoformerError(f"no level fits {budget}; the cheapest level is "
                                f"{_cost(cheapest, setting, device, batch_size, max_latency_ms is not None)}")

    def rank(lv: dict):
        accuracy = lv.get("accuracy")
        known = accuracy is not None
        # best first: known accuracy, higher accuracy, then cheaper; unknown accuracy: bigger first
        return (not known, -accuracy if known else -lv["macs"], lv["macs"], lv["params"])

    return min(candidates, key=rank)["level"]
