"""A descendant network as a transformers model: the stock base architecture, resized to the saved shapes.

Self-contained on purpose (see ``configuration_elastoformer.py``): it must run from a Hub repo with
``trust_remote_code=True`` without elastoformer-hf installed.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

from .configuration_elastoformer import ElastoformerConfig

#: The constructor arguments a config may hand to the base architecture's builder (timm, torchvision): the
#: architecture's own knobs, the ones elastoformer-hf writes (``num_classes``, timm ResNet's ``channels``,
#: ``stem_width``, ``base_width``) and those a run may be started with (``--model_args``). Anything else - loader
#: options such as ``checkpoint_path``, ``pretrained``, ``pretrained_cfg``, ``pretrained_cfg_overlay``,
#: ``cache_dir`` or ``weights`` - would let a config make the builder read a file or fetch weights of its choosing.
ARCHITECTURE_ARGS = frozenset({
    # any classifier
    "num_classes", "in_chans", "img_size", "global_pool", "drop_rate", "drop_path_rate", "drop_block_rate",
    "output_stride", "act_layer", "norm_layer",
    # vision transformers (timm VisionTransformer)
    "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "qkv_bias", "qk_norm", "init_values",
    "class_token", "reg_tokens", "no_embed_class", "pos_embed", "pre_norm", "final_norm", "fc_norm",
    "dynamic_img_size", "dynamic_img_pad", "pos_drop_rate", "patch_drop_rate", "proj_drop_rate", "attn_drop_rate",
    "weight_init",
    # Swin
    "window_size", "head_dim",
    # ResNet, ResNeXt, VGG
    "layers", "channels", "stem_width", "stem_type", "base_width", "cardinality", "avg_down", "down_kernel_size",
    "block_reduce_first", "replace_stem_pool", "zero_init_last",
    # ConvNeXt, EfficientNet, MobileNet
    "depths", "dims", "kernel_sizes", "ls_init_value", "conv_mlp", "conv_bias", "use_grn", "head_hidden_size",
    "head_init_scale", "head_norm_first", "channel_multiplier", "depth_multiplier", "stem_size", "num_features",
    "fix_stem", "head_bias",
    # torchvision builders
    "dropout", "width_mult", "zero_init_residual", "groups", "width_per_group", "stochastic_depth_prob",
    "aux_logits", "init_weights",
})


def non_architecture_args(model_args: dict) -> list[str]:
    """The keys of ``model_args`` that are not in :data:`ARCHITECTURE_ARGS`, sorted."""
    return sorted(str(k) for k in model_args if k not in ARCHITECTURE_ARGS)


def build_base_model(source: str, architecture: str, model_args: dict, base_config: dict | None) -> nn.Module:
    """The dense base architecture with freshly initialised weights (never downloads weights, never reads a file:
    ``pretrained`` is always False and ``model_args`` may only hold :data:`ARCHITECTURE_ARGS`). Under a meta device
    (transformers builds models on one before loading weights), a constructor that computes with tensors
    (torchvision's RegNet derives its widths with torch ops) is run on the CPU instead."""
    refused = non_architecture_args(model_args or {})
    if refused:
        raise ValueError(f"base_model_args {refused} are not architecture arguments; refusing to pass them to the "
                         f"{source} builder")
    try:
        return _build_base_model(source, architecture, model_args, base_config)
    except NotImplementedError:
        if torch.empty(0).device.type != "meta":
            raise
        with torch.device("cpu"):
            return _build_base_model(source, architecture, model_args, base_config)


def _build_base_model(source: str, architecture: str, model_args: dict, base_config: dict | None) -> nn.Module:
    if source == "timm":
        import timm

        return timm.create_model(architecture, pretrained=False, **model_args)
    if source == "torchvision":
        import torchvision

        return torchvision.models.get_model(architecture, weights=None, **model_args)
    if source == "transformers":
        import transformers

        config = transformers.AutoConfig.for_model(**base_config)
        return getattr(transformers, architecture)(config)
    raise ValueError(f"unknown base_source {source!r}; expected timm, torchvision or transformers")


def _sync_attributes(module: nn.Module) -> None:
    """Make a module's size attributes agree with its (resized) tensors."""
    weight = getattr(module, "weight", None)
    if isinstance(module, nn.Linear):
        module.out_features, module.in_features = weight.shape
    elif isinstance(module, nn.modules.conv._ConvNd):
        module.out_channels = weight.shape[0]
        module.in_channels = weight.shape[1] * module.groups
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        module.num_features = module.running_mean.shape[0] if module.running_mean is not None else weight.shape[0]
    elif isinstance(module, nn.LayerNorm) and weight is not None:
        module.normalized_shape = (weight.shape[0],)
    elif isinstance(module, nn.GroupNorm):
        module.num_channels = weight.shape[0]


def resize_to_shapes(model: nn.Module, shapes: dict) -> None:
    """Shrink the tensors named in ``shapes`` (state-dict keys) to those shapes, by taking leading slices."""
    touched = set()
    for key, shape in shapes.items():
        owner_name, _, attr = key.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        old = getattr(owner, attr)
        if old.dim() != len(shape) or any(n > o for n, o in zip(shape, old.shape)):
            raise ValueError(f"{key}: cannot resize {tuple(old.shape)} to {tuple(shape)}")
        new = old.data[tuple(slice(0, n) for n in shape)].clone()
        if isinstance(old, nn.Parameter):
            setattr(owner, attr, nn.Parameter(new, requires_grad=old.requires_grad))
        else:
            owner.register_buffer(attr, new, persistent=attr not in owner._non_persistent_buffers_set)
        touched.add(owner)
    for module in touched:
        _sync_attributes(module)


def set_conv_groups(model: nn.Module, groups: dict) -> None:
    """Set the group count of grouped convolutions (``{module name: groups}``), and their ``in_channels``."""
    for name, count in groups.items():
        module = model.get_submodule(name)
        module.groups = int(count)
        module.in_channels = module.weight.shape[1] * module.groups


def conv_groups(model: nn.Module) -> dict[str, int]:
    """``{module name: groups}`` of every grouped convolution of ``model``."""
    return {n: m.groups for n, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd) and m.groups > 1}


