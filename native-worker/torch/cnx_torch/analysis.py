"""The paper's V1-vs-V2 feature analysis on the PyTorch engine, with the ONNX engine's definitions
(native-worker/analysis/features.ts), so `cnx analyze --engine torch` writes the same numbers:

  cosine distance of a block, per image: (1 / C^2) sum_ij (1 - cos(X_i, X_j)) / 2 over its channels X_i
      (flattened over space), computed as (1 - ||sum_i X_i / ||X_i||||^2 / C^2) / 2
  dead channel: max |activation| < 1e-6 over the batch
  constant channel: spatial std (averaged over the batch) < 1e-3 x the layer's mean spatial std
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

from .models import ConvNeXt

Tensor = torch.Tensor


def cosine_distance(x: Tensor) -> Tensor:
    """(N, C, H, W) -> (N,) average pairwise cosine distance between channels."""
    n, c = x.shape[0], x.shape[1]
    flat = x.reshape(n, c, -1)
    unit = flat / (flat.norm(dim=2, keepdim=True) + 1e-12)
    total = unit.sum(dim=1)
    return 0.5 * (1.0 - total.pow(2).sum(dim=1) / float(c * c))


def channel_stats(x: Tensor) -> Dict[str, int]:
    """Dead and constant channels of one batch's (N, C, H, W) block output."""
    flat = x.reshape(x.shape[0], x.shape[1], -1).double()
    spatial_std = flat.std(dim=2, unbiased=False).mean(dim=0)
    max_abs = flat.abs().amax(dim=(0, 2))
    layer_std = spatial_std.mean()
    dead = max_abs < 1e-6
    constant = ~dead & (spatial_std < 1e-3 * layer_std)
    return {"dead": int(dead.sum()), "constant": int(constant.sum())}


@dataclass
class BlockStats:
    name: str
    distance: List[float] = field(default_factory=list)  # per image
    dead: List[int] = field(default_factory=list)  # per batch
    constant: List[int] = field(default_factory=list)  # per batch


@torch.no_grad()
def block_features(model: ConvNeXt, images: Tensor, batch: int, grid_block: Optional[str],
                   grid_image: int) -> "tuple[List[BlockStats], Optional[Tensor]]":
    """Per block: distances per image and channel counts per batch; the grid block's map of one image."""
    model.eval()
    stats: Dict[str, BlockStats] = {}
    grid: Optional[Tensor] = None
    for start in range(0, images.shape[0], batch):
        chunk = images[start:start + batch]
        taps = model.feature_taps(chunk)
        for name, y in taps.items():
            if ".blocks." not in name:
                continue
            s = stats.setdefault(name, BlockStats(name))
            s.distance += cosine_distance(y.float()).tolist()
            counts = channel_stats(y)
            s.dead.append(counts["dead"])
            s.constant.append(counts["constant"])
            if name == grid_block and start <= grid_image < start + chunk.shape[0]:
                grid = y[grid_image - start:grid_image - start + 1].float().cpu()
    return list(stats.values()), grid
