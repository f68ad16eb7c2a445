#!/usr/bin/env bash
# Rerun one study and regenerate its report:  bash experiments/run_study.sh <study folder> [overrides...]
# The study's sweeps live in <study>/conf/experiment/*.yaml (hydra.sweeper.params), one multirun
# each; extra overrides (e.g. trainer.max_steps=50 for a quick try) are passed to every run.
set -euo pipefail
cd "$(dirname "$0")/.."
study=${1:?usage: bash experiments/run_study.sh <study folder> [overrides...]}
study=${study%/}
study=${study#experiments/}
shift
if [ ! -f "experiments/$study/report.py" ]; then
  studies=$(cd experiments && ls -d [0-9]*/ | tr -d / | tr '\n' ' ')
  echo "error: experiments/$study: no such study; studies: ${studies% }" >&2
  exit 2
fi
python=${PYTHON:-.venv/bin/python}
out=${STUDY_OUT:-experiments/$study}   # tests point this elsewhere, to leave the committed report alone
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/runs"
for sweep in "experiments/$study"/conf/experiment/*.yaml; do
  [ -e "$sweep" ] || continue
  "$python" -m src.train -m --config-dir "experiments/$study/conf" "experiment=$(basename "$sweep" .yaml)" \
    "paths.log_dir=$out/runs" "$@"
done
"$python" "experiments/$study/report.py" "$out"
