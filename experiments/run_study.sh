#!/usr/bin/env bash
# Rerun one study and regenerate its report:  bash experiments/run_study.sh <study folder> [overrides...]
# The study's sweep lives in <study>/conf/experiment/<study>.yaml (hydra.sweeper.params); extra
# overrides (e.g. trainer.max_steps=50 for a quick try) are passed to every run.
set -euo pipefail
cd "$(dirname "$0")/.."
study=${1:?usage: bash experiments/run_study.sh <study folder> [overrides...]}
study=${study%/}
study=${study#experiments/}
shift
python=${PYTHON:-.venv/bin/python}
rm -rf "experiments/$study/runs"
if [ -d "experiments/$study/conf" ]; then
  "$python" -m src.train -m --config-dir "experiments/$study/conf" "experiment=$study" "$@"
fi
"$python" "experiments/$study/report.py"
