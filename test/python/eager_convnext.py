"""An independent eager ConvNeXt V1/V2 and FCMAE, written from the papers for the PyTorch engine's tests and
benchmark: plain functions over a dict of tensors named as timm names them (FCMAE: `encoder.*` plus the
official decoder names), so no module of the engine under test is involved.

Masked (FCMAE) encoding follows the sparse-convolution reading of the paper: a removed cell does not exist,
so it holds zero after every block and GRN's norm runs over visible cells only.

As a benchmark (native-worker/torch/bench.py runs it as a child process):
  eager_convnext.py --job finetune|fcmae|infer --arch convnextv2_atto [--batch 64] [--size 224]
                    [--precision fp32|bf16] [--steps 20] [--warmup 5] [--device cpu|cuda]
finetune/infer time timm's model when timm is importable, else the functions below; fcmae always the functions
below. Prints one JSON line with img_per_s and ms_per_step.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
Params = Dict[str, Tensor]
EPS = 1e-6  # LayerNorm and GRN
WIDTHS = {  # depths, dims per variant (ConvNeXt V2 paper, table 1)
    "atto": ((2, 2, 6, 2), (40, 80, 160, 320)), "femto": ((2, 2, 6, 2), (48, 96, 192, 384)),
    "pico": ((2, 2, 6, 2), (64, 128, 256, 512)), "nano": ((2, 2, 8, 2), (80, 160, 320, 640)),
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)), "base": ((3, 3, 27, 3), (128, 256, 512, 1024)),
    "large": ((3, 3, 27, 3), (192, 384, 768, 1536)), "huge": ((3, 3, 27, 3), (352, 704, 1408, 2816)),
}


def _channel_norm(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """LayerNorm over C of (N, C, H, W)."""
    return F.layer_norm(x.permute(0, 2, 3, 1), w.shape, w, b, EPS).permute(0, 3, 1, 2)


def _grn(x: Tensor, w: Tensor, b: Tensor, keep: Optional[Tensor]) -> Tensor:
    """Global response normalisation of (N, C, H, W); `keep` (N, 1, H, W) limits the norm to visible cells."""
    sq = x * x if keep is None else x * x * keep
    gx = sq.sum(dim=(2, 3), keepdim=True).sqrt()
    nx = gx / (gx.mean(dim=1, keepdim=True) + EPS)
    return w.reshape(1, -1, 1, 1) * (x * nx) + b.reshape(1, -1, 1, 1) + x


def _block(p: Params, name: str, x: Tensor, keep: Optional[Tensor], grn_names=("mlp.grn.weight", "mlp.grn.bias"),
           layers=("conv_dw", "norm", "mlp.fc1", "mlp.fc2")) -> Tensor:
    dw, norm, fc1, fc2 = (f"{name}.{layer}" for layer in layers)
    y = F.conv2d(x, p[dw + ".weight"], p[dw + ".bias"], padding=3, groups=x.shape[1])
    y = _channel_norm(y, p[norm + ".weight"], p[norm + ".bias"])
    y = F.gelu(F.conv2d(y, p[fc1 + ".weight"][:, :, None, None], p[fc1 + ".bias"]))
    if f"{name}.{grn_names[0]}" in p:
        y = _grn(y, p[f"{name}.{grn_names[0]}"], p[f"{name}.{grn_names[1]}"], keep)
    y = F.conv2d(y, p[fc2 + ".weight"][:, :, None, None], p[fc2 + ".bias"])
    if f"{name}.gamma" in p:
        y = y * p[f"{name}.gamma"].reshape(1, -1, 1, 1)
    out = x + y
    return out if keep is None else out * keep


def encode(p: Params, x: Tensor, depths: Sequence[int], mask: Optional[Tensor] = None, prefix: str = "") -> Tensor:
    """(N, 3, H, W) -> (N, C, H/32, W/32). `mask` (N, H/32, W/32): 1 = removed, 0 = visible."""
    for i in range(4):
        if i == 0:
            x = F.conv2d(x, p[prefix + "stem.0.weight"], p[prefix + "stem.0.bias"], stride=4)
            x = _channel_norm(x, p[prefix + "stem.1.weight"], p[prefix + "stem.1.bias"])
        else:
            d = f"{prefix}stages.{i}.downsample"
            x = _channel_norm(x, p[d + ".0.weight"], p[d + ".0.bias"])
            x = F.conv2d(x, p[d + ".1.weight"], p[d + ".1.bias"], stride=2)
        keep = None
        if mask is not None:
            scale = x.shape[-1] // mask.shape[-1]
            keep = 1 - mask[:, None].repeat_interleave(scale, 2).repeat_interleave(scale, 3)
            x = x * keep
        for j in range(depths[i]):
            x = _block(p, f"{prefix}stages.{i}.blocks.{j}", x, keep)
    return x


def classify(p: Params, x: Tensor, depths: Sequence[int]) -> Tensor:
    """Logits of (N, 3, H, W) images."""
    pooled = encode(p, x, depths).mean(dim=(2, 3))
    pooled = F.layer_norm(pooled, pooled.shape[-1:], p["head.norm.weight"], p["head.norm.bias"], EPS)
    return F.linear(pooled, p["head.fc.weight"], p["head.fc.bias"])


def gradcam(p: Params, x: Tensor, depths: Sequence[int], targets: Optional[Tensor] = None):
    """Grad-CAM of the last stage's output A (before the head's pool and norm): the gradient of each image's
    class logit (`targets`, default its top-1) w.r.t. A by autograd.grad, channel weights = its spatial mean,
    CAM = ReLU(sum_c w_c A_c). Returns the map scaled by its max (all zeros where the max is 0) (N, h, w), the
    max (N,) and the logits (N, K)."""
    a = encode(p, x, depths).detach().requires_grad_(True)
    pooled = F.layer_norm(a.mean(dim=(2, 3)), a.shape[1:2], p["head.norm.weight"], p["head.norm.bias"], EPS)
    logits = F.linear(pooled, p["head.fc.weight"], p["head.fc.bias"])
    t = logits.argmax(dim=1) if targets is None else targets
    (g,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), a)  # images are independent
    cam = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1)).detach()
    peak = cam.flatten(1).amax(dim=1)
    scaled = torch.where(peak[:, None, None] > 0, cam / peak.clamp_min(1e-30)[:, None, None], torch.zeros_like(cam))
    return scaled, peak, logits.detach()


def fcmae(p: Params, imgs: Tensor, mask: Tensor, depths: Sequence[int], patch: int = 32):
    """(loss, pred): pred (N, L, patch*patch*3) in (row, col, channel) order; loss = per-patch MSE against
    normalised pixels (unbiased variance), averaged over removed patches."""
    x = F.conv2d(encode(p, imgs, depths, mask, "encoder."), p["proj.weight"], p["proj.bias"])
    m = mask[:, None]
    x = x * (1 - m) + p["mask_token"] * m
    for k in range(sum(1 for n in p if n.startswith("decoder.") and n.endswith(".dwconv.weight"))):
        x = _block(p, f"decoder.{k}", x, None, ("grn.gamma", "grn.beta"), ("dwconv", "norm", "pwconv1", "pwconv2"))
    pred = F.conv2d(x, p["pred.weight"], p["pred.bias"]).flatten(2).transpose(1, 2)
    n, c, h, w = imgs.shape
    target = imgs.reshape(n, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 3, 5, 1).reshape(n, -1, patch * patch * c)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + EPS).sqrt()
    per_patch = ((pred - target) ** 2).mean(-1)
    flat = mask.reshape(n, -1)
    return (per_patch * flat).sum() / flat.sum(), pred


def _draw(shapes: Dict[str, Sequence[int]], g: torch.Generator, dtype: torch.dtype) -> Params:
    """Random values away from identity everywhere (norm scales near 1, GRN and layer scale non-zero), so every
    parameter changes the output; leaves that require grad."""
    out: Params = {}
    for name, shape in shapes.items():
        t = torch.randn(*shape, generator=g, dtype=torch.float64)
        leaf = name.rsplit(".", 1)[-1]
        if ("norm" in name or "stem.1" in name or "downsample.0" in name) and leaf == "weight":
            t = 1 + 0.1 * t
        elif leaf in ("gamma", "beta", "mask_token") or "grn" in name:
            t = 0.5 * t
        elif leaf == "bias":
            t = 0.05 * t
        else:
            fan_in = max(1, t[0].numel())
            t = t / fan_in ** 0.5
        out[name] = t.to(dtype).requires_grad_(True)
    return out


def _block_shapes(name: str, d: int, v2: bool, official: bool = False) -> Dict[str, Sequence[int]]:
    dw, norm, fc1, fc2 = ("dwconv", "norm", "pwconv1", "pwconv2") if official else ("conv_dw", "norm", "mlp.fc1", "mlp.fc2")
    s: Dict[str, Sequence[int]] = {f"{name}.{dw}.weight": (d, 1, 7, 7), f"{name}.{dw}.bias": (d,),
                                   f"{name}.{norm}.weight": (d,), f"{name}.{norm}.bias": (d,),
                                   f"{name}.{fc1}.weight": (4 * d, d), f"{name}.{fc1}.bias": (4 * d,)}
    if v2:
        grn = ("grn.gamma", "grn.beta") if official else ("mlp.grn.weight", "mlp.grn.bias")
        shape = (1, 1, 1, 4 * d) if official else (4 * d,)
        s.update({f"{name}.{grn[0]}": shape, f"{name}.{grn[1]}": shape})
    s.update({f"{name}.{fc2}.weight": (d, 4 * d), f"{name}.{fc2}.bias": (d,)})
    if not v2:
        s[f"{name}.gamma"] = (d,)
    return s


def _encoder_shapes(depths: Sequence[int], dims: Sequence[int], v2: bool, prefix: str = "") -> Dict[str, Sequence[int]]:
    s: Dict[str, Sequence[int]] = {prefix + "stem.0.weight": (dims[0], 3, 4, 4), prefix + "stem.0.bias": (dims[0],),
                                   prefix + "stem.1.weight": (dims[0],), prefix + "stem.1.bias": (dims[0],)}
    for i in range(4):
        if i:
            d = f"{prefix}stages.{i}.downsample"
            s.update({d + ".0.weight": (dims[i - 1],), d + ".0.bias": (dims[i - 1],),
                      d + ".1.weight": (dims[i], dims[i - 1], 2, 2), d + ".1.bias": (dims[i],)})
        for j in range(depths[i]):
            s.update(_block_shapes(f"{prefix}stages.{i}.blocks.{j}", dims[i], v2))
    return s


def classifier_params(depths: Sequence[int], dims: Sequence[int], v2: bool, num_classes: int, seed: int,
                      dtype: torch.dtype = torch.float64) -> Params:
    s = _encoder_shapes(depths, dims, v2)
    s.update({"head.norm.weight": (dims[-1],), "head.norm.bias": (dims[-1],),
              "head.fc.weight": (num_classes, dims[-1]), "head.fc.bias": (num_classes,)})
    return _draw(s, torch.Generator().manual_seed(seed), dtype)


def fcmae_params(depths: Sequence[int], dims: Sequence[int], decoder_dim: int, seed: int, decoder_depth: int = 1,
                 patch: int = 32, dtype: torch.dtype = torch.float64) -> Params:
    s = _encoder_shapes(depths, dims, True, "encoder.")
    s.update({"proj.weight": (decoder_dim, dims[-1], 1, 1), "proj.bias": (decoder_dim,), "mask_token": (1, decoder_dim, 1, 1)})
    for k in range(decoder_depth):
        s.update(_block_shapes(f"decoder.{k}", decoder_dim, True, official=True))
    s.update({"pred.weight": (patch * patch * 3, decoder_dim, 1, 1), "pred.bias": (patch * patch * 3,)})
    return _draw(s, torch.Generator().manual_seed(seed), dtype)


def _bench_step(a: argparse.Namespace, dev: torch.device):
    """(step function, implementation name) for one eager training or inference step."""
    depths, dims = WIDTHS[a.arch.split("_", 1)[1]]
    x = torch.randn(a.batch, 3, a.size, a.size, device=dev)
    y = torch.randint(0, 1000, (a.batch,), device=dev)
    grid = a.size // 32
    amp = dict(device_type=dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16")
    if a.job == "fcmae":
        p = {k: v.detach().float().to(dev).requires_grad_(True) for k, v in fcmae_params(depths, dims, 512, 0).items()}
        loss_of = lambda: fcmae(p, x, (torch.rand(a.batch, grid, grid, device=dev) < 0.6).float(), depths)[0]  # noqa: E731
        params, impl = list(p.values()), "eager functions"
    else:
        try:
            import timm
            model = timm.create_model(a.arch, num_classes=1000).to(dev)
            forward, params, impl = model, list(model.parameters()), "timm " + timm.__version__
        except ImportError:
            v2 = a.arch.startswith("convnextv2_")
            p = {k: v.detach().float().to(dev).requires_grad_(True) for k, v in classifier_params(depths, dims, v2, 1000, 0).items()}
            forward, params, impl = (lambda t: classify(p, t, depths)), list(p.values()), "eager functions"
        loss_of = lambda: F.cross_entropy(forward(x).float(), y)  # noqa: E731
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step() -> None:
        if a.job == "infer":
            with torch.no_grad(), torch.autocast(**amp):
                forward(x)
            return
        with torch.autocast(**amp):
            loss = loss_of()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, impl


def main() -> None:
    ap = argparse.ArgumentParser(description="eager PyTorch timing (the benchmark's reference)")
    ap.add_argument("--job", default="finetune", choices=["finetune", "fcmae", "infer"])
    ap.add_argument("--arch", default="convnextv2_atto")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    dev = torch.device(a.device)
    step, impl = _bench_step(a, dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(a.warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    dt = (time.perf_counter() - start) / a.steps
    print(json.dumps({"job": a.job, "arch": a.arch, "batch": a.batch, "size": a.size, "precision": a.precision,
                      "device": dev.type, "impl": impl, "torch": torch.__version__,
                      "img_per_s": round(a.batch / dt, 2), "ms_per_step": round(dt * 1000, 2)}))


if __name__ == "__main__":
    main()
