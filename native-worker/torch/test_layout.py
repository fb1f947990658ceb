"""The PyTorch engine's state dicts against the one ConvNeXt layout (common/layout.ts), on every variant.

The layout is read from the TypeScript function itself (through node), so the two engines cannot drift.
Models are built without drawing initial values (only names and shapes matter), which keeps the 660M-parameter
huge cheap: its weights are allocated, never touched.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch.nn as nn  # noqa: E402

from _testkit import REPO  # noqa: E402
from cnx_torch.fcmae import FCMAE  # noqa: E402
from cnx_torch.models import ConvNeXt, create_model  # noqa: E402

# Every architecture of the variant table with its layout: a 1000-class classifier, and for V2 the FCMAE model.
LAYOUTS_JS = """
import { convnextLayout } from './common/layout.ts';
import { VARIANTS, parseArch, timmModelName } from './common/variants.ts';
const out = {};
for (const v of VARIANTS) for (const version of v.versions) {
  const arch = parseArch(timmModelName(v.name, version));
  const entries = (o) => convnextLayout({ arch, ...o }).map((p) => [p.name, p.shape]);
  out[arch.name] = { classifier: entries({ head: true, numClasses: 1000 }), fcmae: arch.v2 ? entries({ head: false, numClasses: 0, decoder: {} }) : null };
}
console.log(JSON.stringify(out));
"""


def typescript_layouts(case: unittest.TestCase) -> dict:
    node = shutil.which("node")
    if node is None:
        reason = "node is not on PATH: cannot read common/layout.ts"
        if os.environ.get("CI") == "true":
            case.fail(reason)
        case.skipTest(reason)
    r = subprocess.run([node, "--import", "tsx", "--input-type=module", "-e", LAYOUTS_JS], cwd=REPO,
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        case.fail(f"node could not print the layouts: {r.stderr}")
    return json.loads(r.stdout)


def shapes(module: nn.Module) -> list:
    return [[k, list(v.shape)] for k, v in module.state_dict().items()]


def without_init():
    """Patches out every initializer the models run: parameters are allocated (torch.empty), never filled."""
    none = lambda *args, **kwargs: None  # noqa: E731
    return [mock.patch.object(nn.Conv2d, "reset_parameters", none), mock.patch.object(nn.Linear, "reset_parameters", none),
            mock.patch.object(ConvNeXt, "_init_weights", none), mock.patch.object(FCMAE, "_init_decoder", none)]


class LayoutAgreement(unittest.TestCase):
    def test_state_dicts_match_the_layout_on_every_variant(self) -> None:
        layouts = typescript_layouts(self)
        self.assertIn("convnext_tiny", layouts)
        patches = without_init()
        for p in patches:
            p.start()
        try:
            for arch, layout in layouts.items():
                with self.subTest(arch=arch):
                    # Same names, shapes and order: both follow torch's state_dict() order.
                    self.assertEqual(shapes(create_model(arch, num_classes=1000)), layout["classifier"])
                    if layout["fcmae"] is not None:
                        fcmae = FCMAE(create_model(arch, with_head=False))
                        self.assertEqual(dict(map(tuple, shapes(fcmae))), dict(map(tuple, layout["fcmae"])))
        finally:
            for p in patches:
                p.stop()


if __name__ == "__main__":
    unittest.main()