def set_attention(model: nn.Module, attention: dict) -> None:
    """Set head count and head dim of attention modules (transformers and timm attribute names)."""
    for name, spec in attention.items():
        module = model.get_submodule(name)
        heads, head_dim = int(spec["num_heads"]), int(spec["head_dim"])
        module.head_dim = head_dim
        if hasattr(module, "num_attention_heads"):  # transformers ViT / DeiT
            module.num_attention_heads = heads
            module.scaling = head_dim**-0.5
        else:  # timm Attention
            module.num_heads = heads
            module.scale = head_dim**-0.5
            if hasattr(module, "attn_dim"):
                module.attn_dim = heads * head_dim


@torch.no_grad()
def init_non_persistent_buffers(module: nn.Module) -> None:
    """Compute again the non-persistent buffers of ``module`` (not its children's) that a checkpoint does not hold:
    timm modules do it with ``init_non_persistent_buffers`` (Swin: relative position index, shifted-window mask)."""
    init = getattr(module, "init_non_persistent_buffers", None)
    if callable(init):
        init()


def _logits(output):
    if isinstance(output, torch.Tensor):
        return output
    if getattr(output, "logits", None) is not None:
        return output.logits
    return output[0]


class ElastoformerForImageClassification(PreTrainedModel):
    config_class = ElastoformerConfig
    base_model_prefix = "model"
    main_input_name = "pixel_values"

    def __init__(self, config: ElastoformerConfig, model: nn.Module | None = None):
        super().__init__(config)
        if model is None:
            model = build_base_model(
                config.base_source, config.base_architecture, config.base_model_args, config.base_config
            )
            resize_to_shapes(model, config.param_shapes)
            set_conv_groups(model, getattr(config, "conv_groups", None) or {})
            set_attention(model, config.attention)
        self.model = model
        self.post_init()

    def _init_weights(self, module):
        """Weights come from the checkpoint (or from the parent, when wrapping); nothing to initialise but the
        buffers a checkpoint does not hold: transformers builds the model on the meta device and leaves its
        non-persistent buffers empty (timm's Swin: relative position index, shifted-window mask), which timm
        modules compute again (:func:`init_non_persistent_buffers`)."""
        if module is not self and not isinstance(module, PreTrainedModel):
            init_non_persistent_buffers(module)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs):
        logits = _logits(self.model(pixel_values))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)
