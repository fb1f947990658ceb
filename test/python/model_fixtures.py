"""Fixtures for test/unit/model-parity.test.ts: random models saved in timm and official layouts, inputs.

  model_fixtures.py DIR ARCH SIZE [timm]   -> DIR/timm.safetensors, DIR/official.pt (classifier, 10 classes),
                                       DIR/fcmae.safetensors (V2 only), DIR/x.npy, DIR/y.npy, DIR/mask.npy
                                       (with `timm`: the timm file and the inputs only, for the big models)
  model_fixtures.py sparse DIR ARCH -> DIR/fcmae512.safetensors (decoder 512 wide, as upstream) and the same
                                       weights in the official FCMAE's sparse layouts: DIR/sparse-train.pth
                                       (main_pretrain.py's checkpoint: model, optimizer, epoch, scaler, args)
                                       and DIR/sparse-encoder.pth ({'model': sparse encoder state dict});
                                       DIR/x1.npy (1, 3, 64, 64) and DIR/mask1.npy (1, 2, 2)
Weights are random everywhere (GRN and layer scale too) so every parameter matters.
"""
import argparse
import os
import sys

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "native-worker", "torch"))
from cnx_torch.fcmae import FCMAE  # noqa: E402
from cnx_torch.models import create_model  # noqa: E402
from cnx_torch.safetensors_io import save_file  # noqa: E402


