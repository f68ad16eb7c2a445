"""Run by torchrun (2 processes, gloo): a dropout layer and a 2-layer LSTM with dropout between its layers, as
separate_dropout_masks makes them, on every rank from the same seed, run twice in training mode and once in eval
mode on rows of ones; each rank writes their outputs and its generator's next draw as JSON into the folder it is
given."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch import nn  # noqa: E402

from src.models.rank_dropout import separate_dropout_masks  # noqa: E402

dist.init_process_group("gloo")
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(16, 16), nn.Dropout(0.5))
lstm = nn.LSTM(16, 8, num_layers=2, dropout=0.5, batch_first=True)
separate_dropout_masks(model)
separate_dropout_masks(lstm)
rows, sequences = torch.ones(6, 16), torch.ones(6, 5, 16)
dropout = model[1]
printed = {"kind": type(dropout).__name__, "first": dropout(rows).tolist(), "second": dropout(rows).tolist()}
printed |= {"lstm_first": lstm(sequences)[0].tolist(), "lstm_second": lstm(sequences)[0].tolist(), "next_draw": torch.rand(3).tolist()}
printed |= {"eval": dropout.eval()(rows).tolist(), "lstm_eval": lstm.eval()(sequences)[0].tolist()}
(Path(sys.argv[1]) / f"rank{dist.get_rank()}.json").write_text(json.dumps(printed))
dist.destroy_process_group()
