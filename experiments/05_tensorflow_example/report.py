"""Study 5: the notes' TensorFlow example, run in PyTorch; the report is made from its output."""

import sys
import json
import runpy
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/common.py

from common import output_folder, table, write_report

HERE = Path(__file__).resolve().parent
OUT = output_folder(HERE)


def main() -> None:
    runpy.run_path(str(HERE / "example.py"))
    result = json.loads((OUT / "result.json").read_text())
    code = (HERE / "example.py").read_text().split('"""', 2)[2].split("print(")[0].strip()
    write_report(
        OUT,
        "The notes' TensorFlow example in PyTorch",
        "bash experiments/run_study.sh 05_tensorflow_example",
        [
            "The notes build `loss = (var1 - var2) ** 2` from two TensorFlow constants and need a session and an "
            "initializer to print 100.0. In PyTorch the value exists as soon as the line runs, and autograd gives the "
            "gradients:",
            "```python\n" + code + "\n```",
            table(["quantity", "value", "by hand"], [
                ["loss = (var1 − var2)²", result["loss"], "(20 − 30)² = 100"],
                ["∂loss/∂var1", result["grad_var1"], "2 (var1 − var2) = −20"],
                ["∂loss/∂var2", result["grad_var2"], "−2 (var1 − var2) = 20"],
            ]),
        ],
    )


if __name__ == "__main__":
    main()
