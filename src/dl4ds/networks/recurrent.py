"""Convolutional LSTM (Shi et al. 2015) over a time window of gridded fields."""

from __future__ import annotations

import torch
from torch import nn

from dl4ds.networks.blocks import conv3x3


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step: the four gates are a conv3x3 of [input, hidden state].

    (B, in_channels, h, w) and state ((B, hidden, h, w), (B, hidden, h, w)) -> new state.
    """

    def __init__(self, in_channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.gates = conv3x3(in_channels + hidden_channels, 4 * hidden_channels)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, cell = state
        input_gate, forget_gate, output_gate, candidate = self.gates(torch.cat([x, hidden], dim=1)).chunk(4, dim=1)
        cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(input_gate) * torch.tanh(candidate)
        hidden = torch.sigmoid(output_gate) * torch.tanh(cell)
        return hidden, cell


class ConvLSTM(nn.Module):
    """A bidirectional ConvLSTM layer: every frame sees the frames before and after it in the window.

    (B, T, in_channels, h, w) -> (B, T, 2 * hidden_channels, h, w), the
    forward and backward hidden states concatenated.
    """

    def __init__(self, in_channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.forward_cell = ConvLSTMCell(in_channels, hidden_channels)
        self.backward_cell = ConvLSTMCell(in_channels, hidden_channels)
        self.out_channels = 2 * hidden_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.unbind(1)
        forward_states = self._run(self.forward_cell, frames)
        backward_states = self._run(self.backward_cell, frames[::-1])[::-1]
        return torch.stack([torch.cat(pair, dim=1) for pair in zip(forward_states, backward_states)], dim=1)

    @staticmethod
    def _run(cell: ConvLSTMCell, frames: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        batch, _, height, width = frames[0].shape
        hidden = frames[0].new_zeros(batch, cell.hidden_channels, height, width)
        state = (hidden, hidden)
        outputs = []
        for frame in frames:
            state = cell(frame, state)
            outputs.append(state[0])
        return outputs