def randomize(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            scale = 0.2 if ("norm" in name or "grn" in name or name.endswith("gamma")) else 0.05
            base = 1.0 if ("norm" in name and name.endswith("weight")) else 0.0
            p.copy_(base + scale * torch.randn(p.shape, generator=g))


def to_official(state):
    """timm names -> official ConvNeXt(-V2) names: spelled out here, independent of the code under test."""
    out = {}
    for k, v in state.items():
        p = k.split(".")
        if p[0] == "stem":
            k2 = "downsample_layers.0." + ".".join(p[1:])
        elif p[0] == "stages" and p[2] == "downsample":
            k2 = "downsample_layers.%s.%s" % (p[1], ".".join(p[3:]))
        elif p[0] == "stages":
            rest = ".".join(p[4:])
            rest = rest.replace("conv_dw", "dwconv").replace("mlp.fc1", "pwconv1").replace("mlp.fc2", "pwconv2")
            rest = rest.replace("mlp.grn.weight", "grn.gamma").replace("mlp.grn.bias", "grn.beta")
            if rest.startswith("grn."):
                v = v.reshape(1, 1, 1, -1)
            if rest.startswith("pwconv") and rest.endswith("weight"):
                v = v.reshape(v.shape[0], v.shape[1])  # official pwconvs are Linear (out, in)
            k2 = "stages.%s.%s.%s" % (p[1], p[3], rest)
        elif k.startswith("head.norm."):
            k2 = "norm." + p[2]
        elif k.startswith("head.fc."):
            k2 = "head." + p[2]
        else:
            raise KeyError(k)
        out[k2] = v.clone()
    return out


def to_sparse(name, v):
    """A dense official encoder tensor as MinkowskiEngine stores it (models/convnextv2_sparse.py)."""
    p = name.split(".")
    is_stem = name.startswith("downsample_layers.0.")
    if is_stem or ".grn." in name:
        return name, (v.reshape(1, -1) if ".grn." in name else v)  # the stem is dense; GRN is (1, C)
    if p[0] == "downsample_layers" and p[2] == "0" or p[-2] == "norm":
        return ".".join(p[:-1] + ["ln", p[-1]]), v  # MinkowskiLayerNorm wraps nn.LayerNorm as .ln
    if p[-2].startswith("pwconv"):
        return ".".join(p[:-1] + ["linear", p[-1]]), v  # MinkowskiLinear wraps nn.Linear as .linear
    if p[-1] == "bias":
        return name, v.reshape(1, -1)  # sparse conv biases are (1, C)
    out_dim, in_dim, k, _ = v.shape
    # Kernel offset index = col * k + row; (k*k, Cin, Cout), depthwise (k*k, C).
    kernel = v.transpose(3, 2).reshape(out_dim, in_dim, k * k).permute(2, 1, 0)
    return ".".join(p[:-1] + ["kernel"]), (kernel[:, 0, :] if "dwconv" in name else kernel).contiguous()


def remap_like_upstream(sparse):
    """The official fine-tuning conversion (utils.remap_checkpoint_keys), restated to check to_sparse."""
    out = {}
    for k, v in sparse.items():
        if k.endswith("kernel"):
            k = k[: -len("kernel")] + "weight"
            v = v if v.dim() == 3 else v.unsqueeze(1)
            kv, cin, cout = v.shape
            ks = int(round(kv ** 0.5))
            v = v.permute(2, 1, 0).reshape(cout, cin, ks, ks).transpose(3, 2)
        k = k.replace(".ln.", ".").replace(".linear.", ".")
        if k.endswith("bias") and v.dim() != 1:
            v = v.reshape(-1)
        elif ".grn." in k:
            v = v.reshape(1, 1, 1, -1)
        out[k] = v
    return out


def write_sparse(out: str, arch: str) -> None:
    torch.manual_seed(0)
    fcmae = FCMAE(create_model(arch, with_head=False))
    randomize(fcmae, 3)
    state = fcmae.state_dict()
    save_file(state, os.path.join(out, "fcmae512.safetensors"))
    encoder = to_official({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
    sparse = dict(to_sparse(k, v) for k, v in encoder.items())
    for k, v in remap_like_upstream(sparse).items():
        assert torch.equal(v, encoder[k].reshape(v.shape)), k
    decoder = {k: v.clone() for k, v in state.items() if not k.startswith("encoder.")}
    model = {**{f"encoder.{k}": v for k, v in sparse.items()}, **decoder}
    params = [torch.nn.Parameter(v.clone()) for v in list(model.values())[:3]]
    optimizer = torch.optim.AdamW(params, lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)
    sum((p * p).sum() for p in params).backward()
    optimizer.step()
    scaler = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000, "_growth_tracker": 13}
    args = argparse.Namespace(model=arch, batch_size=64, epochs=800, warmup_epochs=40, input_size=224, mask_ratio=0.6,
                              norm_pix_loss=True, decoder_depth=1, decoder_embed_dim=512, weight_decay=0.05,
                              blr=1.5e-4, data_path="/datasets/imagenet-1k", output_dir="./pretrain", seed=0)
    torch.save({"model": model, "optimizer": optimizer.state_dict(), "epoch": 799, "scaler": scaler, "args": args},
               os.path.join(out, "sparse-train.pth"))
    torch.save({"model": sparse}, os.path.join(out, "sparse-encoder.pth"))
    # One image: the official sparse GRN pools over the whole batch, so only single images compare exactly.
    np.save(os.path.join(out, "x1.npy"), torch.randn(1, 3, 64, 64).numpy().astype(np.float32))
    np.save(os.path.join(out, "mask1.npy"), np.array([[[1, 0], [0, 1]]], dtype=np.float32))


def main() -> None:
    if sys.argv[1] == "sparse":
        write_sparse(sys.argv[2], sys.argv[3])
        return
    out, arch, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    timm_only = sys.argv[4:] == ["timm"]
    torch.manual_seed(0)
    model = create_model(arch, num_classes=10)
    randomize(model, 1)
    state = model.state_dict()
    save_file(state, os.path.join(out, "timm.safetensors"))
    if not timm_only:
        torch.save({"model": to_official(state), "epoch": 3}, os.path.join(out, "official.pt"))
    n = 2
    np.save(os.path.join(out, "x.npy"), torch.randn(n, 3, size, size).numpy().astype(np.float32))
    np.save(os.path.join(out, "y.npy"), np.array([3, 7], dtype=np.int64))
    if arch.startswith("convnextv2_") and not timm_only:
        fcmae = FCMAE(create_model(arch, with_head=False), decoder_dim=64)
        randomize(fcmae, 2)
        save_file(fcmae.state_dict(), os.path.join(out, "fcmae.safetensors"))
        g = size // 32
        mask = np.ones((n, g * g), dtype=np.float32)
        rng = np.random.default_rng(0)
        for i in range(n):
            mask[i, rng.permutation(g * g)[: int(g * g * 0.4)]] = 0
        np.save(os.path.join(out, "mask.npy"), mask.reshape(n, g, g))


if __name__ == "__main__":
    main()
