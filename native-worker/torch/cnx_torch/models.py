"""ConvNeXt V1 and V2, written once (V2 = V1 + GRN - layer scale), with timm's parameter names.

State dict keys match timm's `convnext_*` / `convnextv2_*` models:
  stem.{0,1}                                   conv 4x4/4, channels-first LayerNorm
  stages.i.downsample.{0,1}        (i >= 1)    channels-first LayerNorm, conv 2x2/2
  stages.i.blocks.j.conv_dw                    depthwise conv 7x7
  stages.i.blocks.j.norm                       LayerNorm (channels-first for conv-MLP variants)
  stages.i.blocks.j.mlp.{fc1,grn,fc2}          Linear on NHWC, or 1x1 Conv2d on NCHW (atto..nano)
  stages.i.blocks.j.gamma                      V1 only: layer scale (C,)
  head.norm, head.fc
The forward path also takes an optional FCMAE mask so the same encoder serves pretraining (see fcmae.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

Tensor = torch.Tensor


def _variant_table() -> Dict[str, dict]:
    """The variant table both engines read: common/variants.json at the repository (or app) root, or beside
    the engine's folder in a cluster launch folder (engine/common/variants.json): the nearest ancestor's."""
    here = Path(__file__).resolve()
    found = [d / "common" / "variants.json" for d in here.parents if (d / "common" / "variants.json").is_file()]
    path = found[0] if found else here.parents[3] / "common" / "variants.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))["variants"]
    except (OSError, ValueError, KeyError) as e:
        raise RuntimeError(f"{path}: cannot read the ConvNeXt variant table ({e})") from e


_TABLE = _variant_table()
# name -> (depths, dims), in size order.
VARIANTS: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]] = {
    name: (tuple(v["depths"]), tuple(v["dims"])) for name, v in _TABLE.items()}
V1_SIZES = tuple(name for name, v in _TABLE.items() if 1 in v["versions"])
V2_SIZES = tuple(name for name, v in _TABLE.items() if 2 in v["versions"])
# timm builds the four smallest variants with 1x1 convs instead of Linear layers (faster at small widths).
CONV_MLP_SIZES = frozenset(name for name, v in _TABLE.items() if v["convMlp"])

LN_EPS = 1e-6
GRN_EPS = 1e-6
V1_LAYER_SCALE_INIT = 1e-6


@dataclass(frozen=True)
class ArchSpec:
    """What an architecture name such as `convnextv2_atto` or `convnext_tiny` stands for."""

    arch: str
    version: int  # 1 or 2
    size: str
    depths: Tuple[int, ...]
    dims: Tuple[int, ...]
    conv_mlp: bool


def parse_arch(arch: str) -> ArchSpec:
    """Resolves `convnextv2_<size>` (V2) or `convnext_<size>` (V1); raises ValueError naming the valid choices."""
    if arch.startswith("convnextv2_"):
        version, size, sizes = 2, arch[len("convnextv2_"):], V2_SIZES
    elif arch.startswith("convnext_"):
        version, size, sizes = 1, arch[len("convnext_"):], V1_SIZES
    else:
        raise ValueError(f"unknown architecture '{arch}': expected convnextv2_<size> or convnext_<size>")
    if size not in sizes:
        prefix = "convnextv2_" if version == 2 else "convnext_"
        raise ValueError(f"unknown architecture '{arch}': sizes are {', '.join(prefix + s for s in sizes)}")
    depths, dims = VARIANTS[size]
    return ArchSpec(arch, version, size, depths, dims, size in CONV_MLP_SIZES)


def at_least_fp32(x: Tensor) -> Tensor:
    """x in fp32, or unchanged when already fp32/fp64 (so float64 reference runs stay float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


class LayerNorm(nn.LayerNorm):
    """LayerNorm over the last dim (biased variance), computed in at least fp32 and returned in the input
    dtype: CPU autocast (torch 1.13) does not upcast layer_norm itself and fails on bf16 input."""

    def forward(self, x: Tensor) -> Tensor:
        xf = at_least_fp32(x)
        y = F.layer_norm(xf, self.normalized_shape, self.weight.to(xf.dtype), self.bias.to(xf.dtype), self.eps)
        return y.to(x.dtype)


class LayerNorm2d(LayerNorm):
    """LayerNorm over the channels of an NCHW tensor."""

    def forward(self, x: Tensor) -> Tensor:
        # (N, C, H, W) -> (N, H, W, C) -> norm -> (N, C, H, W)
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def global_response_norm(x: Tensor, weight: Tensor, bias: Tensor, channel_dim: int,
                         keep: Optional[Tensor] = None, eps: float = GRN_EPS) -> Tensor:
    """GRN: y = weight * (x * Nx) + bias + x, Nx = ||x||_HW / (mean_C ||x||_HW + eps), per sample.

    x is (N, H, W, C) when channel_dim == 3 or (N, C, H, W) when channel_dim == 1. `keep` (same layout,
    size 1 on the channel axis, 1 = visible) restricts the L2 norm to visible positions (FCMAE).
    Computed in at least fp32 whatever the autocast dtype: fp16 GRN reductions are reported to overflow.
    """
    spatial = (1, 2) if channel_dim == 3 else (2, 3)
    shape = [1, 1, 1, -1] if channel_dim == 3 else [1, -1, 1, 1]
    xf = at_least_fp32(x)
    visible = xf if keep is None else xf * keep.to(xf.dtype)
    gx = torch.linalg.vector_norm(visible, ord=2, dim=spatial, keepdim=True)  # (N,1,1,C) or (N,C,1,1)
    nx = gx / (gx.mean(dim=channel_dim, keepdim=True) + eps)
    y = xf + torch.addcmul(bias.to(xf.dtype).reshape(shape), weight.to(xf.dtype).reshape(shape), xf * nx)
    return y.to(x.dtype)


class GlobalResponseNorm(nn.Module):
    """GRN with timm's 1-D `weight`/`bias` (dim,), zero-initialised so the layer starts as identity."""

    def __init__(self, dim: int, channels_last: bool) -> None:
        super().__init__()
        self.channels_last = channels_last
        self.weight = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor, keep: Optional[Tensor] = None) -> Tensor:
        return global_response_norm(x, self.weight, self.bias, 3 if self.channels_last else 1, keep)


