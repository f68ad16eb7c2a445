"""The notes' TensorFlow example in PyTorch: var1 = 20, var2 = 30, loss = (var1 - var2)² = 100.

    python experiments/05_tensorflow_example/example.py     (prints, and writes result.json)
"""

import json
import sys
from pathlib import Path

import torch

var1 = torch.tensor(20.0, requires_grad=True)
var2 = torch.tensor(30.0, requires_grad=True)
loss = (var1 - var2) ** 2  # no session, no initializer: PyTorch computes it as the line runs
loss.backward()  # d loss / d var1 = 2 (var1 - var2) = -20;  d loss / d var2 = -2 (var1 - var2) = 20

print(f"loss = {loss.item()}")
print(f"d loss / d var1 = {var1.grad.item()}")
print(f"d loss / d var2 = {var2.grad.item()}")
result = {"loss": loss.item(), "grad_var1": var1.grad.item(), "grad_var2": var2.grad.item()}
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
(out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
