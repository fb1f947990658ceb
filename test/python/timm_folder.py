"""Hugging Face / timm model folders for test/unit/hf-folder.test.ts, written and read the way timm does,
without timm (not installed here; the Debian PyTorch has no hub access either).

  timm_folder.py write DIR ARCH WEIGHTS   a timm-style folder: WEIGHTS (model.safetensors or pytorch_model.bin)
                                          of a random 3-class model, config.json as timm's save_config_for_hf
                                          lays it out; DIR/../x.npy (2, 3, 64, 64) and DIR/../logits.npy
  timm_folder.py load DIR X OUT           what timm.create_model('local-dir:DIR', pretrained=True) does:
                                          config.json -> architecture, num_classes (top level over
                                          pretrained_cfg), label_names; the first weights file in timm's order;
                                          the model built by name (our PyTorch reference, timm names) and loaded
                                          strictly; logits of X to OUT; prints label_names and pretrained_cfg
"""
import json
import os
import sys

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "native-worker", "torch"))
from cnx_torch.models import create_model  # noqa: E402
from cnx_torch.safetensors_io import load_file, save_file  # noqa: E402

from model_fixtures import randomize  # noqa: E402

PREFERRED = ("model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth")  # timm's order


def write(folder, arch, weights):
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(0)
    model = create_model(arch, num_classes=3)
    randomize(model, 4)
    state = model.state_dict()
    if weights.endswith(".safetensors"):
        save_file(state, os.path.join(folder, weights), {"format": "pt"})
    else:
        torch.save(state, os.path.join(folder, weights))
    config = {
        "architecture": arch, "num_classes": 3, "num_features": state["head.norm.weight"].shape[0], "global_pool": "avg",
        "label_names": ["cat", "dog", "bird"],
        "pretrained_cfg": {"input_size": [3, 64, 64], "crop_pct": 0.95, "interpolation": "bicubic",
                           "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "num_classes": 1000,
                           "first_conv": "stem.0", "classifier": "head.fc", "tag": "test"},
    }
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    x = torch.randn(2, 3, 64, 64)
    np.save(os.path.join(folder, "..", "x.npy"), x.numpy())
    with torch.no_grad():
        np.save(os.path.join(folder, "..", "logits.npy"), model.eval()(x).numpy())


def load(folder, x_path, out):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    pretrained_cfg = dict(cfg["pretrained_cfg"])
    if "num_classes" in cfg:
        pretrained_cfg["num_classes"] = cfg["num_classes"]
    if "label_names" in cfg:
        pretrained_cfg["label_names"] = cfg["label_names"]
    path = next(os.path.join(folder, n) for n in PREFERRED if os.path.exists(os.path.join(folder, n)))
    state = load_file(path) if path.endswith(".safetensors") else torch.load(path, map_location="cpu", weights_only=True)
    model = create_model(cfg["architecture"], num_classes=pretrained_cfg["num_classes"])
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        np.save(out, model.eval()(torch.from_numpy(np.load(x_path))).numpy())
    print(json.dumps({"weights": os.path.basename(path), "pretrained_cfg": pretrained_cfg}))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "load":
        load(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
