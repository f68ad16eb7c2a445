"""Count the instructions the framework and the plain loop of bench.py execute for its jobs, with valgrind's
callgrind: a reading that does not move with the machine's load, unlike CPU seconds.

    .venv/bin/python bench/instructions.py [--jobs planar digits cnn]    # runs itself under valgrind, ~15 min
    .venv/bin/python bench/instructions.py --parts [--jobs planar digits]  # what each logger output adds to a run, ~6 min

Needs valgrind (with its headers) and a C compiler. Only the runs' timed parts are counted (what bench.py
times), after one uncounted run of each kind has done the first-time work (imports, caches). A run's count
is a fixed part plus a part per step, so two lengths of a job give both, and the count at bench.py's length
follows without running it in full (50-100 times slower under valgrind). Instructions are not seconds: a
cache miss or a wider vector instruction counts as one.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_MARKS_C = """
#include <valgrind/callgrind.h>
void count_from_here(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void count_to_here(void) { CALLGRIND_STOP_INSTRUMENTATION; CALLGRIND_DUMP_STATS; }
"""

# bench.py's jobs at two shorter lengths each (the length's key, two values, bench.py's value), chosen so that
# checks and pictures fall as at full length: the planar job pictures every 20 checks of 100 steps and leaves
# the last check's to the end (2,000 steps picture nothing on the way, 4,000 once, 10,000 four times, as the
# line through them says); the digits jobs check every 5 epochs.
LENGTHS = {
    "planar": ("trainer.max_steps", 2_000, 4_000, 10_000),
    "digits": ("trainer.max_epochs", 5, 25, 50),
    "cnn": ("trainer.max_epochs", 5, 10, 40),
}


# Under valgrind a run lasts 50-100 times longer, and what the loop does by the clock would happen where a
# real run of these jobs (each under 10 s) never gets to: a checkpoint every 10 s, a progress line every
# 30 s. Pushed out of reach here; the loop still asks the clock as often.
AS_IN_REAL_TIME = ["trainer.log_every_seconds=1000000000.0", "trainer.checkpoint_every_n_minutes=1000000000.0",
                   "trainer.checkpoint_every_n_epochs=1000000"]


# --parts: one short run of a job (a run's fixed part: step 0's and the end's pictures, histograms and graph, the
# HParams; one check) with the loggers' outputs switched off one at a time, against the plain loop.
SHORT = {"planar": ("trainer.max_steps", 100), "digits": ("trainer.max_epochs", 1), "cnn": ("trainer.max_epochs", 1)}
PARTS = {
    "logger=none": ["logger=none"],
    "csv only": ["logger=csv"],
    "default (tensorboard, csv)": [],
    "  without the graph": ["logger.tensorboard.graph=false"],
    "  without histograms": ["logger.tensorboard.histogram_every_n_checks=0"],
    "  without pictures": ["logger.tensorboard.figures_every_n_checks=0"],
    "  without all three": ["logger.tensorboard.graph=false", "logger.tensorboard.histogram_every_n_checks=0",
                            "logger.tensorboard.figures_every_n_checks=0"],
}


class Counter:
    """Stands in for bench.py's ``clock()``: called at a run's start (returns 0) and at its end (returns the
    instructions executed in between, read from the dump callgrind writes there)."""

    def __init__(self, marks: ctypes.CDLL, out_dir: Path) -> None:
        self.marks, self.out_dir, self.counting, self.dumps = marks, out_dir, False, 0

    def __call__(self) -> float:
        if not self.counting:
            self.counting = True
            self.marks.count_from_here()
            return 0.0
        self.marks.count_to_here()
        self.counting, self.dumps = False, self.dumps + 1
        dump = self.out_dir / f"callgrind.{os.getpid()}.{self.dumps}"
        totals = next(line for line in dump.read_text().splitlines() if line.startswith("totals:"))
        return float(totals.split()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", nargs="+", default=["planar", "digits"], choices=list(LENGTHS))  # cnn: over half an hour
    parser.add_argument("--parts", action="store_true", help="what each logger output adds to one short run")
    parser.add_argument("--out", help=argparse.SUPPRESS)  # set when this script runs itself under valgrind
    options = parser.parse_args()
    if options.out is None:
        sys.exit(run_under_valgrind(sys.argv[1:]))

    spec = importlib.util.spec_from_file_location("bench", Path(__file__).with_name("bench.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    import torch

    torch.set_num_threads(1)
    out_dir = Path(options.out)
    counter = Counter(ctypes.CDLL(str(out_dir / "marks.so")), out_dir)
    jobs = dict(zip(LENGTHS, bench.JOBS.values()))
    if options.parts:
        return count_parts(bench, counter, {name: jobs[name] for name in options.jobs})
    print(f"{'job':8} {'length':>24} {'plain':>14} {'framework':>14} {'no logger':>14} {'ratio':>6} {'ratio, no logger':>17}"
          f" {'checked plain':>14} {'no logger/checked':>18}")
    for name in options.jobs:
        key, short, long, full = LENGTHS[name]
        overrides = [o for o in jobs[name] if not o.startswith(key + "=")]
        runs = {"plain": bench.run_plain, "framework": lambda o: bench.run_framework([*o, *AS_IN_REAL_TIME]),
                "no logger": lambda o: bench.run_framework([*o, *AS_IN_REAL_TIME, "logger=none"]),
                "checked plain": lambda o: bench.run_plain(o, checks=True)}
        bench.clock = lambda: 0.0  # a first run of each kind, not counted
        for run in runs.values():
            run([*overrides, f"{key}={short}"])
        bench.clock = counter
        counts = {length: {kind: run([*overrides, f"{key}={length}"])[0] for kind, run in runs.items()} for length in (short, long)}
        at_full = {kind: counts[short][kind] + (counts[long][kind] - counts[short][kind]) * (full - short) / (long - short) for kind in runs}
        setting = key.split(".")[1]
        rows = {f"{setting}={short}": counts[short], f"{setting}={long}": counts[long]}
        if full != long:
            rows[f"{full} (from the two)"] = at_full
        for label, row in rows.items():
            p, f, q, c = row["plain"], row["framework"], row["no logger"], row["checked plain"]
            print(f"{name:8} {label:>24} {p:14,.0f} {f:14,.0f} {q:14,.0f} {f / p:6.3f} {q / p:17.3f} {c:14,.0f} {q / c:18.3f}")
        fixed = {kind: counts[short][kind] - (counts[long][kind] - counts[short][kind]) * short / (long - short) for kind in runs}
        print(f"{name:8} {'fixed part (length 0)':>24} {fixed['plain']:14,.0f} {fixed['framework']:14,.0f} {fixed['no logger']:14,.0f}"
              f" {'':6} {'':17} {fixed['checked plain']:14,.0f}")


def count_parts(bench, counter: Counter, jobs: dict[str, list[str]]) -> None:
    print(f"{'job':8} {'run':>26} {'instructions':>14} {'over plain':>12} {'against default':>16}")
    for name, job in jobs.items():
        key, length = SHORT[name]
        overrides = [*(o for o in job if not o.startswith(key + "=")), f"{key}={length}", *AS_IN_REAL_TIME]
        runs = {"plain loop": bench.run_plain, **{part: lambda o, more=more: bench.run_framework([*o, *more]) for part, more in PARTS.items()}}
        counts = {}
        for part, run in runs.items():
            bench.clock = lambda: 0.0  # a first run of each kind, not counted
            run(overrides)
            bench.clock = counter
            counts[part] = run(overrides)[0]
        plain, default = counts["plain loop"], counts["default (tensorboard, csv)"]
        for part, count in counts.items():
            print(f"{name:8} {part:>26} {count:14,.0f} {count - plain:+12,.0f} {count - default:+16,.0f}")


def run_under_valgrind(args: list[str]) -> int:
    for tool in ("valgrind", "gcc"):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found; this bench counts instructions with valgrind's callgrind", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as out:
        source = Path(out, "marks.c")
        source.write_text(_MARKS_C)
        compiled = subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(Path(out, "marks.so")), str(source)], capture_output=True, text=True)
        if compiled.returncode != 0:
            print(f"error: cannot compile the counting marks (valgrind's headers missing?): {compiled.stderr.strip()}", file=sys.stderr)
            return 2
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}/callgrind.%p", "--log-file=/dev/null",
                   sys.executable, __file__, *args, "--out", out]
        # One hash seed: sets and dicts of strings iterate in one order, and runs of this script count alike.
        return subprocess.run(command, env={**os.environ, "PYTHONHASHSEED": "0"}).returncode


if __name__ == "__main__":
    main()
