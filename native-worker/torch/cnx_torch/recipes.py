"""The paper's training recipes and the pieces they are made of.

- Learning rate: linear warmup then cosine to min_lr, per step (the peak lr comes resolved in the config).
- Layer-wise lr decay with the official layer-id rules, on timm parameter names:
    "single": every block its own layer (sum(depths) layers); the stem and downsampler i share the id of
              the first block they feed, id = sum(depths[:i]) + 1 (so id 0 is unused, as in the official
              code); everything after the last stage (head) gets sum(depths) + 1.
    "group":  12 groups for [3, 3, 27, 3]: stem 0, stage 0 -> 1, stage 1 (and its downsampler) -> 2,
              downsampler 2 -> 3, stage 2 blocks -> 3 + j // 3, stage 3 (and its downsampler) -> 12,
              head 13.
  The lr scale of id i is decay ** (num_layers + 1 - i). The official fine-tuning scripts use "group" for
  base/large (and we also for huge, which shares their depths) and "single" for atto..tiny; that is the
  default here (`default_layer_decay_type`).
- No weight decay on 1-D params (norms, biases, GRN weight/bias, layer scale), on any `.bias`, on the
  official-layout GRN `gamma`/`beta` and on the FCMAE `mask_token`.
- EMA of weights, cross entropy with label smoothing or soft targets, mixup/cutmix with soft targets.
"""
from __future__ import annotations

import copy
import math
import random
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .models import at_least_fp32, parse_arch

Tensor = torch.Tensor


# The recipe tables live in common/recipes.ts: the job config this engine receives is resolved there
# (common/resolve-job.ts) with every value set, layerDecayType included.


def default_layer_decay_type(arch: str) -> str:
    """For hand-written configs without layerDecayType: the official "group" rule is defined for the 27-block
    third stage (base/large/huge, V1 small/xlarge), "single" otherwise; test/unit/recipes.test.ts checks this
    against the recipe table of common/recipes.ts for every architecture."""
    return "group" if parse_arch(arch).depths[2] == 27 else "single"


def num_layers(depths: Sequence[int], decay_type: str) -> int:
    if decay_type == "single":
        return sum(depths)
    if decay_type == "group":
        return 12
    raise ValueError(f"layer decay type must be 'single' or 'group', got {decay_type!r}")


def layer_id(name: str, depths: Sequence[int], decay_type: str) -> int:
    """Layer id of a timm-named ConvNeXt parameter under the official rules (see the module docstring)."""
    parts = name.split(".")
    total = num_layers(depths, decay_type)
    if decay_type == "single":
        if parts[0] == "stem":
            return 1
        if parts[0] == "stages":
            stage = int(parts[1])
            if parts[2] == "downsample":
                return sum(depths[:stage]) + 1
            return sum(depths[:stage]) + int(parts[3]) + 1
        return total + 1
    if parts[0] == "stem":
        return 0
    if parts[0] == "stages":
        stage = int(parts[1])
        if parts[2] == "downsample":
            return {1: 2, 2: 3, 3: 12}[stage]
        block = int(parts[3])
        return {0: 1, 1: 2, 2: 3 + block // 3, 3: 12}[stage]
    return total + 1


def layer_scales(decay: float, depths: Sequence[int], decay_type: str) -> List[float]:
    n = num_layers(depths, decay_type)
    return [decay ** (n + 1 - i) for i in range(n + 2)]


def skips_weight_decay(name: str, param: Tensor) -> bool:
    return (param.ndim <= 1 or name.endswith(".bias") or name.endswith(".gamma") or name.endswith(".beta")
            or name == "mask_token" or name.endswith(".mask_token"))


def param_groups(named_params: Iterable[Tuple[str, nn.Parameter]], weight_decay: float,
                 layer_decay: Optional[float] = None, depths: Optional[Sequence[int]] = None,
                 layer_decay_type: str = "single") -> List[dict]:
    """AdamW parameter groups: decay / no-decay, times one group per layer id when `layer_decay` is set.

    Each group has `params`, `names`, `weight_decay` and `lr_scale` (multiplied into the scheduled lr).
    """
    if layer_decay is not None and depths is None:
        raise ValueError("layer decay needs the model depths")
    scales = layer_scales(layer_decay, depths, layer_decay_type) if layer_decay is not None and depths else None
    groups: Dict[str, dict] = {}
    for name, param in named_params:
        if not param.requires_grad:
            continue
        no_decay = skips_weight_decay(name, param)
        key = "no_decay" if no_decay else "decay"
        scale = 1.0
        if scales is not None and depths is not None:
            lid = layer_id(name, depths, layer_decay_type)
            key = f"layer_{lid}_{key}"
            scale = scales[lid]
        group = groups.setdefault(key, {"params": [], "names": [], "weight_decay": 0.0 if no_decay else weight_decay,
                                        "lr_scale": scale, "group": key})
        group["params"].append(param)
        group["names"].append(name)
    return list(groups.values())


def lr_at(step: int, peak_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> float:
    """lr for optimizer step `step` (0-based): linear warmup from 0, then half-cosine down to min_lr."""
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class ModelEma:
    """Exponential moving average of a model's floating-point state: ema = d * ema + (1 - d) * model."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for ema_v, v in zip(self.module.state_dict().values(), model.state_dict().values()):
            if ema_v.dtype.is_floating_point:
                ema_v.lerp_(v.detach(), 1.0 - self.decay)
            else:
                ema_v.copy_(v)

    def state_dict(self) -> Dict[str, Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: Dict[str, Tensor]) -> None:
        self.module.load_state_dict(state)


def classification_loss(logits: Tensor, target: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross entropy: `target` is class indices (N,) with label smoothing, or soft targets (N, K)."""
    logits = at_least_fp32(logits)
    if target.dtype.is_floating_point:
        return torch.sum(-target * F.log_softmax(logits, dim=-1), dim=-1).mean()
    return F.cross_entropy(logits, target, label_smoothing=label_smoothing)


def smooth_one_hot(target: Tensor, num_classes: int, smoothing: float) -> Tensor:
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    out = torch.full((target.shape[0], num_classes), off, device=target.device)
    return out.scatter_(1, target.unsqueeze(1), on)


class MixupCutmix:
    """Batch mixup / cutmix with soft, label-smoothed targets (timm's 'batch' mode, partner = reversed batch).

    With both alphas > 0 each batch uses cutmix with probability `switch_prob`, else mixup. Randomness comes
    from the `random.Random` passed per call so a seeded step always mixes the same way.
    """

    def __init__(self, mixup_alpha: float, cutmix_alpha: float, num_classes: int, label_smoothing: float = 0.0,
                 switch_prob: float = 0.5) -> None:
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.switch_prob = switch_prob

    @property
    def active(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def __call__(self, x: Tensor, target: Tensor, rng: random.Random) -> Tuple[Tensor, Tensor]:
        """x (N, C, H, W), target (N,) class ids -> mixed x, soft targets (N, K)."""
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or rng.random() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = rng.betavariate(alpha, alpha)
        partner = x.flip(0)
        if use_cutmix:
            h, w = x.shape[-2:]
            cut = math.sqrt(1.0 - lam)
            ch, cw = int(h * cut), int(w * cut)
            cy, cx = rng.randrange(h), rng.randrange(w)
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
            x = x.clone()
            x[..., y0:y1, x0:x1] = partner[..., y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)  # the area actually pasted
        else:
            x = x * lam + partner * (1.0 - lam)
        soft = smooth_one_hot(target, self.num_classes, self.label_smoothing)
        return x, soft * lam + soft.flip(0) * (1.0 - lam)
