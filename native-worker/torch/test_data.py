"""Data: manifest validation, transforms, reproducible and resumable batch order."""
from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from _testkit import write_manifest  # noqa: E402
from cnx_torch.augment import default_augment  # noqa: E402
from cnx_torch.data import (IMAGENET_MEAN, IMAGENET_STD, EpochBatchSampler, ImageDataset,  # noqa: E402
                            ManifestError, eval_transform, load_manifest, normalize, random_resized_crop_box)


class ManifestValidation(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.path = write_manifest(self.dir.name, count=6)
        with open(self.path, encoding="utf-8") as f:
            self.raw = json.load(f)

    def tearDown(self) -> None:
        self.dir.cleanup()

    def rewrite(self, **changes: object) -> None:
        with open(self.path, "w", encoding="utf-8") as f:
            json.dump({**self.raw, **changes}, f)

    def test_reads_items_with_absolute_paths(self) -> None:
        manifest = load_manifest(self.path)
        self.assertEqual(manifest.classes, ("a", "b", "c"))
        self.assertEqual(len(manifest.items), 6)
        self.assertTrue(all(os.path.isfile(it.path) for it in manifest.items))
        self.assertEqual(len(manifest.split("val")), 1)  # items 3, 7, 11, ... are validation

    def test_errors_name_the_item(self) -> None:
        items = [dict(it) for it in self.raw["items"]]
        items[2]["label"] = 7
        self.rewrite(items=items)
        with self.assertRaisesRegex(ManifestError, r"items\[2\].*label"):
            load_manifest(self.path)
        items[2] = {**items[2], "label": 0, "split": "holdout"}
        self.rewrite(items=items)
        with self.assertRaisesRegex(ManifestError, r"items\[2\].*split"):
            load_manifest(self.path)
        self.rewrite(version=2)
        with self.assertRaisesRegex(ManifestError, "version"):
            load_manifest(self.path)
        self.rewrite(root="relative/dir")
        with self.assertRaisesRegex(ManifestError, "root"):
            load_manifest(self.path)


class Transforms(unittest.TestCase):
    def test_grayscale_and_palette_images_become_rgb_crops(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            manifest = load_manifest(write_manifest(d, count=4))
            dataset = ImageDataset(manifest.items, 32, default_augment("finetune"), seed=0)
            for i in range(4):
                x, label, boxes = dataset[(0, i)]
                self.assertEqual((x.shape, x.dtype), ((3, 32, 32), torch.uint8))
                self.assertEqual(boxes.shape, (1, 4))
                self.assertEqual(label, manifest.items[i].label)
            self.assertTrue(torch.equal(dataset[(0, 1)][0], dataset[(0, 1)][0]))  # same key, same crop
            self.assertFalse(torch.equal(dataset[(0, 1)][0], dataset[(1, 1)][0]))  # new epoch, new crop

    def test_random_resized_crop_stays_inside_and_respects_scale(self) -> None:
        rng = random.Random(0)
        for _ in range(200):
            left, top, w, h = random_resized_crop_box(120, 80, (0.2, 1.0), rng)
            self.assertTrue(0 <= left and left + w <= 120 and 0 <= top and top + h <= 80)
            self.assertGreaterEqual(w * h, 0.2 * 120 * 80 * 0.9)  # rounding of w and h

    def test_eval_resizes_then_centre_crops(self) -> None:
        img = Image.new("RGB", (128, 64), (0, 0, 0))
        img.paste((255, 255, 255), (48, 16, 80, 48))  # a white square in the middle
        x = eval_transform(img, 32)  # short side -> 36, 72x36, crop 32x32 at (20, 2)
        self.assertEqual(x.shape, (3, 32, 32))
        self.assertEqual(int(x[0, 16, 16]), 255)
        self.assertEqual(int(x[0, 16, 0]), 0)

    def test_normalize_uses_imagenet_statistics(self) -> None:
        batch = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
        x = normalize(batch, torch.device("cpu"), channels_last=True)
        expected = torch.tensor([(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)])
        torch.testing.assert_close(x[0, :, 0, 0], expected)
        self.assertTrue(x.is_contiguous(memory_format=torch.channels_last))


class BatchOrder(unittest.TestCase):
    def test_resuming_mid_epoch_continues_the_same_sequence(self) -> None:
        sampler = EpochBatchSampler(10, 3, seed=4)  # 3 full batches per epoch, 1 image dropped
        it = iter(sampler)
        straight = [next(it) for _ in range(8)]
        self.assertEqual([b[0][0] for b in straight], [0, 0, 0, 1, 1, 1, 2, 2])
        self.assertEqual(len({i for _, i in sum(straight[:3], [])}), 9)
        resumed = iter(EpochBatchSampler(10, 3, seed=4, start_batch=5))
        self.assertEqual([next(resumed) for _ in range(3)], straight[5:8])

    def test_too_few_images_for_a_batch(self) -> None:
        with self.assertRaisesRegex(ValueError, "fewer than one batch"):
            EpochBatchSampler(3, 4, seed=0)


if __name__ == "__main__":
    unittest.main()
