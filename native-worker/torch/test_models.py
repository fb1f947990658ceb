"""ConvNeXt V1/V2: sizes, timm parameter names and shapes, init, and agreement with the independent reference."""
from __future__ import annotations

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from _testkit import eager_reference, randomize_, to_model_layout  # noqa: E402
from cnx_torch.models import (ConvNeXt, count_parameters, create_model, global_response_norm,  # noqa: E402
                              normalize_classifier_state, official_to_timm, parse_arch)

# The papers' parameter counts (millions, 1000 classes) as printed there, so rounding is to that digit.
PAPER_PARAMS = {"convnextv2_atto": (3.7, 0.05), "convnextv2_femto": (5.2, 0.05), "convnextv2_pico": (9.1, 0.05),
                "convnextv2_nano": (15.6, 0.05), "convnextv2_tiny": (28.6, 0.05), "convnextv2_base": (89, 0.5)}


def tiny_model(version: int, conv_mlp: bool, num_classes: int = 5) -> ConvNeXt:
    """One-to-two blocks per stage at small widths: every code path of a real variant, cheap to run."""
    return ConvNeXt((1, 1, 2, 1), (8, 16, 24, 32), use_grn=version == 2, conv_mlp=conv_mlp,
                    ls_init_value=None if version == 2 else 1e-6, num_classes=num_classes)


class ParameterCounts(unittest.TestCase):
    def test_v2_counts_match_the_paper(self) -> None:
        for arch, (millions, tol) in PAPER_PARAMS.items():
            with self.subTest(arch=arch):
                n = count_parameters(create_model(arch))
                self.assertAlmostEqual(n / 1e6, millions, delta=tol)

    def test_v1_tiny_is_smaller_by_grn_minus_layer_scale(self) -> None:
        v1 = count_parameters(create_model("convnext_tiny"))
        v2 = count_parameters(create_model("convnextv2_tiny"))
        spec = parse_arch("convnext_tiny")
        grn = sum(d * 2 * 4 * dim for d, dim in zip(spec.depths, spec.dims))  # weight + bias of 4C per block
        layer_scale = sum(d * dim for d, dim in zip(spec.depths, spec.dims))
        self.assertEqual(v2 - v1, grn - layer_scale)
        self.assertAlmostEqual(v1 / 1e6, 28.6, delta=0.05)  # timm's convnext_tiny: 28.59M

    def test_unknown_architectures_name_the_choices(self) -> None:
        with self.assertRaisesRegex(ValueError, "convnextv2_atto"):
            parse_arch("convnextv2_gigantic")
        with self.assertRaisesRegex(ValueError, "convnext_large"):
            parse_arch("convnext_huge")  # no V1 huge in timm or the paper
        with self.assertRaises(ValueError):
            parse_arch("resnet50")


