#!/usr/bin/env python3
"""Reference computations for the TypeScript engine's parity tests (eager PyTorch, CPU by default).

  reference.py infer --arch A --weights W.safetensors --input X.npy --out DIR
      DIR/logits.npy (N, K) and DIR/features.npy (N, C): pooled, head-normed pre-logits
  reference.py grad  --arch A --weights W.safetensors --input X.npy --labels Y.npy --out DIR
      DIR/grads.safetensors: d mean-cross-entropy / d every parameter (timm names), drop path off, no
      label smoothing; DIR/loss.json {"loss": value}
  reference.py fcmae --arch A --weights W.safetensors --input X.npy --mask M.npy --out DIR [--norm-pix-loss 0|1]
      W holds FCMAE names (encoder.* + decoder); M is (N, H/32, W/32), 1 = remove.
      DIR/pred.npy (N, L, 3072), DIR/loss.json {"loss": value}
  reference.py features --arch A --weights W.safetensors --input X.npy --out DIR [--batch 16]
                       [--grid-block stages.2.blocks.5 --grid-image 0]
      W holds encoder weights (timm names; a head is ignored). DIR/features.json: per block, the cosine
      distance per image and dead/constant channel counts per batch (cnx_torch/analysis.py);
      DIR/grid.npy (1, C, h, w): the grid block's output for the grid image.
  reference.py gradcam --arch A --weights W.safetensors --input X.npy --out DIR [--labels Y.npy]
      Grad-CAM of the last stage's output A (before the head's pool and norm), by autograd.grad: the gradient
      of each image's class logit (Y, default its top-1) w.r.t. A; channel weights = its spatial mean;
      CAM = ReLU(sum_c w_c A_c) / max (all zeros when the max is 0). DIR/cam.npy (N, h, w),
      DIR/logits.npy (N, K), DIR/gradcam.json {"targets": [...], "camMax": [...]}
Common: --dtype float32|float64 (computation dtype; inputs are cast), --device cpu|cuda|auto (cuda when present).
Classifier weights may use timm or official names; the number of classes comes from head.fc.weight, the
decoder width and depth from proj.weight and decoder.<k>.*. Prints one JSON line naming the outputs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnx_torch.analysis import block_features  # noqa: E402
from cnx_torch.checkpoint import load_weights_file  # noqa: E402
from cnx_torch.fcmae import FCMAE  # noqa: E402
from cnx_torch.models import ConvNeXt, create_model, normalize_classifier_state  # noqa: E402
from cnx_torch.npy_io import load_npy, save_npy  # noqa: E402
from cnx_torch.safetensors_io import save_file  # noqa: E402

Tensor = torch.Tensor


def _classifier(arch: str, weights: Dict[str, Tensor]) -> ConvNeXt:
    probe = create_model(arch, num_classes=0)
    state = normalize_classifier_state(weights, probe)
    fc = state.get("head.fc.weight")
    model = create_model(arch, num_classes=int(fc.shape[0]) if fc is not None else 0)
    model.load_state_dict(state, strict=True)
    return model


def _fcmae(arch: str, weights: Dict[str, Tensor], norm_pix_loss: bool) -> FCMAE:
    if "proj.weight" not in weights:
        raise SystemExit("fcmae: the weights have no proj.weight; expected an FCMAE state dict")
    decoder_dim = int(weights["proj.weight"].shape[0])
    depth = len({k.split(".")[1] for k in weights if k.startswith("decoder.")})
    encoder = create_model(arch, num_classes=0, with_head=False)
    model = FCMAE(encoder, decoder_dim=decoder_dim, decoder_depth=depth, norm_pix_loss=norm_pix_loss)
    model.load_state_dict(weights, strict=True)
    return model


def _write_loss(out: str, loss: Tensor) -> str:
    path = os.path.join(out, "loss.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"loss": float(loss)}, f)
    return path


def _gradcam(model: ConvNeXt, x: Tensor, labels: Optional[str], out: str) -> List[str]:
    """Grad-CAM per image (see the module doc); returns the files written."""
    features = model.forward_features(x).detach().requires_grad_(True)
    logits = model.forward_head(features)
    if labels:
        targets = load_npy(labels).to(device=x.device, dtype=torch.int64)
    else:
        targets = logits.argmax(dim=1)
    picked = logits.gather(1, targets[:, None]).sum()  # images are independent: one backward gives every image's
    (grad,) = torch.autograd.grad(picked, features)
    weights = grad.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
    cam = torch.relu((weights * features).sum(dim=1)).detach()  # (N, h, w)
    peak = cam.flatten(1).max(dim=1).values
    scaled = torch.where(peak[:, None, None] > 0, cam / peak.clamp_min(torch.finfo(cam.dtype).tiny)[:, None, None],
                         torch.zeros_like(cam))
    files = [os.path.join(out, "cam.npy"), os.path.join(out, "logits.npy"), os.path.join(out, "gradcam.json")]
    save_npy(files[0], scaled)
    save_npy(files[1], logits.detach())
    with open(files[2], "w", encoding="utf-8") as f:
        json.dump({"targets": [int(t) for t in targets], "camMax": [float(p) for p in peak]}, f)
    return files


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="PyTorch reference outputs for parity tests")
    parser.add_argument("command", choices=["infer", "grad", "fcmae", "features", "gradcam"])
    parser.add_argument("--arch", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--input", required=True, help=".npy images (N, 3, H, W)")
    parser.add_argument("--labels", help=".npy int64 class ids (N,), for grad")
    parser.add_argument("--mask", help=".npy mask (N, H/32, W/32), 1 = remove, for fcmae")
    parser.add_argument("--norm-pix-loss", type=int, choices=[0, 1], default=1)
    parser.add_argument("--batch", type=int, default=16, help="images per forward pass, for features")
    parser.add_argument("--grid-block", help="features: the block whose map of --grid-image is saved")
    parser.add_argument("--grid-image", type=int, default=0)
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    os.makedirs(args.out, exist_ok=True)
    weights = load_weights_file(args.weights)
    x = load_npy(args.input).to(device=device, dtype=dtype)
    outputs: List[str] = []

    if args.command == "features":
        if args.batch < 1:
            parser.error("--batch must be positive")
        encoder = create_model(args.arch, num_classes=0, with_head=False)
        state = normalize_classifier_state(weights, encoder)
        encoder.load_state_dict({k: v for k, v in state.items() if not k.startswith("head.")}, strict=True)
        encoder.to(device=device, dtype=dtype)
        blocks, grid = block_features(encoder, x, args.batch, args.grid_block, args.grid_image)
        stats_path = os.path.join(args.out, "features.json")
        with open(stats_path, "w", encoding="utf-8") as f:
            json.dump({"blocks": [{"name": b.name, "distance": b.distance, "dead": b.dead, "constant": b.constant}
                                  for b in blocks]}, f)
        outputs.append(stats_path)
        if grid is not None:
            grid_path = os.path.join(args.out, "grid.npy")
            save_npy(grid_path, grid)
            outputs.append(grid_path)
    elif args.command == "fcmae":
        if not args.mask:
            parser.error("fcmae needs --mask")
        fcmae = _fcmae(args.arch, weights, bool(args.norm_pix_loss)).to(device=device, dtype=dtype).eval()
        mask = load_npy(args.mask).to(device=device, dtype=dtype)
        with torch.no_grad():
            result = fcmae(x, mask=mask)
        pred_path = os.path.join(args.out, "pred.npy")
        save_npy(pred_path, result.pred)
        outputs += [pred_path, _write_loss(args.out, result.loss)]
    else:
        model = _classifier(args.arch, weights).to(device=device, dtype=dtype).eval()  # eval(): drop path off
        if args.command == "gradcam":
            outputs += _gradcam(model, x, args.labels, args.out)
        elif args.command == "infer":
            with torch.no_grad():
                features = model.forward_features(x)
                pre_logits = model.forward_head(features, pre_logits=True)
                logits = model.forward_head(features)
            for name, tensor in (("logits", logits), ("features", pre_logits)):
                path = os.path.join(args.out, f"{name}.npy")
                save_npy(path, tensor)
                outputs.append(path)
        else:
            if not args.labels:
                parser.error("grad needs --labels")
            labels = load_npy(args.labels).to(device=device, dtype=torch.int64)
            loss = F.cross_entropy(model(x), labels)
            loss.backward()
            grads = {n: p.grad.detach() if p.grad is not None else torch.zeros_like(p)
                     for n, p in model.named_parameters()}
            grads_path = os.path.join(args.out, "grads.safetensors")
            save_file(grads, grads_path, {"loss": repr(float(loss))})
            outputs += [grads_path, _write_loss(args.out, loss)]
    print(json.dumps({"command": args.command, "outputs": outputs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
