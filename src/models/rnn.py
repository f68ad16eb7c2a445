"""A recurrent network over (N, T, F) sequences; the output is read from the last state. Pictures
(N, C, H, W) are read row by row, as sequential MNIST is: H steps of the C·W values of a row.

Every data set here has sequences of one length per data set, so batches need no packing or
masking; a data set of ragged sequences would pad them and pass lengths to
``nn.utils.rnn.pack_padded_sequence``.
"""

from __future__ import annotations

from torch import Tensor, nn

from src.errors import ConfigError, check, count, number, one_of, positive_int

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RNN(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_size: int,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        nonlinearity: str = "tanh",
    ) -> None:
        super().__init__()
        check("model.cell", cell, one_of(*CELLS))
        if len(input_shape) not in (2, 3):
            raise ConfigError(
                "model", "rnn", f"needs sequences shaped T×F or pictures shaped C×H×W (read row by row); these inputs are "
                f"shaped {tuple(input_shape)} (for the digits: data.layout=sequence or image)"
            )
        features = input_shape[-1] * (input_shape[0] if len(input_shape) == 3 else 1)
        check("model.hidden_size", hidden_size, positive_int)
        check("model.num_layers", num_layers, count(1, 64))
        check("model.dropout", dropout, number(0, 1, high_open=True))
        extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        self.rnn = CELLS[cell](
            features, hidden_size, num_layers=num_layers, batch_first=True,
            bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0, **extra,
        )
        self.directions = 2 if bidirectional else 1
        self.head = nn.Linear(hidden_size * self.directions, output_size)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:  # [N, C, H, W] → [N, H, C·W]: step t holds every channel's row t
            x = x.transpose(1, 2).flatten(2)
        _, state = self.rnn(x)
        hidden = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)
        last_layer = hidden[-self.directions :]  # (directions, N, H): forward end, backward start
        return self.head(last_layer.transpose(0, 1).flatten(1))
