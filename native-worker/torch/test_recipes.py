"""Recipes: lr scaling and schedule, layer-wise decay ids, weight-decay groups, EMA, losses, mixup/cutmix."""
from __future__ import annotations

import math
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnx_torch.fcmae import create_fcmae  # noqa: E402
from cnx_torch.models import create_model  # noqa: E402
from cnx_torch.recipes import (MixupCutmix, ModelEma, classification_loss, default_layer_decay_type,  # noqa: E402
                               layer_id, layer_scales, lr_at, param_groups)

ATTO = (2, 2, 6, 2)
BASE = (3, 3, 27, 3)


class Tables(unittest.TestCase):
    def test_default_layer_decay_type_follows_depth(self) -> None:
        self.assertEqual(default_layer_decay_type("convnextv2_large"), "group")
        self.assertEqual(default_layer_decay_type("convnext_small"), "group")
        self.assertEqual(default_layer_decay_type("convnextv2_nano"), "single")
        self.assertEqual(default_layer_decay_type("convnextv2_tiny"), "single")


class Schedule(unittest.TestCase):
    def test_warmup_then_cosine(self) -> None:
        self.assertEqual(lr_at(0, 1.0, 10, 110), 0.0)
        self.assertAlmostEqual(lr_at(5, 1.0, 10, 110), 0.5)
        self.assertAlmostEqual(lr_at(10, 1.0, 10, 110), 1.0)
        self.assertAlmostEqual(lr_at(60, 1.0, 10, 110), 0.5)  # half way down the cosine
        self.assertAlmostEqual(lr_at(35, 1.0, 10, 110, min_lr=0.1), 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
        self.assertAlmostEqual(lr_at(110, 1.0, 10, 110, min_lr=0.1), 0.1)
        self.assertAlmostEqual(lr_at(0, 2.0, 0, 100), 2.0)  # no warmup starts at the peak


class LayerDecay(unittest.TestCase):
    def test_single_rule_follows_the_official_ids(self) -> None:
        self.assertEqual(layer_id("stem.0.weight", ATTO, "single"), 1)
        self.assertEqual(layer_id("stages.0.blocks.0.conv_dw.weight", ATTO, "single"), 1)
        self.assertEqual(layer_id("stages.0.blocks.1.mlp.fc1.weight", ATTO, "single"), 2)
        self.assertEqual(layer_id("stages.1.downsample.1.weight", ATTO, "single"), 3)
        self.assertEqual(layer_id("stages.2.blocks.5.norm.weight", ATTO, "single"), 2 + 2 + 5 + 1)
        self.assertEqual(layer_id("stages.3.blocks.1.mlp.fc2.bias", ATTO, "single"), 12)
        self.assertEqual(layer_id("head.fc.weight", ATTO, "single"), 13)
        scales = layer_scales(0.9, ATTO, "single")
        self.assertEqual(len(scales), 14)
        self.assertAlmostEqual(scales[13], 1.0)
        self.assertAlmostEqual(scales[1], 0.9 ** 12)

    def test_group_rule_makes_twelve_groups_for_base(self) -> None:
        ids = {layer_id(n, BASE, "group") for n, _ in create_model("convnextv2_base").named_parameters()}
        self.assertEqual(ids, set(range(14)))  # stem 0, 12 groups, head 13
        self.assertEqual(layer_id("stem.1.bias", BASE, "group"), 0)
        self.assertEqual(layer_id("stages.1.downsample.0.weight", BASE, "group"), 2)
        self.assertEqual(layer_id("stages.2.downsample.1.weight", BASE, "group"), 3)
        self.assertEqual(layer_id("stages.2.blocks.2.conv_dw.weight", BASE, "group"), 3)
        self.assertEqual(layer_id("stages.2.blocks.26.conv_dw.weight", BASE, "group"), 11)
        self.assertEqual(layer_id("stages.3.downsample.1.weight", BASE, "group"), 12)
        self.assertAlmostEqual(layer_scales(0.6, BASE, "group")[0], 0.6 ** 13)

    def test_groups_carry_the_scale_into_the_lr(self) -> None:
        model = create_model("convnextv2_atto", num_classes=3)
        groups = param_groups(model.named_parameters(), 0.05, layer_decay=0.9, depths=ATTO, layer_decay_type="single")
        by_name = {n: g for g in groups for n in g["names"]}
        self.assertAlmostEqual(by_name["stem.0.weight"]["lr_scale"], 0.9 ** 12)
        self.assertAlmostEqual(by_name["head.fc.weight"]["lr_scale"], 1.0)
        self.assertEqual(sum(len(g["params"]) for g in groups), len(list(model.parameters())))


class WeightDecay(unittest.TestCase):
    def test_exclusions(self) -> None:
        fcmae = create_fcmae("convnextv2_atto", decoder_dim=32)
        groups = param_groups(fcmae.named_parameters(), 0.05)
        decay = {n for g in groups if g["weight_decay"] > 0 for n in g["names"]}
        no_decay = {n for g in groups if g["weight_decay"] == 0 for n in g["names"]}
        for name in ("encoder.stages.0.blocks.0.mlp.grn.weight", "encoder.stages.0.blocks.0.mlp.grn.bias",
                     "encoder.stem.1.weight", "encoder.stem.0.bias", "decoder.0.grn.gamma", "decoder.0.grn.beta",
                     "mask_token", "proj.bias"):
            self.assertIn(name, no_decay)
        for name in ("encoder.stem.0.weight", "encoder.stages.0.blocks.0.mlp.fc1.weight", "proj.weight",
                     "decoder.0.pwconv1.weight", "pred.weight", "encoder.stages.1.blocks.0.conv_dw.weight"):
            self.assertIn(name, decay)
        v1 = create_model("convnext_atto")
        no_decay_v1 = {n for g in param_groups(v1.named_parameters(), 0.05) if g["weight_decay"] == 0
                       for n in g["names"]}
        self.assertIn("stages.0.blocks.0.gamma", no_decay_v1)


class Ema(unittest.TestCase):
    def test_update_is_an_exponential_average(self) -> None:
        model = torch.nn.Linear(2, 2)
        ema = ModelEma(model, 0.9)
        start = model.weight.detach().clone()
        with torch.no_grad():
            model.weight.add_(1.0)
        ema.update(model)
        torch.testing.assert_close(ema.module.weight, start + 0.1)
        self.assertFalse(ema.module.weight.requires_grad)


class Losses(unittest.TestCase):
    def test_label_smoothing_and_soft_targets(self) -> None:
        torch.manual_seed(0)
        logits, target = torch.randn(4, 5), torch.tensor([0, 2, 4, 1])
        smooth = torch.full((4, 5), 0.1 / 5).scatter_(1, target[:, None], 0.9 + 0.1 / 5)
        expected = -(smooth * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
        torch.testing.assert_close(classification_loss(logits, target, 0.1), expected)
        torch.testing.assert_close(classification_loss(logits, smooth), expected)

    def test_mixup_and_cutmix_targets_follow_the_mixed_area(self) -> None:
        x = torch.zeros(4, 3, 32, 32)
        x[1] = 1.0
        target = torch.tensor([0, 1, 2, 3])
        mixed, soft = MixupCutmix(0.0, 1.0, 4)(x, target, random.Random(5))
        self.assertTrue(torch.allclose(soft.sum(dim=1), torch.ones(4)))
        # Sample 2 is paired with sample 1 (reversed batch): its pasted area is the share of class 1.
        pasted = float(mixed[2, 0].mean())
        self.assertTrue(0 < pasted < 1)
        self.assertAlmostEqual(float(soft[2, 1]), pasted, places=6)
        self.assertAlmostEqual(float(soft[2, 2]), 1 - pasted, places=6)
        mixed, soft = MixupCutmix(0.8, 0.0, 4, label_smoothing=0.1)(x, target, random.Random(1))
        lam = 1 - float(mixed[2, 0, 0, 0])
        self.assertTrue(0 < lam < 1)
        self.assertAlmostEqual(float(soft[2, 2]), lam * (0.9 + 0.025) + (1 - lam) * 0.025, places=6)
        self.assertTrue(torch.allclose(soft.sum(dim=1), torch.ones(4)))


if __name__ == "__main__":
    unittest.main()
