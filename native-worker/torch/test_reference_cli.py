"""reference.py, the oracle of the TypeScript engine's parity tests: its files and numbers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import unittest
from typing import List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from _testkit import HERE, PYTHON, randomize_  # noqa: E402
from cnx_torch.fcmae import create_fcmae, random_mask  # noqa: E402
from cnx_torch.models import ConvNeXt, create_model  # noqa: E402
from cnx_torch.npy_io import load_npy, save_npy  # noqa: E402
from cnx_torch.safetensors_io import load_file, save_file  # noqa: E402


class ReferenceCommands(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name
        torch.manual_seed(0)
        self.x = torch.randn(2, 3, 64, 64)
        save_npy(os.path.join(self.d, "x.npy"), self.x)

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def run_cli(self, args: List[str]) -> dict:
        proc = subprocess.run([PYTHON, os.path.join(HERE, "reference.py"), *args, "--out", os.path.join(self.d, "out")],
                              capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return json.loads(proc.stdout)

    def classifier(self) -> ConvNeXt:
        model = create_model("convnextv2_atto", num_classes=7)
        randomize_(model, 5)  # GRN away from identity
        save_file(model.state_dict(), os.path.join(self.d, "w.safetensors"))
        return model.eval()

    def test_infer_writes_logits_and_pre_logits(self) -> None:
        model = self.classifier()
        report = self.run_cli(["infer", "--arch", "convnextv2_atto", "--weights", os.path.join(self.d, "w.safetensors"),
                               "--input", os.path.join(self.d, "x.npy")])
        self.assertEqual(len(report["outputs"]), 2)
        logits = load_npy(os.path.join(self.d, "out", "logits.npy"))
        features = load_npy(os.path.join(self.d, "out", "features.npy"))
        with torch.no_grad():
            torch.testing.assert_close(logits, model(self.x))
            torch.testing.assert_close(features, model.forward_head(model.forward_features(self.x), pre_logits=True))
        self.assertEqual(features.shape, (2, 320))

    def test_grad_matches_autograd_in_float64(self) -> None:
        model = self.classifier().double()
        labels = torch.tensor([1, 6])
        save_npy(os.path.join(self.d, "y.npy"), labels)
        self.run_cli(["grad", "--arch", "convnextv2_atto", "--weights", os.path.join(self.d, "w.safetensors"),
                      "--input", os.path.join(self.d, "x.npy"), "--labels", os.path.join(self.d, "y.npy"),
                      "--dtype", "float64"])
        loss = F.cross_entropy(model(self.x.double()), labels)
        loss.backward()
        grads = load_file(os.path.join(self.d, "out", "grads.safetensors"))
        self.assertEqual(set(grads), {n for n, _ in model.named_parameters()})
        for name, p in model.named_parameters():
            self.assertEqual(grads[name].dtype, torch.float64)
            torch.testing.assert_close(grads[name], p.grad, rtol=1e-9, atol=1e-15, msg=name)
        with open(os.path.join(self.d, "out", "loss.json"), encoding="utf-8") as f:
            self.assertAlmostEqual(json.load(f)["loss"], float(loss), places=12)

    def test_fcmae_with_a_given_mask(self) -> None:
        torch.manual_seed(1)
        model = create_fcmae("convnextv2_atto", decoder_dim=32)
        randomize_(model, 6)
        save_file(model.state_dict(), os.path.join(self.d, "f.safetensors"))
        mask = random_mask(2, 2, 2, 0.6, generator=torch.Generator().manual_seed(0))
        save_npy(os.path.join(self.d, "m.npy"), mask)
        self.run_cli(["fcmae", "--arch", "convnextv2_atto", "--weights", os.path.join(self.d, "f.safetensors"),
                      "--input", os.path.join(self.d, "x.npy"), "--mask", os.path.join(self.d, "m.npy")])
        pred = load_npy(os.path.join(self.d, "out", "pred.npy"))
        self.assertEqual(pred.shape, (2, 4, 3072))
        with torch.no_grad():
            expected = model.eval()(self.x, mask=mask)
        torch.testing.assert_close(pred, expected.pred)
        with open(os.path.join(self.d, "out", "loss.json"), encoding="utf-8") as f:
            self.assertAlmostEqual(json.load(f)["loss"], float(expected.loss), places=5)


if __name__ == "__main__":
    unittest.main()
