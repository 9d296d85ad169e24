"""Stochastic depth by forward hooks (elastoformer_hf.training.drop_path) on every residual family.

Tiny random-init models with every dropout at 0, so that the only randomness in train mode is drop path.
"""

from __future__ import annotations

import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from elastoformer_hf.adapters import get_adapter  # noqa: E402
from elastoformer_hf.errors import ElastoformerError  # noqa: E402
from elastoformer_hf.training.drop_path import StochasticDepth, apply_stochastic_depth, linear_rates  # noqa: E402

NUM_LABELS = 5
HF_VIT = dict(
    hidden_size=32,
    num_hidden_layers=3,
    num_attention_heads=2,
    intermediate_size=64,
    image_size=32,
    patch_size=8,
    num_labels=NUM_LABELS,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)


def _hf(cls_name: str, config_name: str) -> nn.Module:
    import transformers

    return getattr(transformers, cls_name)(getattr(transformers, config_name)(**HF_VIT))


def _timm(name: str, **kwargs) -> nn.Module:
    import timm

    return timm.create_model(name, pretrained=False, num_classes=NUM_LABELS, **kwargs)


def _torchvision(name: str) -> nn.Module:
    import torchvision

    return getattr(torchvision.models, name)(weights=None, num_classes=NUM_LABELS)


TIMM_VIT = dict(img_size=32, patch_size=8, depth=2)
#: key -> (builder, number of residual blocks)
MODELS = {
    "hf_vit": (lambda: _hf("ViTForImageClassification", "ViTConfig"), 3),
    "hf_deit": (lambda: _hf("DeiTForImageClassification", "DeiTConfig"), 3),
    "hf_deit_teacher": (lambda: _hf("DeiTForImageClassificationWithTeacher", "DeiTConfig"), 3),
    "timm_vit": (lambda: _timm("vit_tiny_patch16_224", **TIMM_VIT), 2),
    "timm_deit_distilled": (lambda: _timm("deit_tiny_distilled_patch16_224", **TIMM_VIT), 2),
    # zero_init_last=False: timm zero-initialises the last BN of every block (all branches would be 0)
    "timm_resnet18": (lambda: _timm("resnet18", zero_init_last=False), 8),
    "timm_seresnet18": (lambda: _timm("seresnet18", zero_init_last=False), 8),
    "timm_resnet50": (lambda: _timm("resnet50", zero_init_last=False), 16),
    "tv_resnet18": (lambda: _torchvision("resnet18"), 8),
    "tv_resnet50": (lambda: _torchvision("resnet50"), 16),
}
#: the cheap ones for the train-mode checks (one per adapter and block type is enough)
CORE = ["hf_vit", "hf_deit", "timm_vit", "timm_resnet18", "tv_resnet18"]


def build(key: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return _perturb(MODELS[key][0]())


@torch.no_grad()
def _perturb(model: nn.Module) -> nn.Module:
    """Random biases and norm parameters/statistics: stock inits zero them, and then a module fed zeros
    outputs zeros, which would let a hook on the wrong module pass for one on the branch output."""
    for module in model.modules():
        if isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            module.weight.uniform_(0.5, 1.5)
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.LayerNorm, nn.BatchNorm2d)) and module.bias is not None:
            module.bias.normal_(0, 0.1)
    return model


def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return get_adapter(model).forward_logits(model, x)


