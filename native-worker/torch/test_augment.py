"""data.augment: parsing and defaults by job kind, timm policy strings, pad-crop, and the erasing boxes and
fill. The cross-engine statistics are test/unit/augment-parity.test.ts."""
from __future__ import annotations

import math
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from _testkit import job_config  # noqa: E402
from cnx_torch.augment import Augment, apply_erasing, erase_boxes, parse_rand_augment  # noqa: E402
from cnx_torch.config import ConfigError, parse_job_config  # noqa: E402
from cnx_torch.data import pad_crop  # noqa: E402

MANIFEST = os.path.abspath(__file__)  # any absolute path: parsing does not open it


class Config(unittest.TestCase):
    def test_defaults_follow_the_job_kind(self) -> None:
        ft = parse_job_config(job_config("finetune", "/tmp/run", MANIFEST)).data.augment
        self.assertEqual((ft.scale, ft.rand_augment, ft.reprob, ft.remode), ((0.08, 1.0), "rand-m9-mstd0.5-inc1", 0.25, "pixel"))
        pre = parse_job_config(job_config("pretrain", "/tmp/run", MANIFEST)).data.augment
        self.assertEqual((pre.scale, pre.rand_augment, pre.reprob), ((0.2, 1.0), None, 0.0))

    def test_given_fields_win_and_bad_ones_are_named(self) -> None:
        raw = job_config("finetune", "/tmp/run", MANIFEST, data={"augment": {"padCrop": 4, "randAugment": None, "recount": 3}})
        aug = parse_job_config(raw).data.augment
        self.assertEqual((aug.pad_crop, aug.rand_augment, aug.recount, aug.reprob), (4, None, 3, 0.25))
        for bad, field in (({"randAugment": "rand-m9-w0"}, "data.augment.randAugment"), ({"scale": [0.5, 0.1]}, "data.augment.scale"),
                           ({"remode": "noise"}, "data.augment.remode"), ({"flip": 0.5}, "data.augment")):
            with self.assertRaises(ConfigError) as ctx:
                parse_job_config(job_config("finetune", "/tmp/run", MANIFEST, data={"augment": bad}))
            self.assertTrue(ctx.exception.field.startswith(field), ctx.exception.field)


class Policies(unittest.TestCase):
    def test_timm_strings(self) -> None:
        p = parse_rand_augment("rand-m9-mstd0.5-inc1")
        self.assertEqual((p.layers, p.magnitude, p.magnitude_std, p.prob, p.increasing), (2, 9.0, 0.5, 0.5, True))
        q = parse_rand_augment("rand-n3-m5-mstd101-mmax7-p0.7")
        self.assertEqual((q.layers, q.magnitude, math.isinf(q.magnitude_std), q.magnitude_max, q.prob, q.increasing),
                         (3, 5.0, True, 7.0, 0.7, False))
        for bad in ("augmix-m5", "rand-m9-x1", "rand-n0", "rand-p2"):
            with self.assertRaises(ValueError):
                parse_rand_augment(bad)


class PadCropAndErasing(unittest.TestCase):
    def test_pad_crop_shifts_by_at_most_the_padding_and_fills_black(self) -> None:
        img = Image.new("RGB", (16, 16), (200, 200, 200))
        seen = set()
        for seed in range(200):
            out = torch.frombuffer(bytearray(pad_crop(img, 16, 2, random.Random(seed)).tobytes()), dtype=torch.uint8)
            grey = out.reshape(16, 16, 3)[:, :, 0] == 200
            rows, cols = int(grey.any(1).sum()), int(grey.any(0).sum())
            self.assertTrue(14 <= rows <= 16 and 14 <= cols <= 16)
            self.assertEqual(int(grey.sum()), rows * cols)  # the picture stays one rectangle, the rest black
            seen.add((rows, cols))
        self.assertEqual(len(seen), 9)  # every shift of -2..2 each way leaves 14, 15 or 16 rows and columns

    def test_erasing_boxes_and_fill(self) -> None:
        aug = Augment(scale=(0.08, 1.0), ratio=(0.75, 4 / 3), hflip=0.5, pad_crop=None, rand_augment=None, reprob=1.0,
                      remode="rand", recount=3)
        boxes = torch.stack([erase_boxes(32, aug, random.Random(s)) for s in range(300)])  # (300, 3, 4)
        used = (boxes[:, :, 2] > 0).sum(1)
        self.assertEqual(set(used.tolist()), {1, 2, 3})
        self.assertTrue(bool(((boxes[:, :, 0] + boxes[:, :, 2]) <= 32).all()))
        x = torch.zeros(300, 3, 32, 32)
        apply_erasing(x, boxes, "rand", lambda i: torch.Generator().manual_seed(i))
        t, l, h, w = boxes[0, 0].tolist()
        patch = x[0, :, t:t + h, l:l + w]
        self.assertTrue(bool((patch == patch[:, :1, :1]).all()))  # one colour per channel
        self.assertNotEqual(float(patch.abs().sum()), 0.0)


if __name__ == "__main__":
    unittest.main()
