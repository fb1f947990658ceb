"""Shared helpers of the PyTorch-engine tests: the independent reference, tiny image manifests, job runs."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from types import ModuleType
from typing import Any, Dict, List, Optional, Tuple

import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EAGER_REFERENCE = os.path.join(REPO, "test", "python", "eager_convnext.py")
PYTHON = sys.executable

Tensor = torch.Tensor


def eager_reference() -> ModuleType:
    """The tests' independent eager ConvNeXt / FCMAE (test/python/eager_convnext.py): functions over tensors
    named as timm names them, sharing no code with cnx_torch."""
    spec = importlib.util.spec_from_file_location("cnx_eager_reference", EAGER_REFERENCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def to_model_layout(params: Dict[str, Tensor], conv_mlp: bool) -> Dict[str, Tensor]:
    """The reference's tensors as our model's state dict: with conv_mlp, the encoder's MLP Linear weights
    (out, in) become 1x1 conv weights (out, in, 1, 1)."""
    out: Dict[str, Tensor] = {}
    for name, value in params.items():
        if conv_mlp and not name.startswith("decoder.") and (name.endswith("mlp.fc1.weight") or name.endswith("mlp.fc2.weight")):
            value = value.reshape(*value.shape, 1, 1)
        out[name] = value.detach()
    return out


def randomize_(module: torch.nn.Module, seed: int) -> None:
    """Moves zero/one-initialised parameters (GRN, layer scale, norms, mask token) away from identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
            leaf = name.split(".")[-1]
            if leaf in ("gamma", "beta", "mask_token"):
                p.copy_(0.5 * noise)
            elif leaf == "weight" and p.ndim == 1:  # LayerNorm scales
                p.add_(0.1 * noise)
            elif leaf == "bias":
                p.copy_(0.05 * noise)


def write_manifest(folder: str, count: int = 12, classes: Tuple[str, ...] = ("a", "b", "c"),
                   val_every: int = 4, labeled: bool = True) -> str:
    """PNG images of varied sizes and modes (RGB, grayscale, palette) and a version-1 manifest; returns its path."""
    root = os.path.join(folder, "images")
    os.makedirs(root, exist_ok=True)
    items: List[Dict[str, Any]] = []
    g = torch.Generator().manual_seed(7)
    for i in range(count):
        label = i % len(classes)
        w, h = 40 + 8 * (i % 4), 36 + 6 * (i % 5)
        pixels = (torch.rand(h, w, 3, generator=g) * 120 + 60 * label).clamp(0, 255).to(torch.uint8)
        img = Image.frombytes("RGB", (w, h), bytes(pixels.flatten().tolist()))
        if i % 4 == 1:
            img = img.convert("L")
        elif i % 4 == 2:
            img = img.convert("P")
        rel = os.path.join(classes[label], f"{i}.png")
        os.makedirs(os.path.join(root, classes[label]), exist_ok=True)
        img.save(os.path.join(root, rel))
        split = "val" if i % val_every == val_every - 1 else "train"
        items.append({"path": rel, "label": label if labeled else None, "split": split})
    manifest = {"version": 1, "dataset": "tiny", "createdAt": "2024-01-01T00:00:00Z", "root": root,
                "classes": list(classes), "items": items, "hash": "sha256:test"}
    path = os.path.join(folder, "manifest.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f)
    return path


def job_config(kind: str, run_dir: str, manifest: str, **overrides: Any) -> Dict[str, Any]:
    """A small, fast config: atto at 64 px, batch 4, a few steps on the CPU."""
    cfg: Dict[str, Any] = {
        "version": 1, "kind": kind, "runDir": run_dir,
        "model": {"arch": "convnextv2_atto", "numClasses": 3, "dropPathRate": 0.1, "headInitScale": 1.0,
                  "inputSize": 64},
        "fcmae": {"maskRatio": 0.6, "patchSize": 32, "decoderDim": 32, "decoderDepth": 1, "normPixLoss": True},
        "data": {"manifest": manifest, "batchSize": 4, "workers": 0, "seed": 3},
        "optim": {"lr": 1e-3, "weightDecay": 0.05, "betas": [0.9, 0.95], "eps": 1e-8, "layerDecay": None,
                  "clipGrad": None, "warmupSteps": 1, "totalSteps": 3, "minLr": 0.0, "accumSteps": 1,
                  "labelSmoothing": 0.0, "mixup": 0.0, "cutmix": 0.0, "emaDecay": None},
        "init": {"weights": None}, "resume": None, "device": "cpu", "precision": "fp32",
        "channelsLast": True, "compile": False, "checkpointEverySteps": 2, "evalEverySteps": None,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def run_job(cfg: Dict[str, Any], folder: str, name: str = "job.json") -> Tuple[int, List[Dict[str, Any]], str]:
    """Runs run_job.py in a child process like the app does; returns (exit code, events, stderr)."""
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    proc = subprocess.run([PYTHON, os.path.join(HERE, "run_job.py"), path], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return proc.returncode, parse_events(proc.stdout), proc.stderr


def parse_events(stdout: str) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def of_type(events: List[Dict[str, Any]], type_: str) -> List[Dict[str, Any]]:
    return [e for e in events if e["type"] == type_]


def first(events: List[Dict[str, Any]], type_: str) -> Optional[Dict[str, Any]]:
    found = of_type(events, type_)
    return found[0] if found else None
