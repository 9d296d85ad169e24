#!/usr/bin/env bash
# The floor check (CI runs it after the main tests): a second virtual environment, .venv-floors, with
# elastoformer-hf and every dependency at the floor pyproject.toml declares (constraints-min.txt: the floors and the
# rest of the environment they were measured in), then the tests that exercise those floors: loading levels with
# stock transformers/timm (test_descendant), planning with torch-pruning (test_planner), the family artifact
# (test_family) and ElasticTrainer with accelerate, datasets and evaluate (test_trainer). Any failure fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv-floors/bin/python ]; then
  "$PYTHON" -m venv .venv-floors
fi
.venv-floors/bin/python -m pip install --quiet --upgrade pip >/dev/null
.venv-floors/bin/python -m pip install --quiet -c constraints-min.txt -e . pytest scikit-learn

# the environment is the one declared: every pin of constraints-min.txt that is installed has its exact version
.venv-floors/bin/python - <<'PY'
import re
import sys
from importlib.metadata import PackageNotFoundError, version

wrong = []
for line in open("constraints-min.txt"):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, pinned = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line).groups()
    try:
        installed = version(name)
    except PackageNotFoundError:
        continue
    if installed != pinned:
        wrong.append(f"{name} {installed} (constraints-min.txt: {pinned})")
if wrong:
    sys.exit("the floor environment differs from constraints-min.txt: " + ", ".join(wrong))
PY

export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
.venv-floors/bin/python -m pytest -q -p no:cacheprovider \
  tests/test_descendant.py tests/test_planner.py tests/test_family.py tests/test_trainer.py
echo "the floors of pyproject.toml pass (constraints-min.txt)"
