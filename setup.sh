#!/usr/bin/env bash
# Set up a virtual environment in .venv with everything the framework and its tests need.
# torch 2.13.0 first: it is the CPU wheel on this kind of machine; an open range would pull a CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev,sweeps]"
