"""ResNet and VGG, from timm and from torchvision: every conv channel group is pruned, the classifier never."""

from __future__ import annotations

from torch import nn

from .base import ArchitectureAdapter, register_adapter


class CNNAdapter(ArchitectureAdapter):
    kind = "cnn"

    def structure(self, model):
        widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
        return {"convs": len(widths), "channels": sum(widths)}


@register_adapter
class TimmResNetAdapter(CNNAdapter):
    name = "timm-resnet"
    description = "timm ResNet (resnet*, wide_resnet*, resnext*)"
    round_to_group = "resnet"
    source = "timm"
    model_classes = (("timm.models.resnet", "ResNet"),)

    def classifier_layers(self, model):
        return [model.fc]

    def finalize(self, model, heads=None):
        model.num_features = model.head_hidden_size = model.fc.in_features

    def stock_model_args(self, model) -> dict | None:
        """timm ``ResNet`` arguments that rebuild these widths (checked against the weights by the caller).

        A pruned 7x7 stem is never expressible (timm fixes it at 64 channels unless the stem is 'deep'), so in
        practice this succeeds for the dense level and the caller falls back to the Elastoformer form."""
        stages = [model.layer1, model.layer2, model.layer3, model.layer4]
        block = stages[0][0]
        if hasattr(block, "conv3"):  # Bottleneck: out = 4 x planes, inner = planes x base_width / 64
            channels = [stage[0].conv3.out_channels // block.expansion for stage in stages]
            base_width = block.conv1.out_channels * 64 // channels[0]
        else:  # BasicBlock: inner = out = planes
            channels = [stage[0].conv2.out_channels for stage in stages]
            base_width = 64
        return {"channels": channels, "stem_width": model.conv1.out_channels, "base_width": base_width}

    def residual_branches(self, model):
        # BasicBlock/Bottleneck: x = bn2|bn3(conv); [x = se(x)]; [x = drop_path(x)]; x += shortcut. The last of
        # these that exists is the branch (aa and drop_block sit earlier, inside the branch).
        branches = []
        for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
            for block in stage:
                last = block.bn3 if hasattr(block, "bn3") else block.bn2
                for name in ("se", "drop_path"):
                    if getattr(block, name, None) is not None:
                        last = getattr(block, name)
                branches.append([last])
        return branches


@register_adapter
class TimmVGGAdapter(CNNAdapter):
    name = "timm-vgg"
    description = "timm VGG (vgg11..vgg19, _bn)"
    round_to_group = "vgg"
    source = "timm"
    model_classes = (("timm.models.vgg", "VGG"),)

    def classifier_layers(self, model):
        return [model.head.fc]

    def finalize(self, model, heads=None):
        model.num_features = model.pre_logits.fc1.in_channels
        model.head_hidden_size = model.head.fc.in_features


@register_adapter
class TorchvisionResNetAdapter(CNNAdapter):
    name = "torchvision-resnet"
    description = "torchvision ResNet (resnet18..152, wide_resnet*, resnext*)"
    round_to_group = "resnet"
    source = "torchvision"
    model_classes = (("torchvision.models", "ResNet"),)

    def classifier_layers(self, model):
        return [model.fc]

    def residual_branches(self, model):
        # BasicBlock: out = bn2(conv2(...)); Bottleneck: out = bn3(conv3(...)); then out += identity.
        return [
            [block.bn3 if hasattr(block, "bn3") else block.bn2]
            for stage in (model.layer1, model.layer2, model.layer3, model.layer4)
            for block in stage
        ]


@register_adapter
class TorchvisionVGGAdapter(CNNAdapter):
    name = "torchvision-vgg"
    description = "torchvision VGG (vgg11..vgg19, _bn)"
    round_to_group = "vgg"
    source = "torchvision"
    model_classes = (("torchvision.models", "VGG"),)

    def classifier_layers(self, model):
        return [model.classifier[-1]]
