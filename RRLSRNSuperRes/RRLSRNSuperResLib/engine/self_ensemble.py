"""Self-ensemble: the network on flipped and transposed views of each slice, averaged.

A trained network is only nearly equivariant to flips and transposes; averaging its output
over several such views of the same slice cancels part of its error (Lim et al., EDSR,
2017: "geometric self-ensemble"). Each view costs one more forward pass, so the default
takes two views: the gain is measured in docs/results.md, the time by ``rrlsrn bench``.
"""

from __future__ import annotations

from typing import Callable

import torch

# (flip rows, flip columns, transpose), in the order views are added.
_VIEWS = ((False, False, False), (False, True, False), (True, False, False), (True, True, False),
          (False, False, True), (False, True, True), (True, False, True), (True, True, True))
VIEW_COUNTS = (1, 2, 4, 8)
DEFAULT_VIEWS = 2


def forward_views(forward: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, views: int) -> torch.Tensor:
    """Mean over the first ``views`` dihedral views of ``forward`` (N x C x h x w -> N x C x 2h x 2w, float32).

    Each view is undone on the output, so every view's pixels land where the plain pass puts
    them: output pixels ``2n`` and ``2n + 1`` stay on input pixel ``n`` under a flip.
    """
    if views not in VIEW_COUNTS:
        raise ValueError(f"self-ensemble views must be one of {VIEW_COUNTS}, not {views}")
    total = None
    for flip_rows, flip_columns, transpose in _VIEWS[:views]:
        flipped = [dim for dim, flip in ((-2, flip_rows), (-1, flip_columns)) if flip]
        view = torch.flip(batch, flipped) if flipped else batch
        if transpose:
            view = view.transpose(-2, -1)
        output = forward(view.contiguous(memory_format=torch.channels_last)).float()
        if transpose:
            output = output.transpose(-2, -1)
        if flipped:
            output = torch.flip(output, flipped)
        total = output if total is None else total + output
    return total / views