class Mlp(nn.Module):
    """fc1 -> GELU (erf) -> [GRN] -> fc2, as Linear on NHWC or as 1x1 convs on NCHW (`use_conv`)."""

    def __init__(self, dim: int, hidden: int, use_grn: bool, use_conv: bool) -> None:
        super().__init__()
        self.use_conv = use_conv
        self.fc1: nn.Module = nn.Conv2d(dim, hidden, 1) if use_conv else nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.grn = GlobalResponseNorm(hidden, channels_last=not use_conv) if use_grn else None
        self.fc2: nn.Module = nn.Conv2d(hidden, dim, 1) if use_conv else nn.Linear(hidden, dim)

    def forward(self, x: Tensor, keep: Optional[Tensor] = None) -> Tensor:
        x = self.act(self.fc1(x))
        if self.grn is not None:
            x = self.grn(x, keep)
        return self.fc2(x)


def drop_path(x: Tensor, rate: float, training: bool) -> Tensor:
    """Stochastic depth: zeroes the residual branch of whole samples, rescaling the kept ones by 1/keep."""
    if rate == 0.0 or not training:
        return x
    keep_prob = 1.0 - rate
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    keep = x.new_empty(shape).bernoulli_(keep_prob)
    return x * keep.div_(keep_prob)


class Block(nn.Module):
    """ConvNeXt block: dwconv 7x7 -> LN -> MLP (with GRN in V2) -> [layer scale, V1] -> drop path -> +x."""

    def __init__(self, dim: int, use_grn: bool, conv_mlp: bool, ls_init_value: Optional[float],
                 drop_path_rate: float) -> None:
        super().__init__()
        self.conv_mlp = conv_mlp
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm: nn.Module = LayerNorm2d(dim, eps=LN_EPS) if conv_mlp else LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, 4 * dim, use_grn=use_grn, use_conv=conv_mlp)
        self.gamma = nn.Parameter(torch.full((dim,), ls_init_value)) if ls_init_value is not None else None
        self.drop_path_rate = drop_path_rate

    def forward(self, x: Tensor, keep: Optional[Tensor] = None) -> Tensor:
        """x (N, C, H, W); keep (N, 1, H, W) with 1 = visible, 0 = masked, or None (no FCMAE mask).

        With a mask the block is the dense emulation of the sparse block (the paper's JAX path): the input is
        masked before the depthwise conv and its output masked again, so masked cells never leak into
        visible ones; GRN norms over visible cells only.
        """
        shortcut = x
        if keep is not None:
            x = x * keep.to(x.dtype)
        x = self.conv_dw(x)
        if keep is not None:
            x = x * keep.to(x.dtype)
        if self.conv_mlp:
            x = self.mlp(self.norm(x), keep)
        else:
            # (N, C, H, W) -> (N, H, W, C) for LayerNorm and Linear layers over channels
            x = x.permute(0, 2, 3, 1)
            x = self.mlp(self.norm(x), None if keep is None else keep.permute(0, 2, 3, 1))
            x = x.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        if self.gamma is not None:
            x = x * self.gamma.reshape(1, -1, 1, 1).to(x.dtype)
        return shortcut + drop_path(x, self.drop_path_rate, self.training)


