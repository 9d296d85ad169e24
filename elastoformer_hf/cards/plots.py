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
    ax.set_xlim(0, 1.08 * top)  # from zero: the cost ratios between levels read true
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
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8, frameon=False)
        _flops_axis(ax, rows)
        ax.set_ylim(0, 105)  # from zero: a two-point spread must not look like a cliff
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
        ax.set_ylim(0, 1.1 * max(p[1] for pts in settings.values() for p in pts))  # from zero, as the FLOPs axis
        ax.set_ylabel("latency (ms)")
        ax.set_title(title or "Latency vs FLOPs", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7, frameon=False)  # never over the data
        fig.tight_layout()
        fig.savefig(folder / LATENCY_PLOT, format="png", metadata=metadata)
        plt.close(fig)
        written.append(LATENCY_PLOT)
    return written



def _macs_axis(ax, rows) -> float:
    """MACs on the x axis from zero, in G (M for tiny models); returns the scale the values are divided by."""
    scale, unit = (1e9, "G") if max(r["macs"] for r in rows) >= 1e8 else (1e6, "M")
    ax.set_xlabel(f"{unit}MACs per image")
    ax.set_xlim(0, 1.08 * max(r["macs"] for r in rows) / scale)
    return scale


def write_family_plot(meta: dict, path: str | Path, *, reference: tuple[str, float] | None = None,
                      title: str | None = None) -> Path | None:
    """``family.png``: every level's top-1 accuracy against its MACs and, where a latency is recorded, its latency
    against its MACs (one line per setting, estimates dashed); axes start at zero, legends sit below the plots.

    Args:
        meta (`dict`): a card's ``elastoformer`` block (``family`` rows with ``macs``, ``top1``, ``latency``).
        path (`str` or `Path`): the PNG to write.
        reference (`tuple[str, float]`, *optional*): ``(label, top1)`` of the model the family comes from (the
            dense parent), drawn as a dashed line.
        title (`str`, *optional*): the figure's title.

    Returns:
        `Path` or `None`: ``path``, or None when there is nothing to plot (no accuracy and no latency recorded) or
        matplotlib is missing.
    """
    rows = sorted(meta.get("family") or [], key=lambda r: r["level"])
    accurate = [r for r in rows if r.get("top1") is not None]
    timed = any(r.get("latency") for r in rows)
    plt = _pyplot()
    if plt is None or not rows or not (accurate or timed):
        return None
    panels = [p for p, ok in (("accuracy", bool(accurate)), ("latency", timed)) if ok]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), dpi=100, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        scale = _macs_axis(ax, rows)
        if panel == "accuracy":
            xs, ys = [r["macs"] / scale for r in accurate], [100 * r["top1"] for r in accurate]
            ax.plot(xs, ys, "o-", color="tab:blue", zorder=3, label="levels (DN1 = core)")
            for r, x, y in zip(accurate, xs, ys):
                ax.annotate(f"DN{r['level']}\n{y:.2f}", (x, y), textcoords="offset points", xytext=(0, -26),
                            ha="center", fontsize=7)
            if reference is not None:
                ax.axhline(100 * reference[1], color="gray", linestyle="--", zorder=2,
                           label=f"{reference[0]}: {100 * reference[1]:.1f} %")
            ax.set_ylim(0, 105)
            ax.set_ylabel("top-1 accuracy (%)")
        else:
            settings: dict[tuple, list] = {}
            for r in rows:
                for e in r.get("latency") or []:
                    settings.setdefault(latency_key(e), []).append((r["macs"] / scale, e["ms"], e["method"]))
            for key, pts in settings.items():
                pts.sort()
                estimated = any(p[2] == "estimated" for p in pts)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o--" if estimated else "o-", zorder=3,
                        label=setting_label(key) + (" (estimated)" if estimated else ""))
            ax.set_ylim(0, 1.1 * max(p[1] for pts in settings.values() for p in pts))
            ax.set_ylabel("latency (ms)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path
