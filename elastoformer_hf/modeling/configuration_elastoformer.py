"""Config of a descendant network whose widths no stock config can express (per-layer widths from global
pruning, CNN channel counts that a timm/torchvision constructor cannot take).

This file and ``modeling_elastoformer.py`` are copied next to the weights (``auto_map``), so they import nothing
from elastoformer_hf: ``AutoModelForImageClassification.from_pretrained(path, trust_remote_code=True)`` works
where elastoformer-hf is not installed.
"""

from transformers import PretrainedConfig


class ElastoformerConfig(PretrainedConfig):
    """A stock base architecture plus the shapes that pruning changed.

    Args:
        base_source: ``"timm"``, ``"torchvision"`` or ``"transformers"``: the library that builds the base.
        base_architecture: timm model name, torchvision builder name, or transformers model class name.
        base_model_args: keyword arguments of that builder (``num_classes``, ...).
        base_config: the transformers config (as a dict) when ``base_source == "transformers"``.
        param_shapes: ``{state-dict key: shape}`` for every tensor whose shape differs from the base.
        attention: ``{attention module: {"num_heads": h, "head_dim": d}}`` after pruning.
        conv_groups: ``{convolution: groups}`` for every grouped convolution whose group count pruning changed
            (a depthwise convolution keeps one group per channel).
        data_config: preprocessing (timm's ``input_size``, ``mean``, ``std``, ``interpolation``, ``crop_pct``).
        elastic: the level's place in its family (``level``, ``num_levels``, ...).
    """

    model_type = "elastoformer"

    def __init__(
        self,
        base_source: str = "timm",
        base_architecture: str = "",
        base_model_args: dict | None = None,
        base_config: dict | None = None,
        param_shapes: dict | None = None,
        attention: dict | None = None,
        conv_groups: dict | None = None,
        data_config: dict | None = None,
        elastic: dict | None = None,
        **kwargs,
    ):
        self.base_source = base_source
        self.base_architecture = base_architecture
        self.base_model_args = dict(base_model_args or {})
        self.base_config = base_config
        self.param_shapes = {k: list(v) for k, v in (param_shapes or {}).items()}
        self.attention = dict(attention or {})
        self.conv_groups = {k: int(v) for k, v in (conv_groups or {}).items()}
        self.data_config = dict(data_config or {})
        self.elastic = dict(elastic or {})
        super().__init__(**kwargs)