class TimmNaming(unittest.TestCase):
    def test_atto_keys_and_conv_mlp_shapes(self) -> None:
        state = create_model("convnextv2_atto", num_classes=10).state_dict()
        self.assertEqual(state["stem.0.weight"].shape, (40, 3, 4, 4))
        self.assertEqual(state["stem.1.weight"].shape, (40,))
        self.assertNotIn("stages.0.downsample.0.weight", state)
        self.assertEqual(state["stages.1.downsample.0.weight"].shape, (40,))
        self.assertEqual(state["stages.1.downsample.1.weight"].shape, (80, 40, 2, 2))
        self.assertEqual(state["stages.2.blocks.5.conv_dw.weight"].shape, (160, 1, 7, 7))
        self.assertEqual(state["stages.0.blocks.1.mlp.fc1.weight"].shape, (160, 40, 1, 1))
        self.assertEqual(state["stages.0.blocks.1.mlp.fc2.weight"].shape, (40, 160, 1, 1))
        self.assertEqual(state["stages.3.blocks.1.mlp.grn.weight"].shape, (1280,))
        self.assertEqual(state["stages.3.blocks.1.mlp.grn.bias"].shape, (1280,))
        self.assertEqual(state["head.norm.weight"].shape, (320,))
        self.assertEqual(state["head.fc.weight"].shape, (10, 320))
        self.assertFalse(any(k.endswith(".gamma") for k in state))
        self.assertEqual(len(state), 2 * 2 + 3 * 2 * 2 + 12 * 10 + 4)  # stem, downsamplers, 12 blocks, head

    def test_tiny_uses_linear_layers_on_nhwc(self) -> None:
        state = create_model("convnextv2_tiny", num_classes=0).state_dict()
        self.assertEqual(state["stages.0.blocks.0.mlp.fc1.weight"].shape, (384, 96))
        self.assertEqual(state["stages.0.blocks.0.mlp.fc2.weight"].shape, (96, 384))
        self.assertIn("head.norm.weight", state)
        self.assertNotIn("head.fc.weight", state)

    def test_v1_has_layer_scale_and_no_grn(self) -> None:
        state = create_model("convnext_atto").state_dict()
        self.assertEqual(state["stages.2.blocks.0.gamma"].shape, (160,))
        self.assertTrue(torch.all(state["stages.2.blocks.0.gamma"] == 1e-6))
        self.assertFalse(any(".grn." in k for k in state))

    def test_init(self) -> None:
        torch.manual_seed(0)
        model = create_model("convnextv2_atto", num_classes=100, head_init_scale=0.001)
        state = model.state_dict()
        self.assertTrue(torch.all(state["stages.0.blocks.0.mlp.grn.weight"] == 0))
        self.assertTrue(torch.all(state["stages.0.blocks.0.mlp.fc1.bias"] == 0))
        self.assertAlmostEqual(float(state["stages.2.blocks.0.mlp.fc1.weight"].std()), 0.02, delta=0.001)
        self.assertAlmostEqual(float(state["head.fc.weight"].std()), 0.02 * 0.001, delta=0.0002 * 0.1)
        self.assertEqual(model.stem[1].eps, 1e-6)

    def test_drop_path_rises_linearly_over_all_blocks(self) -> None:
        model = create_model("convnextv2_atto", drop_path_rate=0.1)
        rates = [b.drop_path_rate for s in model.stages for b in s.blocks]
        self.assertEqual(len(rates), 12)
        self.assertEqual(rates[0], 0.0)
        self.assertAlmostEqual(rates[-1], 0.1, places=6)
        self.assertAlmostEqual(rates[6] - rates[5], 0.1 / 11, places=6)

    def test_drop_path_drops_whole_samples(self) -> None:
        block = tiny_model(2, False).stages[0].blocks[0]
        block.drop_path_rate = 0.5
        block.train()
        torch.manual_seed(1)
        x = torch.randn(64, 8, 4, 4)
        branch = block(x) - x  # residual branch only
        per_sample = branch.flatten(1).abs().amax(dim=1)
        dropped = per_sample == 0
        self.assertTrue(0 < int(dropped.sum()) < 64)
        block.eval()
        self.assertFalse(torch.any((block(x) - x).flatten(1).abs().amax(dim=1) == 0))

    def test_official_names_map_to_timm(self) -> None:
        model = create_model("convnextv2_atto", num_classes=4)
        ours = model.state_dict()
        official = {}
        for key, value in ours.items():  # timm -> official, written out independently of the module
            k = key.replace("stem.", "downsample_layers.0.")
            for i in (1, 2, 3):
                k = k.replace(f"stages.{i}.downsample.", f"downsample_layers.{i}.")
            k = k.replace(".blocks.", ".").replace("conv_dw", "dwconv").replace("mlp.fc", "pwconv")
            k = k.replace("head.norm.", "norm.").replace("head.fc.", "head.")
            if ".mlp.grn." in k:
                k = k.replace("mlp.grn.weight", "grn.gamma").replace("mlp.grn.bias", "grn.beta")
                value = value.reshape(1, 1, 1, -1)
            if k.endswith(("pwconv1.weight", "pwconv2.weight")):
                value = value.reshape(value.shape[0], value.shape[1])  # official pwconv is a Linear
            official[k] = value
        self.assertIn("stages.2.5.grn.gamma", official)
        back = normalize_classifier_state(official, model)
        self.assertEqual(set(back), set(ours))
        for key in ours:
            self.assertTrue(torch.equal(back[key], ours[key]), key)
        self.assertEqual(official_to_timm({"downsample_layers.0.0.weight": torch.zeros(1)}).keys(),
                         {"stem.0.weight"})