def batch(n: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


# -- the adapters' residual branches are the branches ------------------------------------------------------
class _Shortcut(nn.Module):
    """A ResNet block with its residual branch removed: act(shortcut(x))."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.downsample = block.downsample

    def forward(self, x):
        return torch.relu(self.downsample(x) if self.downsample is not None else x)


def _without_blocks(model: nn.Module) -> nn.Module:
    """The model with every residual branch cut out (each block is its skip connection)."""
    model = copy.deepcopy(model)
    if hasattr(model, "vit") or hasattr(model, "deit"):
        backbone = model.vit if hasattr(model, "vit") else model.deit
        backbone.layers = nn.ModuleList()
    elif hasattr(model, "blocks"):
        model.blocks = nn.Sequential()
    else:
        for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
            for i in range(len(stage)):
                stage[i] = _Shortcut(stage[i])
    return model


def _zero(module, args, output):
    if isinstance(output, tuple):
        return (torch.zeros_like(output[0]), *output[1:])
    return torch.zeros_like(output)


@pytest.mark.parametrize("key", list(MODELS))
def test_zeroing_the_residual_branches_leaves_the_skip_connections(key):
    model = build(key).eval()
    branches = get_adapter(model).residual_branches(model)
    assert len(branches) == MODELS[key][1]
    assert all(branches) and all(isinstance(m, nn.Module) for block in branches for m in block)
    x = batch()
    with torch.no_grad():
        full = logits(model, x)
        handles = [m.register_forward_hook(_zero) for block in branches for m in block]
        try:
            zeroed = logits(model, x)
        finally:
            for handle in handles:
                handle.remove()
        expected = logits(_without_blocks(model), x)
    assert not torch.allclose(full, expected, atol=1e-4)  # the blocks do something...
    torch.testing.assert_close(zeroed, expected, rtol=1e-5, atol=1e-5)  # ...and the hooks cut exactly them


def test_timm_resnet_with_se_hooks_the_se_module():
    model = build("timm_seresnet18")
    branches = get_adapter(model).residual_branches(model)
    assert [block[0] for block in branches] == [b.se for s in (model.layer1, model.layer2, model.layer3,
                                                                model.layer4) for b in s]


# -- applying --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", CORE)
def test_state_dict_and_eval_outputs_are_unchanged(key):
    model = build(key).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = batch()
    with torch.no_grad():
        reference = logits(model, x)
    sd = apply_stochastic_depth(model, 0.5)
    assert sd.num_hooks > 0
    after = model.state_dict()
    assert list(after) == list(before)
    for name, value in before.items():
        assert torch.equal(after[name], value), name
    with torch.no_grad():
        assert torch.equal(logits(model, x), reference)
    sd.remove()


@pytest.mark.parametrize("key", CORE)
def test_train_mode_is_random_only_with_a_positive_rate(key):
    x = batch()
    model = build(key).train()
    with torch.no_grad():
        torch.testing.assert_close(logits(model, x), logits(model, x))  # no other randomness
    with apply_stochastic_depth(model, 0.0) as sd:
        assert sd.num_hooks == 0 and sd.rates == []
        with torch.no_grad():
            torch.testing.assert_close(logits(model, x), logits(model, x))
    with apply_stochastic_depth(model, 0.5) as sd:
        with torch.no_grad():
            torch.manual_seed(0)
            first = logits(model, x)
            second = logits(model, x)
            torch.manual_seed(0)
            again = logits(model, x)
        assert not torch.allclose(first, second)
        torch.testing.assert_close(first, again)  # the randomness is torch's RNG, seedable
    assert sd.num_hooks == 0  # the context manager removed the hooks
    with torch.no_grad():
        torch.testing.assert_close(logits(model, x), logits(model, x))


@pytest.mark.parametrize("key", CORE)
def test_it_changes_training(key):
    x = batch()
    labels = torch.arange(len(x)) % NUM_LABELS
    base = build(key)

    def one_step(rate: float) -> dict[str, torch.Tensor]:
        model = copy.deepcopy(base).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        with apply_stochastic_depth(model, rate):
            torch.manual_seed(123)
            loss = nn.functional.cross_entropy(logits(model, x), labels)
            loss.backward()
            optimizer.step()
        return {k: v.detach().clone() for k, v in model.named_parameters()}

    plain, plain_again, dropped = one_step(0.0), one_step(0.0), one_step(0.5)
    assert all(torch.equal(plain[k], plain_again[k]) for k in plain)  # deterministic without drop path
    assert any(not torch.allclose(plain[k], dropped[k]) for k in plain)


@pytest.mark.parametrize("key", CORE)
def test_remove_restores_deterministic_outputs(key):
    x = batch()
    model = build(key).train()
    sd = apply_stochastic_depth(model, 0.5)
    with torch.no_grad():
        assert not torch.allclose(logits(model, x), logits(model, x))
    sd.remove()
    sd.remove()  # idempotent
    assert sd.num_hooks == 0
    assert all(not m._forward_hooks for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(logits(model, x), logits(model, x))


@pytest.mark.parametrize("key", CORE)
def test_rates_are_linear_in_depth(key):
    model = build(key)
    with apply_stochastic_depth(model, 0.3) as sd:
        assert isinstance(sd, StochasticDepth)
        rates = sd.rates
        assert len(rates) == MODELS[key][1]
        assert rates[0] == 0.0 and rates[-1] == 0.3
        torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, 0.3, len(rates)))
        # the first block (rate 0) is not hooked; every other block has all its branches hooked
        branches = get_adapter(model).residual_branches(model)
        assert sd.num_hooks == sum(len(block) for block in branches[1:])
        assert not any(m._forward_hooks for m in branches[0])
        hooked = [hook.drop_prob for block in branches[1:] for m in block for hook in m._forward_hooks.values()]
        assert hooked == [r for r, block in zip(rates[1:], branches[1:]) for _ in block]


def test_linear_rates_edges():
    assert linear_rates(0.1, 1) == [0.0]
    for n in (2, 3, 7, 12, 24):
        rates = linear_rates(0.1, n)
        assert rates[0] == 0.0 and rates[-1] == 0.1 and rates == sorted(rates)


# -- refusals --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["timm", "torchvision"])
def test_vgg_has_no_residual_blocks(source):
    torch.manual_seed(0)
    model = _timm("vgg11", mlp_ratio=0.015625) if source == "timm" else _torchvision("vgg11")
    with pytest.raises(ElastoformerError, match="needs residual blocks.*supported: ") as error:
        apply_stochastic_depth(model, 0.1)
    message = str(error.value)
    assert "VGG" in message.split("supported:")[0]  # names the model...
    for family in ("transformers ViT", "timm VisionTransformer", "timm ResNet", "torchvision ResNet"):
        assert family in message  # ...and the families that have residual blocks
    assert "VGG" not in message.split("supported:")[1]
    with pytest.raises(ElastoformerError, match="residual blocks"):
        get_adapter(model).residual_branches(model)
    sd = apply_stochastic_depth(model, 0.0)  # rate 0 is "off": fine for any model
    assert sd.num_hooks == 0
    assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("rate", [1.0, 1.5, -0.1, float("nan"), True, "0.1"])
def test_rate_outside_zero_one_is_refused(rate):
    model = build("tv_resnet18")
    with pytest.raises(ElastoformerError, match=r"\[0, 1\)"):
        apply_stochastic_depth(model, rate)
    assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "resnet18"])
def test_a_model_with_its_own_drop_path_is_refused(name):
    torch.manual_seed(0)
    kwargs = TIMM_VIT if name.startswith("vit") else {}
    model = _timm(name, drop_path_rate=0.1, **kwargs)
    with pytest.raises(ElastoformerError, match="already has stochastic depth"):
        apply_stochastic_depth(model, 0.1)
    assert all(not m._forward_hooks for m in model.modules())


# -- copies and pruned models ----------------------------------------------------------------------------
def test_deep_copies_carry_inert_hooks():
    x = batch()
    model = build("hf_vit").train()
    with apply_stochastic_depth(model, 0.5):
        clone = copy.deepcopy(model).train()
        with torch.no_grad():
            assert not torch.allclose(logits(model, x), logits(model, x))
            torch.testing.assert_close(logits(clone, x), logits(clone, x))


@pytest.mark.parametrize("key", ["hf_vit", "timm_vit", "timm_resnet18", "tv_resnet18"])
def test_pruned_level(key):
    from elastoformer_hf.pruning.config import PruningConfig
    from elastoformer_hf.pruning.planner import plan_levels
    from elastoformer_hf.pruning.replay import extract_level

    model = build(key).eval()
    plan = plan_levels(
        model, PruningConfig(pruning_type="l1", pruning_ratio=0.5, pruning_steps=2, round_to=1), image_size=32
    )
    core = extract_level(model, plan, 1)
    assert sum(p.numel() for p in core.parameters()) < sum(p.numel() for p in model.parameters())
    keys = list(core.state_dict())
    x = batch()
    with torch.no_grad():
        reference = logits(core, x)
    with apply_stochastic_depth(core, 0.5) as sd:
        assert sd.rates[-1] == 0.5 and len(sd.rates) == MODELS[key][1]
        assert list(core.state_dict()) == keys
        with torch.no_grad():
            torch.testing.assert_close(logits(core.eval(), x), reference)
            core.train()
            first, second = logits(core, x), logits(core, x)
        assert first.shape == (len(x), NUM_LABELS)
        assert not torch.allclose(first, second)
