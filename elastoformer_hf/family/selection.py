"""Which level to run: the most accurate one within a budget, from the family's metadata."""

from __future__ import annotations

import torch

from ..errors import ElastoformerError


def device_name(device: str | torch.device) -> str:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"``: how latency entries name devices."""
    return str(torch.device(device))


def latency_of(level: dict, device: str, batch_size: int) -> float | None:
    """The level's latest recorded latency (ms) on ``device`` at ``batch_size``, or None."""
    found = [e for e in level.get("latency") or [] if e.get("device") == device and e.get("batch_size") == batch_size]
    return float(found[-1]["ms"]) if found else None


def _cost(level: dict, device: str, batch_size: int, with_latency: bool) -> str:
    text = f"dn{level['level']}: {level['macs'] / 1e6:.4g} M MACs, {level['params'] / 1e6:.4g} M params"
    if with_latency:
        text += f", {latency_of(level, device, batch_size):.4g} ms on {device} (batch {batch_size})"
    return text


def select_level(levels: list[dict], *, max_macs: float | None = None, max_params: float | None = None,
                 max_latency_ms: float | None = None, device: str = "cpu", batch_size: int = 1) -> int:
    """The level (1-based) with the best recorded accuracy among those within every given budget; ties go to the
    cheaper (fewer MACs, then parameters). Levels without a recorded accuracy rank below those with one, and
    among themselves by size (a nested family's larger levels are the more accurate)."""
    if max_latency_ms is not None:
        missing = [lv["level"] for lv in levels if latency_of(lv, device, batch_size) is None]
        if missing:
            raise ElastoformerError(
                f"no latency recorded on {device} at batch size {batch_size} for levels {missing}: run a latency "
                f"benchmark first (family.measure_latency(device={device!r}, batch_size={batch_size}), or "
                "family.add_latency(...) with your own numbers)")

    def fits(lv: dict) -> bool:
        return ((max_macs is None or lv["macs"] <= max_macs) and (max_params is None or lv["params"] <= max_params)
                and (max_latency_ms is None or latency_of(lv, device, batch_size) <= max_latency_ms))

    candidates = [lv for lv in levels if fits(lv)]
    if not candidates:
        budget = ", ".join(f"{n}={v:g}" for n, v in (("max_macs", max_macs), ("max_params", max_params),
                                                       ("max_latency_ms", max_latency_ms)) if v is not None)
        cheapest = min(levels, key=lambda lv: (lv["macs"], lv["params"]))
        raise ElastoformerError(f"no level fits {budget}; the cheapest level is "
                                f"{_cost(cheapest, device, batch_size, max_latency_ms is not None)}")

    def rank(lv: dict):
        accuracy = lv.get("accuracy")
        known = accuracy is not None
        # best first: known accuracy, higher accuracy, then cheaper; unknown accuracy: bigger first
        return (not known, -accuracy if known else -lv["macs"], lv["macs"], lv["params"])

    return min(candidates, key=rank)["level"]
