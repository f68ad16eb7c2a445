"""Run by torchrun (2 processes, gloo): a batch norm in training mode, as synchronize_batch_norms makes it, run
without gradients (as a GAN's generator runs in the discriminator's turn) on each rank's half of 10 rows; each
rank writes its output and running statistics as JSON into the folder it is given, for the test to set beside one
process's."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch import nn  # noqa: E402

from src.models.synced_batch_norm import synchronize_batch_norms  # noqa: E402

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
rows = torch.randn(10, 3, generator=torch.Generator().manual_seed(0)) * 3 + 1
model = nn.Sequential(nn.BatchNorm1d(3))
synchronize_batch_norms(model)
with torch.no_grad():
    out = model(rows[rank::world])
norm = model[0]
printed = {"out": out.tolist(), "running_mean": norm.running_mean.tolist(), "running_var": norm.running_var.tolist()}
(Path(sys.argv[1]) / f"rank{rank}.json").write_text(json.dumps(printed))
dist.destroy_process_group()