class Stage(nn.Module):
    """Optional downsampler (LN + conv 2x2/2, stages 1..3) followed by blocks."""

    def __init__(self, in_dim: int, dim: int, depth: int, downsample: bool, use_grn: bool, conv_mlp: bool,
                 ls_init_value: Optional[float], drop_path_rates: Sequence[float]) -> None:
        super().__init__()
        self.downsample: nn.Module = (
            nn.Sequential(LayerNorm2d(in_dim, eps=LN_EPS), nn.Conv2d(in_dim, dim, 2, stride=2))
            if downsample else nn.Identity())
        self.blocks = nn.Sequential(*[
            Block(dim, use_grn, conv_mlp, ls_init_value, drop_path_rates[j]) for j in range(depth)])


class Head(nn.Module):
    """Global average pool -> LayerNorm -> Linear (`fc` is absent when num_classes == 0)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.norm = LayerNorm(dim, eps=LN_EPS)
        self.fc: Optional[nn.Linear] = nn.Linear(dim, num_classes) if num_classes > 0 else None

    def forward(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.norm(x.mean(dim=(2, 3)))  # (N, C, H, W) -> (N, C)
        if pre_logits or self.fc is None:
            return x
        return self.fc(x)


def upsample_mask(mask: Tensor, scale: int) -> Tensor:
    """(N, h, w) mask -> (N, 1, h*scale, w*scale) by repetition, the cell grid of one stage."""
    return mask.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2).unsqueeze(1)


class ConvNeXt(nn.Module):
    """ConvNeXt V1/V2. `forward_features` -> (N, C, H/32, W/32); `forward_head` -> logits or pre-logits."""

    def __init__(self, depths: Sequence[int], dims: Sequence[int], *, use_grn: bool, conv_mlp: bool,
                 ls_init_value: Optional[float], num_classes: int = 1000, drop_path_rate: float = 0.0,
                 head_init_scale: float = 1.0, with_head: bool = True, in_chans: int = 3) -> None:
        super().__init__()
        if len(depths) != 4 or len(dims) != 4:
            raise ValueError("ConvNeXt needs four stages (depths and dims of length 4)")
        self.depths = tuple(depths)
        self.dims = tuple(dims)
        self.num_features = dims[-1]
        self.stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], 4, stride=4), LayerNorm2d(dims[0], eps=LN_EPS))
        rates = torch.linspace(0.0, drop_path_rate, sum(depths)).tolist()
        stages: List[Stage] = []
        start = 0
        for i, depth in enumerate(depths):
            stages.append(Stage(dims[max(i - 1, 0)], dims[i], depth, i > 0, use_grn, conv_mlp, ls_init_value,
                                rates[start:start + depth]))
            start += depth
        self.stages = nn.Sequential(*stages)
        self.head: Optional[Head] = Head(dims[-1], num_classes) if with_head else None
        self._init_weights(head_init_scale)

    def _init_weights(self, head_init_scale: float) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if self.head is not None and self.head.fc is not None:
            with torch.no_grad():
                self.head.fc.weight.mul_(head_init_scale)
                self.head.fc.bias.mul_(head_init_scale)

    def _run(self, x: Tensor, mask: Optional[Tensor], taps: Optional[Dict[str, Tensor]]) -> Tensor:
        keep: Optional[Tensor] = None
        x = self.stem(x)
        if mask is not None:
            keep = 1.0 - upsample_mask(mask, 2 ** (len(self.stages) - 1))  # stride 32 -> stride 4
            x = x * keep.to(x.dtype)
        if taps is not None:
            taps["stem"] = x
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = stage.downsample(x)
                if mask is not None:
                    keep = 1.0 - upsample_mask(mask, 2 ** (len(self.stages) - 1 - i))
                if taps is not None:
                    taps[f"stages.{i}.downsample"] = x
            for j, block in enumerate(stage.blocks):
                x = block(x, keep)
                if taps is not None:
                    taps[f"stages.{i}.blocks.{j}"] = x
            if taps is not None:
                taps[f"stages.{i}"] = x
        if keep is not None:
            # Masked cells carry no information; zero them like the sparse encoder's densified output.
            x = x * keep.to(x.dtype)
        return x

    def forward_features(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """x (N, 3, H, W) -> (N, dims[-1], H/32, W/32). `mask` (N, H/32, W/32), 1 = remove, 0 = keep."""
        return self._run(x, mask, None)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """(N, C, h, w) -> logits (N, num_classes), or pooled + normed features (N, C) when `pre_logits`."""
        if self.head is None:
            raise RuntimeError("this ConvNeXt was built without a head (FCMAE encoder)")
        return self.head(x, pre_logits)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def feature_taps(self, x: Tensor, mask: Optional[Tensor] = None,
                     names: Optional[Sequence[str]] = None) -> Dict[str, Tensor]:
        """Every intermediate feature map, keyed `stem`, `stages.i.downsample`, `stages.i.blocks.j`,
        `stages.i`, plus `pre_logits` and `logits` when the model has a head; `names` selects a subset."""
        taps: Dict[str, Tensor] = {}
        x = self._run(x, mask, taps)
        if self.head is not None:
            taps["pre_logits"] = self.head(x, pre_logits=True)
            if self.head.fc is not None:
                taps["logits"] = self.head.fc(taps["pre_logits"])
        if names is None:
            return taps
        missing = [n for n in names if n not in taps]
        if missing:
            raise KeyError(f"unknown feature taps {missing}; available: {sorted(taps)}")
        return {n: taps[n] for n in names}


def create_model(arch: str, num_classes: int = 1000, drop_path_rate: float = 0.0, head_init_scale: float = 1.0,
                 with_head: bool = True) -> ConvNeXt:
    """Builds a named variant the way timm does (V2: GRN, no layer scale; V1: layer scale 1e-6)."""
    spec = parse_arch(arch)
    return ConvNeXt(spec.depths, spec.dims, use_grn=spec.version == 2, conv_mlp=spec.conv_mlp,
                    ls_init_value=None if spec.version == 2 else V1_LAYER_SCALE_INIT, num_classes=num_classes,
                    drop_path_rate=drop_path_rate, head_init_scale=head_init_scale, with_head=with_head)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def official_to_timm(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Renames an official ConvNeXt(-V2) state dict (downsample_layers.*, stages.i.j.*, norm, head) to timm's.

    GRN gamma/beta (1,1,1,4C) or (1,4C) become 1-D; pwconv weights become (out,in,1,1) where the target
    uses 1x1 convs is decided by the caller (`adapt_to_model`), since the official files do not say.
    """
    out: Dict[str, Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "downsample_layers":
            stage = int(parts[1])
            new = ["stem"] + parts[2:] if stage == 0 else ["stages", parts[1], "downsample"] + parts[2:]
        elif parts[0] == "stages" and len(parts) > 3:
            rest = parts[3:]
            names = {"dwconv": "conv_dw", "pwconv1": "mlp.fc1", "pwconv2": "mlp.fc2"}
            if rest[0] in names:
                rest = names[rest[0]].split(".") + rest[1:]
            elif rest[0] == "grn":
                rest = ["mlp", "grn", {"gamma": "weight", "beta": "bias"}[rest[1]]]
                value = value.reshape(-1)
            new = ["stages", parts[1], "blocks", parts[2]] + rest
        elif parts[0] == "norm":
            new = ["head", "norm"] + parts[1:]
        elif parts[0] == "head":
            new = ["head", "fc"] + parts[1:]
        else:
            new = parts
        out[".".join(new)] = value
    return out


def adapt_to_model(state: Dict[str, Tensor], model: nn.Module) -> Dict[str, Tensor]:
    """Reshapes Linear <-> 1x1 conv MLP weights so a checkpoint of either layout loads into `model`."""
    own = model.state_dict()
    out: Dict[str, Tensor] = {}
    for key, value in state.items():
        target = own.get(key)
        if target is not None and target.shape != value.shape and target.numel() == value.numel() \
                and ".mlp.fc" in key and key.endswith(".weight"):
            value = value.reshape(target.shape)
        out[key] = value
    return out


def looks_official(state: Dict[str, Tensor]) -> bool:
    return any(k.startswith("downsample_layers.") for k in state)


def normalize_classifier_state(state: Dict[str, Tensor], model: ConvNeXt) -> Dict[str, Tensor]:
    """Accepts timm or official naming (optionally wrapped under `encoder.` as in FCMAE files) -> timm names."""
    if any(k.startswith("encoder.") for k in state):
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    if looks_official(state):
        state = official_to_timm(state)
    return adapt_to_model(state, model)

