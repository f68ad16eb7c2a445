"""Study 6: the notes' equations by hand, checked against autograd and the framework's mlp."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/common.py

from common import output_folder, table, write_report

HERE = Path(__file__).resolve().parent
OUT = output_folder(HERE)
sys.path.insert(0, str(HERE))

from equations import compare  # noqa: E402


def main() -> None:
    results = compare()
    source = (HERE / "equations.py").read_text()
    body = source[source.index("def forward"):source.index("def compare")].strip()
    write_report(
        OUT,
        "From the equations",
        "bash experiments/run_study.sh 06_from_the_equations",
        [
            "The notes' equations (1)–(6) for the 2-layer network — forward pass, prediction, cost J — and their "
            "backward pass, written by hand with float64 tensors on the planar flower (n_h = 4), then compared with "
            "autograd on the same graph and with the framework's `mlp` holding the same weights. "
            "`tests/test_equations.py` keeps the differences below 1e-10.",
            "```python\n" + body + "\n```",
            table(["check", "value"], [[k, f"{v:.3e}" if isinstance(v, float) else v] for k, v in results.items()]),
        ],
    )


if __name__ == "__main__":
    main()
