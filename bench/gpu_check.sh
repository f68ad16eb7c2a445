#!/usr/bin/env bash
# On a machine with one CUDA GPU: set up, run the gpu-marked tests, then the benchmark on CUDA.
# One command, a few minutes:  bash bench/gpu_check.sh
# PYTHON=python3 uses an interpreter that already has the dependencies (a machine without internet).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
[ -n "${PYTHON:-}" ] || [ -x .venv/bin/python ] || bash setup.sh
"$python" -c "
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f'error: no CUDA device for torch {torch.__version__}; this check is for a machine with a GPU')
print(torch.__version__, torch.cuda.get_device_name(0))"
tests=0
"$python" -m pytest -m gpu -q -rA tests/ || tests=$?  # the benchmark runs either way
"$python" bench/bench.py --device cuda --repeats "${REPEATS:-3}"
exit "$tests"
