#!/usr/bin/env bash
# On a machine with one CUDA GPU: set up, run the gpu-marked tests, then the benchmark on CUDA.
# One command, a few minutes:  bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash setup.sh
python=.venv/bin/python
"$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
"$python" -m pytest -m gpu -q -rA tests/test_accelerators.py
"$python" bench/bench.py --device cuda --repeats 3
