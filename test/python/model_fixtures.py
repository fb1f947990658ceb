"""Fixtures for test/unit/model-parity.test.ts: random models saved in timm and official layouts, inputs.

  model_fixtures.py DIR ARCH SIZE [timm]   -> DIR/timm.safetensors, DIR/official.pt (classifier, 10 classes),
                                       DIR/fcmae.safetensors (V2 only), DIR/x.npy, DIR/y.npy, DIR/mask.npy
                                       (with `timm`: the timm file and the inputs only, for the big models)
Weights are random everywhere (GRN and layer scale too) so every parameter matters.
"""
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


def main() -> None:
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
