"""The localized layer: weights and biases of its own at every grid point of the training domain."""

from __future__ import annotations

import torch
from torch import nn


class LocalizedLinear(nn.Module):
    """A 1x1 convolution whose weights and biases differ at every fine grid point (DL4DS's localized block).

    It learns what is specific to each place (local biases, the local
    response to each feature) and is added to the network's output. Its
    parameters cover the full training grid and are indexed by *absolute*
    position: a patch at fine offset (row, col) uses the parameters of the
    cells it covers, so the layer trained on random patches applies to the
    full domain, or to any window of it.

    The parameters start at zero, so the layer starts as no correction.

    Args:
        in_channels: feature channels at each grid point.
        out_channels: output channels.
        grid_shape: (H, W) of the full fine training grid.
    """

    def __init__(self, in_channels: int, out_channels: int, grid_shape: tuple[int, int]) -> None:
        super().__init__()
        self.grid_shape = (int(grid_shape[0]), int(grid_shape[1]))
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, *self.grid_shape))
        self.bias = nn.Parameter(torch.zeros(out_channels, *self.grid_shape))

    def forward(self, x: torch.Tensor, offset: torch.Tensor | None) -> torch.Tensor:
        """Apply the layer to (B, in, h, w) features whose first cell is at ``offset``.

        Args:
            x: (B, in_channels, h, w) features on the fine grid.
            offset: (B, 2) integer row and column of each sample's first cell
                in the full grid, or None for samples covering the full grid.

        Returns:
            (B, out_channels, h, w).

        Raises:
            ValueError: a sample reaches outside the training grid.
        """
        _batch, _, height, width = x.shape
        if offset is None:
            if (height, width) != self.grid_shape:
                raise ValueError(
                    f"the localized layer covers the training grid {self.grid_shape}; a {height} x {width} "
                    "input that is not the full grid needs the offset of its first cell"
                )
            return torch.einsum("oihw,bihw->bohw", self.weight, x) + self.bias
        offset = offset.to(device=x.device, dtype=torch.long)
        rows = offset[:, :1] + torch.arange(height, device=x.device)  # (B, h)
        cols = offset[:, 1:] + torch.arange(width, device=x.device)  # (B, w)
        if rows.min() < 0 or cols.min() < 0 or rows.max() >= self.grid_shape[0] or cols.max() >= self.grid_shape[1]:
            raise ValueError(
                f"the localized layer covers the training grid {self.grid_shape} only; a {height} x {width} "
                f"window at offsets {offset.tolist()} reaches outside it"
            )
        index_rows, index_cols = rows[:, :, None], cols[:, None, :]  # (B, h, 1), (B, 1, w)
        weight = self.weight[:, :, index_rows, index_cols]  # (out, in, B, h, w)
        bias = self.bias[:, index_rows, index_cols]  # (out, B, h, w)
        return torch.einsum("oibhw,bihw->bohw", weight, x) + bias.transpose(0, 1)

    def extra_repr(self) -> str:
        return f"in_channels={self.weight.shape[1]}, out_channels={self.weight.shape[0]}, grid_shape={self.grid_shape}"
