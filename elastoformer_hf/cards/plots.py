"""The card's figures: top-1 accuracy and latency against FLOPs, one point per descendant network (PNG, Agg).

The PNGs are deterministic (no timestamp or version in their metadata), so re-rendering an unchanged family
gives byte-identical files and a re-run push has nothing to upload.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..latency.entries import latency_key, setting_label

logger = logging.getLogger(__name__)

ACCURACY_PLOT = "elastic_accuracy_vs_flops.png"
LATENCY_PLOT = "elastic_latency_vs_flops.png"


def available_plots(meta: dict) -> dict[str, bool]:
    """Which figures the ``elastoformer`` metadata block has data for."""
    rows = meta.get("family") or []
    return {ACCURACY_PLOT: any(r.get("top1") is not None for r in rows),
            LATENCY_PLOT: any(r.get("latency") for r in rows)}


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _gflops(row: dict) -> float:
    return row["flops"] / 1e9


def _flops_axis(ax, rows) -> None:
    top = max(_gflops(r) for r in rows)
    if top < 0.01:  # tiny test models: MFLOPs read better
        ax.set_xlabel("MFLOPs (batch 1)")
        ax.xaxis.set_major_formatter(lambda x, _: f"{x * 1e3:g}")
    else:
        ax.set_xlabel("GFLOPs (batch 1)")


def _highlight(ax, x, y, level) -> None:
    ax.scatter([x], [y], s=140, facecolors="none", edgecolors="crimson", linewidths=2, zorder=5,
               label=f"DN{level} (this model)")


def write_plots(meta: dict, folder: str | Path, title: str | None = None) -> list[str]:
    """Write the figures the metadata has data for into ``folder``; returns their file names.

    ``meta`` is a card's ``elastoformer`` block (``family`` rows with flops/top1/latency, and ``level`` for a
    descendant's card, whose point is circled). Without matplotlib nothing is written (a warning is logged).
    """
    plt = _pyplot()
    if plt is None:
        logger.warning("matplotlib is not installed: the model card's plots are left out")
        return []
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = sorted(meta.get("family") or [], key=lambda r: r["level"])
    level = meta.get("level")
    written = []
    wanted = available_plots(meta)
    metadata = {"Software": None}  # no matplotlib version in the file: byte-identical re-renders
    if wanted[ACCURACY_PLOT]:
        pts = [r for r in rows if r.get("top1") is not None]
        fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=100)
        ax.plot([_gflops(r) for r in pts], [100 * r["top1"] for r in pts], "o-", color="tab:blue", zorder=3)
        for r in pts:
            ax.annotate(f"DN{r['level']}", (_gflops(r), 100 * r["top1"]), textcoords="offset points",
                        xytext=(4, -12), fontsize=8)
        mine = next((r for r in pts if r["level"] == level), None)
        if mine is not None:
            _highlight(ax, _gflops(mine), 100 * mine["top1"], level)
            ax.legend(loc="lower right", fontsize=8)
        _flops_axis(ax, rows)
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(title or "Accuracy vs FLOPs", fontsize=10)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(folder / ACCURACY_PLOT, format="png", metadata=metadata)
        plt.close(fig)
        written.append(ACCURACY_PLOT)
    if wanted[LATENCY_PLOT]:
        settings: dict[tuple, list] = {}
        for r in rows:
            for e in r.get("latency") or []:
                settings.setdefault(latency_key(e), []).append((_gflops(r), e["ms"], e["method"], r["level"]))
        fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=100)
        for key, pts in settings.items():
            pts.sort()
            estimated = any(p[2] == "estimated" for p in pts)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o--" if estimated else "o-", zorder=3,
                    label=setting_label(key) + (" (estimated)" if estimated else ""))
            for x, y, _, lv in pts:
                if lv == level:
                    ax.scatter([x], [y], s=140, facecolors="none", edgecolors="crimson", linewidths=2, zorder=5)
        _flops_axis(ax, rows)
        ax.set_ylabel("latency (ms)")
        ax.set_title(title or "Latency vs FLOPs", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / LATENCY_PLOT, format="png", metadata=metadata)
        plt.close(fig)
        written.append(LATENCY_PLOT)
    return written
