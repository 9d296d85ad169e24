"""The layers hold at run time: loading a level or a family imports no part of the engine, the trainer or the data
stack (``lint-imports`` checks the import graph statically in CI; this checks what a fresh process really loads).

One exception is transformers' own: its ``modeling_utils`` (``PreTrainedModel``) imports accelerate through
``transformers.integrations.accelerate`` whenever accelerate is installed, so stock transformers loading imports it
too. The checks compare with that baseline: nothing beyond what ``from transformers import PreTrainedModel`` loads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from elastoformer_hf.nesting import build_family, write_synthetic_run
from elastoformer_hf.run_folder import read_level_info

#: what loading must never pull in: the pruning engine, the training loop and its launcher, the data stack
HEAVY = ("torch_pruning", "transformers.trainer", "accelerate", "datasets")


@pytest.fixture(scope="module")
def family_run(tmp_path_factory, tv_resnet_family):
    """A torchvision ResNet run (its pruned levels are elastoformer-form) and its family artifact."""
    run = write_synthetic_run(tv_resnet_family.lm, tv_resnet_family.plan, tmp_path_factory.mktemp("layers") / "run")
    build_family(run).save_pretrained(run / "family")
    return run


def _imported_in_fresh_process(code: str) -> dict:
    script = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        heavy = {HEAVY!r}
        print(json.dumps({{name: any(m == name or m.startswith(name + ".") for m in sys.modules) for name in heavy}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def stock() -> dict:
    """What stock transformers model code imports by itself (accelerate, when it is installed)."""
    found = _imported_in_fresh_process("from transformers import PreTrainedModel")
    assert not found["torch_pruning"] and not found["transformers.trainer"] and not found["datasets"]
    return found


def test_importing_the_package_imports_nothing_heavy(stock):
    assert _imported_in_fresh_process("import elastoformer_hf") == stock


def test_loading_a_family_and_a_level_imports_nothing_heavy(family_run, stock):
    level = family_run / "dn1"
    assert read_level_info(level)["checkpoint_format"] == "elastoformer"  # the form that needs our modeling code
    found = _imported_in_fresh_process(f"""
        import torch
        from transformers import AutoModelForImageClassification

        from elastoformer_hf import ElasticFamily, load_descendant

        family = ElasticFamily.from_pretrained({str(family_run / "family")!r})
        family.set_level(1)
        x = torch.randn(1, 3, 32, 32)
        family(x)
        family.measure_latency(repeats=1, warmup=0)
        load_descendant({str(level)!r})(x)
        AutoModelForImageClassification.from_pretrained({str(level)!r})(x)
    """)
    assert found == stock, found


def test_the_probe_can_fail(family_run):
    """The check above can see a heavy import: building the family replays the plan through torch-pruning."""
    found = _imported_in_fresh_process(f"""
        from elastoformer_hf import build_family
        build_family({str(family_run)!r}, verify=False)
    """)
    assert found["torch_pruning"]
