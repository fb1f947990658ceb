"""Official FCMAE checkpoints on the PyTorch engine: main_pretrain.py's training checkpoint (sparse encoder,
decoder, optimizer, epoch, scaler, an argparse.Namespace) and a sparse encoder-only file start FCMAE and
fine-tuning runs with exactly our dense weights; a pickle asking for anything else runs nothing."""
from __future__ import annotations

import os
import sys
import tempfile
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "test", "python"))

import torch  # noqa: E402

import model_fixtures  # noqa: E402
from cnx_torch import checkpoint as ckpt  # noqa: E402
from cnx_torch.fcmae import FCMAE  # noqa: E402
from cnx_torch.job import load_classifier_weights, load_fcmae_weights  # noqa: E402
from cnx_torch.models import create_model  # noqa: E402
from cnx_torch.safetensors_io import load_with_metadata  # noqa: E402


class Log:
    def __init__(self) -> None:
        self.lines: list = []

    def log(self, message: str, *_: object, **__: object) -> None:
        self.lines.append(message)


class OfficialFcmae(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        model_fixtures.write_sparse(cls.tmp.name, "convnextv2_atto")
        cls.ours = load_with_metadata(os.path.join(cls.tmp.name, "fcmae512.safetensors"))[0]

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def path(self, name: str) -> str:
        return os.path.join(self.tmp.name, name)

    def test_training_checkpoint_starts_pretraining_with_encoder_and_decoder(self) -> None:
        model, log = FCMAE(create_model("convnextv2_atto", with_head=False)), Log()
        load_fcmae_weights(model, self.path("sparse-train.pth"), log)
        for key, value in model.state_dict().items():
            self.assertTrue(torch.equal(value, self.ours[key]), key)
        self.assertIn("initialised encoder and decoder", log.lines[-1])

    def test_encoder_only_file_starts_finetuning(self) -> None:
        model, log = create_model("convnextv2_atto", num_classes=4), Log()
        load_classifier_weights(model, self.path("sparse-encoder.pth"), log, strict_head=False)
        for key, value in model.state_dict().items():
            if not key.startswith("head."):
                self.assertTrue(torch.equal(value, self.ours[f"encoder.{key}"].reshape(value.shape)), key)
        self.assertIn("trained from scratch: head.norm.weight", log.lines[-1])

    def test_a_global_outside_the_allowlist_is_refused_unrun(self) -> None:
        marker = self.path("pwned")
        payload = b"\x80\x02}X\x05\x00\x00\x00modelcos\nsystem\nX" + len(f"touch {marker}").to_bytes(4, "little") \
            + f"touch {marker}".encode() + b"\x85Rs."
        evil = self.path("evil.pt")
        with zipfile.ZipFile(evil, "w") as z:
            z.writestr("archive/data.pkl", payload)
        with self.assertRaisesRegex(ckpt.CheckpointError, "cannot load as PyTorch weights"):
            ckpt.load_weights_file(evil)
        self.assertFalse(os.path.exists(marker))


if __name__ == "__main__":
    unittest.main()
