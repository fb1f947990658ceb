"""Prints the PyTorch engine's recipe rules as JSON, for test/unit/recipes.test.ts (same rules, two engines)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "native-worker", "torch"))
import torch  # noqa: E402
from cnx_torch import recipes  # noqa: E402
from cnx_torch.fcmae import FCMAE  # noqa: E402
from cnx_torch.models import create_model  # noqa: E402

out = {}
ARCHS = ["convnextv2_atto", "convnextv2_femto", "convnextv2_pico", "convnextv2_nano", "convnextv2_tiny", "convnextv2_base",
         "convnextv2_large", "convnextv2_huge", "convnext_atto", "convnext_tiny", "convnext_base", "convnext_large"]
for arch in ARCHS:
    model = create_model(arch, num_classes=10)
    depths = list(model.depths) if hasattr(model, "depths") else None
    decay_type = recipes.default_layer_decay_type(arch)
    names = [n for n, _ in model.named_parameters()]
    d = [len(s.blocks) for s in model.stages]
    out[arch] = {
        "layerDecayType": decay_type,
        "layerIds": {n: recipes.layer_id(n, d, decay_type) for n in names},
        "noDecay": sorted(n for n, p in model.named_parameters() if recipes.skips_weight_decay(n, p)),
    }
fcmae = FCMAE(create_model("convnextv2_atto", with_head=False))
out["fcmaeNoDecay"] = sorted(n for n, p in fcmae.named_parameters() if recipes.skips_weight_decay(n, p))
out["lr"] = [recipes.lr_at(s, 1e-3, 5, 20, 1e-5) for s in range(22)]
print(json.dumps(out))