class FeatureTaps(unittest.TestCase):
    def test_taps_cover_every_block_and_pre_logits(self) -> None:
        model = tiny_model(2, True).eval()
        x = torch.randn(2, 3, 64, 64)
        taps = model.feature_taps(x)
        self.assertEqual(taps["stem"].shape, (2, 8, 16, 16))
        self.assertEqual(taps["stages.2.blocks.1"].shape, (2, 24, 4, 4))
        self.assertEqual(taps["stages.3"].shape, (2, 32, 2, 2))
        with torch.no_grad():
            feats = model.forward_features(x)
            torch.testing.assert_close(taps["stages.3"], feats)
            torch.testing.assert_close(taps["pre_logits"], model.forward_head(feats, pre_logits=True))
            torch.testing.assert_close(taps["logits"], model(x))
        self.assertEqual(set(model.feature_taps(x, names=["stem"])), {"stem"})
        with self.assertRaises(KeyError):
            model.feature_taps(x, names=["stages.9"])


class GrnMath(unittest.TestCase):
    def test_grn_formula_on_both_layouts(self) -> None:
        torch.manual_seed(0)
        x = torch.randn(2, 5, 6, 7, dtype=torch.float64)  # NHWC
        w, b = torch.randn(7, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
        gx = x.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()
        expected = w * (x * gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)) + b + x
        torch.testing.assert_close(global_response_norm(x, w, b, channel_dim=3), expected)
        nchw = global_response_norm(x.permute(0, 3, 1, 2), w, b, channel_dim=1)
        torch.testing.assert_close(nchw.permute(0, 2, 3, 1), expected)

    def test_grn_keeps_fp32_reductions_under_half_inputs(self) -> None:
        x = torch.full((1, 64, 64, 4), 200.0).half()  # sum of squares overflows fp16 (max 65504)
        y = global_response_norm(x, torch.ones(4), torch.zeros(4), channel_dim=3)
        self.assertEqual(y.dtype, torch.float16)
        self.assertTrue(torch.isfinite(y).all())


class MixedPrecision(unittest.TestCase):
    def test_bf16_autocast_on_cpu_trains_and_stays_close_to_fp32(self) -> None:
        torch.manual_seed(0)
        for conv_mlp in (False, True):
            with self.subTest(conv_mlp=conv_mlp):
                model = tiny_model(2, conv_mlp)
                randomize_(model, 4)
                x = torch.randn(2, 3, 64, 64)
                reference = model(x)
                with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
                    logits = model(x)
                    loss = F.cross_entropy(logits, torch.tensor([0, 1]))
                loss.backward()
                # bf16 keeps 8 mantissa bits: logits of order 1 agree to a few hundredths.
                torch.testing.assert_close(logits.float(), reference, rtol=0.05, atol=0.05)
                self.assertTrue(all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters()))


class AgreesWithReference(unittest.TestCase):
    """Same weights in the independent eager reference (test/python/eager_convnext.py) and here: forward and
    every gradient, in float64 so the comparison sees only differences of math (tolerance 1e-9 relative), not
    of float32 rounding order."""

    def check(self, version: int, conv_mlp: bool) -> None:
        ref = eager_reference()
        depths = (1, 1, 2, 1)
        params = ref.classifier_params(depths, (8, 16, 24, 32), v2=version == 2, num_classes=5, seed=1)
        ours = tiny_model(version, conv_mlp).double()
        ours.load_state_dict(to_model_layout(params, conv_mlp), strict=True)
        x = torch.randn(3, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        y = torch.tensor([0, 3, 4])
        loss_ref = F.cross_entropy(ref.classify(params, x, depths), y)
        loss_ours = F.cross_entropy(ours(x), y)
        torch.testing.assert_close(loss_ours, loss_ref, rtol=1e-9, atol=1e-12)
        loss_ref.backward()
        loss_ours.backward()
        ref_grads = to_model_layout({n: p.grad for n, p in params.items()}, conv_mlp)
        for name, p in ours.named_parameters():
            self.assertIsNotNone(p.grad, name)
            torch.testing.assert_close(p.grad, ref_grads[name], rtol=1e-7, atol=1e-12, msg=name)

    def test_v2_linear_mlp(self) -> None:
        self.check(2, conv_mlp=False)

    def test_v2_conv_mlp(self) -> None:
        self.check(2, conv_mlp=True)

    def test_v1(self) -> None:
        self.check(1, conv_mlp=False)


if __name__ == "__main__":
    unittest.main()
