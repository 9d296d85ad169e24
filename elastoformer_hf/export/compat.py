"""Which TensorRT release (and so which JetPack) parses an exported graph, and the ``--opset`` to export for an
older one.

From NVIDIA's ONNX-TensorRT operator tables and release notes, not measured here (no TensorRT host was
reachable): TensorRT 10 parses opsets 9-20 (JetPack 6.1 and 6.2 ship 10.3). 8.6 (JetPack 6.0) and 8.5 (JetPack
5.1) stop at opset 17, and 8.5 has no importer for LayerNormalization, the op opset 17 added and both torch
exporters write for a ViT's layer norms (8.6 added it). So a ViT needs opset 16 there: the dynamo exporter cannot
write it, and ``--exporter auto`` falls back to TorchScript, which writes layer norm as primitive ops. 8.2
(JetPack 4.6, the last JetPack for the original Jetson Nano) stops at opset 13.

No library answers "will this TensorRT parse this graph" without TensorRT itself, hence this table. It lets
``elastoformer export`` and the cards say which JetPack a graph needs, and lets :func:`check_parseable` turn a
parser failure several minutes into an engine build into a clear message before it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ElastoformerError

#: torch's own default (``torch.onnx._constants.ONNX_DEFAULT_OPSET`` in 2.14; the TorchScript exporter's maximum).
#: From opset 20 GELU is one ``Gelu`` node, which onnxruntime fuses with the bias (``BiasGelu``); at 18 the
#: dynamo exporter writes it as 5 elementwise nodes that onnxruntime leaves apart (DeiT-B: 394 nodes after
#: onnxruntime's optimiser against 334). TensorRT 10 (JetPack 6.1+) parses it; older releases need a lower opset
#: (:data:`TENSORRT_RELEASES`).
DEFAULT_OPSET = 20
#: the op a ViT's layer norm becomes from opset 17 on
LAYER_NORM_OP = "LayerNormalization"


@dataclass(frozen=True)
class TensorRTRelease:
    """One TensorRT release of the table: which opsets and ops its ONNX parser takes, and its JetPack.

    Args:
        version (`tuple[int, int]`): ``(major, minor)``.
        jetpack (`str`): the JetPack that ships it.
        max_opset (`int`): the newest opset its ONNX parser takes.
        missing_ops (`frozenset[str]`, *optional*, defaults to `frozenset()`): ops of opsets <= ``max_opset``
            that this release's ONNX parser has no importer for.
    """

    version: tuple[int, int]
    jetpack: str
    max_opset: int
    #: ops of opsets <= max_opset that this release's ONNX parser has no importer for
    missing_ops: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        """`str`: ``"TensorRT {major}"`` from 10 on, else ``"TensorRT {major}.{minor}"``."""
        major, minor = self.version
        return f"TensorRT {major}" if major >= 10 else f"TensorRT {major}.{minor}"

    @property
    def export_opset(self) -> int:
        """`int`: the highest opset whose graphs this release parses whatever their ops."""
        return 16 if LAYER_NORM_OP in self.missing_ops and self.max_opset >= 17 else self.max_opset

    def parses(self, opset: int, op_types: Iterable[str] | None = None) -> bool:
        """Whether this release parses a graph of ``opset`` with ``op_types``.

        Args:
            opset (`int`): the graph's opset.
            op_types (`Iterable[str]`, *optional*): the graph's op types (None: unknown; then a graph of opset
                17 or later is assumed to use LayerNormalization, as every ViT export does).

        Returns:
            `bool`: False when ``opset`` is newer than :attr:`max_opset` or the graph uses a missing op.
        """
        if opset > self.max_opset:
            return False
        ops = set(op_types) if op_types is not None else ({LAYER_NORM_OP} if opset >= 17 else set())
        return not (ops & self.missing_ops)


#: newest first
TENSORRT_RELEASES = (
    TensorRTRelease((10, 0), "JetPack 6.1+", 20),
    TensorRTRelease((8, 6), "JetPack 6.0", 17),
    TensorRTRelease((8, 5), "JetPack 5.1", 17, frozenset({LAYER_NORM_OP})),
    TensorRTRelease((8, 2), "JetPack 4.6, the last for the original Jetson Nano", 13),
)


def release_for(version: str) -> TensorRTRelease | None:
    """The table's entry for an installed TensorRT version string.

    Args:
        version (`str`): ``tensorrt.__version__``, e.g. "8.5.2.2".

    Returns:
        `TensorRTRelease` or `None`: the newest release not newer than it; None if it is older than every
        entry or not a version.
    """
    try:
        installed = tuple(int(part) for part in str(version).split(".")[:2])
    except ValueError:
        return None
    return next((r for r in TENSORRT_RELEASES if installed >= r.version), None)


def oldest_parser(opset: int, op_types: Iterable[str] | None = None) -> TensorRTRelease | None:
    """The oldest release in the table that parses the graph.

    Args:
        opset (`int`): the graph's opset.
        op_types (`Iterable[str]`, *optional*): the graph's op types (None: unknown, see
            :meth:`TensorRTRelease.parses`).

    Returns:
        `TensorRTRelease` or `None`: the release (None: none does).
    """
    ops = None if op_types is None else set(op_types)
    parsers = [r for r in TENSORRT_RELEASES if r.parses(opset, ops)]
    return parsers[-1] if parsers else None


def _older_options(than: TensorRTRelease | None) -> str:
    older = [r for r in TENSORRT_RELEASES if than is None or r.version < than.version]
    return "; ".join(f"`--opset {r.export_opset}` for {r.name} ({r.jetpack})" for r in older)


def compatibility_note(opset: int, op_types: Iterable[str] | None = None,
                       command: str = "elastoformer export RUN_DIR --format onnx --overwrite") -> str:
    """One sentence: which TensorRT parses this graph, and how to export for the older ones.

    Args:
        opset (`int`): the graph's opset.
        op_types (`Iterable[str]`, *optional*): the graph's op types (None: unknown, see
            :meth:`TensorRTRelease.parses`).
        command (`str`, *optional*, defaults to `"elastoformer export RUN_DIR --format onnx --overwrite"`):
            the export command the sentence names, completed with an ``--opset`` per older release.

    Returns:
        `str`: the sentence.
    """
    oldest = oldest_parser(opset, op_types)
    options = _older_options(oldest)
    if oldest is None:
        return f"No TensorRT release listed here parses this opset-{opset} graph; export with `{command}` and " \
               f"{options}."
    parsed = f"TensorRT parses this opset-{opset} graph from {oldest.name} ({oldest.jetpack}) on"
    if not options:
        return parsed + "."
    return f"{parsed}. For an older one, export with `{command}` and {options}."


def check_parseable(opset: int, op_types: Iterable[str] | None, tensorrt_version: str, source: str) -> None:
    """Raise a clear error when the installed TensorRT cannot parse the graph (unknown versions pass: the parser
    itself decides).

    Args:
        opset (`int`): the graph's opset.
        op_types (`Iterable[str]`, *optional*): the graph's op types (None: unknown, see
            :meth:`TensorRTRelease.parses`).
        tensorrt_version (`str`): the installed ``tensorrt.__version__``.
        source (`str`): the graph's file, for the message.

    Raises:
        ElastoformerError: the installed release cannot parse the graph (too new an opset, or an op its parser
            has no importer for); the message names the ``--opset`` to re-export with.
    """
    release = release_for(tensorrt_version)
    if release is None or release.parses(opset, op_types):
        return
    why = (f"it stops at opset {release.max_opset}" if opset > release.max_opset
           else f"its ONNX parser has no {', '.join(sorted(set(op_types or [LAYER_NORM_OP]) & release.missing_ops))}")
    raise ElastoformerError(
        f"TensorRT {tensorrt_version} ({release.jetpack}) cannot parse {source} (opset {opset}): {why}. Re-export "
        f"the level for it: elastoformer export RUN_DIR --format onnx --opset {release.export_opset} --overwrite")
