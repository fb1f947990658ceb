"""FCMAE: fully convolutional masked autoencoder (ConvNeXt V2 paper, section 3), dense masked-conv form.

Mask convention everywhere: a (N, H/32, W/32) or (N, L) float tensor, 0 = keep (visible), 1 = remove.
State dict: the encoder under `encoder.` with timm names (no head), then the official decoder names
`proj.*`, `mask_token`, `decoder.<k>.{dwconv,norm,pwconv1,grn.gamma,grn.beta,pwconv2}.*`, `pred.*`.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn as nn

from .models import LN_EPS, ConvNeXt, LayerNorm, at_least_fp32, create_model, global_response_norm

Tensor = torch.Tensor
PATCH_SIZE = 32  # the encoder's total stride: one encoder output cell per patch


class OfficialGRN(nn.Module):
    """GRN with the official parameter layout: gamma/beta (1, 1, 1, C) on NHWC input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        return global_response_norm(x, self.gamma, self.beta, channel_dim=3)


class DecoderBlock(nn.Module):
    """ConvNeXt V2 block with the official names (dwconv, norm, pwconv1, grn, pwconv2); dense, no drop path."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm(dim, eps=LN_EPS)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.grn = OfficialGRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.dwconv(x).permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        x = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(x)))))
        return shortcut + x.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)


class FcmaeOutput(NamedTuple):
    loss: Tensor  # scalar: mean per-patch MSE over removed patches
    pred: Tensor  # (N, L, p*p*3), pixel order (row, col, channel) inside a patch
    mask: Tensor  # (N, L), 0 = keep, 1 = remove


def random_mask(n: int, grid_h: int, grid_w: int, mask_ratio: float, generator: Optional[torch.Generator] = None,
                device: Optional[torch.device] = None) -> Tensor:
    """Per-sample random mask (N, grid_h, grid_w): argsort of uniform noise, the first `len_keep` ranks kept.

    len_keep = int(L * (1 - mask_ratio)) exactly as the official code, so every sample hides the same count.
    Noise is drawn on the CPU from `generator` so a seeded run gives the same masks on every device.
    """
    length = grid_h * grid_w
    len_keep = int(length * (1 - mask_ratio))
    noise = torch.rand(n, length, generator=generator)
    ranks = torch.argsort(torch.argsort(noise, dim=1), dim=1)  # rank of each cell's noise within its sample
    mask = (ranks >= len_keep).float()
    return mask.reshape(n, grid_h, grid_w).to(device) if device is not None else mask.reshape(n, grid_h, grid_w)


def patchify(imgs: Tensor, patch: int) -> Tensor:
    """(N, 3, H, W) -> (N, L, p*p*3), patches row-major, pixels (row, col, channel) inside a patch."""
    n, c, h, w = imgs.shape
    gh, gw = h // patch, w // patch
    x = imgs.reshape(n, c, gh, patch, gw, patch)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (N, C, gh, p, gw, p) -> (N, gh, gw, p, p, C)
    return x.reshape(n, gh * gw, patch * patch * c)


def unpatchify(x: Tensor, patch: int, grid_h: int, grid_w: int) -> Tensor:
    """(N, L, p*p*3) -> (N, 3, grid_h*p, grid_w*p), the inverse of `patchify`."""
    n = x.shape[0]
    c = x.shape[2] // (patch * patch)
    x = x.reshape(n, grid_h, grid_w, patch, patch, c)
    x = x.permute(0, 5, 1, 3, 2, 4)  # (N, gh, gw, p, p, C) -> (N, C, gh, p, gw, p)
    return x.reshape(n, c, grid_h * patch, grid_w * patch)


def norm_pix_target(target: Tensor, eps: float = 1e-6) -> Tensor:
    """Per-patch normalisation of (N, L, D) targets: mean and unbiased variance over D, as the official code."""
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True, unbiased=True)
    return (target - mean) / (var + eps) ** 0.5


class FCMAE(nn.Module):
    """Encoder (ConvNeXt without head, dense masked conv) + one-or-more-block decoder + pixel prediction."""

    def __init__(self, encoder: ConvNeXt, decoder_dim: int = 512, decoder_depth: int = 1, patch_size: int = PATCH_SIZE,
                 mask_ratio: float = 0.6, norm_pix_loss: bool = True, in_chans: int = 3) -> None:
        super().__init__()
        if patch_size != PATCH_SIZE:
            raise ValueError(f"patch size must be {PATCH_SIZE}, the encoder's total stride (got {patch_size})")
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask ratio must be in [0, 1) (got {mask_ratio})")
        self.patch_size = patch_size
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        self.encoder = encoder
        self.proj = nn.Conv2d(encoder.num_features, decoder_dim, 1)
        self.mask_token = nn.Parameter(torch.zeros(1, decoder_dim, 1, 1))
        self.decoder = nn.Sequential(*[DecoderBlock(decoder_dim) for _ in range(decoder_depth)])
        self.pred = nn.Conv2d(decoder_dim, patch_size * patch_size * in_chans, 1)
        self._init_decoder()

    def _init_decoder(self) -> None:
        # The official code draws these 1x1 convs with std 1 (timm's trunc_normal_ default); we use the .02
        # of every other layer so the first reconstructions are on the scale of the normalized targets.
        for module in [self.proj, self.pred, *self.decoder.modules()]:
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward_decoder(self, features: Tensor, mask: Tensor) -> Tensor:
        """features (N, C, h, w), mask (N, h, w) -> prediction (N, p*p*3, h, w)."""
        x = self.proj(features)
        m = mask.unsqueeze(1).to(x.dtype)  # (N, 1, h, w)
        x = x * (1.0 - m) + self.mask_token.to(x.dtype) * m
        return self.pred(self.decoder(x))

    def forward_loss(self, imgs: Tensor, pred: Tensor, mask: Tensor) -> Tensor:
        """imgs (N, 3, H, W), pred (N, L, D), mask (N, L) -> mean per-patch MSE over removed patches (>= fp32)."""
        target = patchify(at_least_fp32(imgs), self.patch_size)
        if self.norm_pix_loss:
            target = norm_pix_target(target)
        per_patch = ((at_least_fp32(pred) - target) ** 2).mean(dim=-1)  # (N, L)
        return (per_patch * mask).sum() / mask.sum()

    def forward(self, imgs: Tensor, mask: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None) -> FcmaeOutput:
        """imgs (N, 3, H, W), H and W multiples of 32. `mask` (N, H/32, W/32) with 1 = remove; random when None."""
        n, _, h, w = imgs.shape
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {self.patch_size}")
        gh, gw = h // self.patch_size, w // self.patch_size
        if mask is None:
            mask = random_mask(n, gh, gw, self.mask_ratio, generator, imgs.device)
        elif tuple(mask.shape) != (n, gh, gw):
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match (N, H/32, W/32) = {(n, gh, gw)}")
        mask = mask.to(device=imgs.device, dtype=at_least_fp32(imgs).dtype)
        features = self.encoder.forward_features(imgs, mask)
        pred = self.forward_decoder(features, mask)
        pred = pred.flatten(2).transpose(1, 2)  # (N, D, h, w) -> (N, L, D)
        flat_mask = mask.reshape(n, gh * gw)
        return FcmaeOutput(self.forward_loss(imgs, pred, flat_mask), pred, flat_mask)


def create_fcmae(arch: str, decoder_dim: int = 512, decoder_depth: int = 1, patch_size: int = PATCH_SIZE,
                 mask_ratio: float = 0.6, norm_pix_loss: bool = True, drop_path_rate: float = 0.0) -> FCMAE:
    """FCMAE around a named encoder; V1 encoders are allowed (the paper's V1 + FCMAE ablation)."""
    encoder = create_model(arch, num_classes=0, drop_path_rate=drop_path_rate, with_head=False)
    return FCMAE(encoder, decoder_dim, decoder_depth, patch_size, mask_ratio, norm_pix_loss)
