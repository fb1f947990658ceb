"""FCMAE: mask semantics, visible-only masked encoding, target layout, loss and the reference's numbers."""
from __future__ import annotations

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from _testkit import eager_reference, randomize_, to_model_layout  # noqa: E402
from cnx_torch.fcmae import FCMAE, create_fcmae, norm_pix_target, patchify, random_mask, unpatchify  # noqa: E402
from cnx_torch.models import ConvNeXt, global_response_norm  # noqa: E402


def tiny_fcmae(conv_mlp: bool, decoder_dim: int = 16) -> FCMAE:
    encoder = ConvNeXt((1, 1, 2, 1), (8, 16, 24, 32), use_grn=True, conv_mlp=conv_mlp, ls_init_value=None,
                       num_classes=0, with_head=False)
    return FCMAE(encoder, decoder_dim=decoder_dim, decoder_depth=1)


class MaskSemantics(unittest.TestCase):
    def test_ratio_per_sample_and_zero_means_keep(self) -> None:
        g = torch.Generator().manual_seed(0)
        mask = random_mask(16, 7, 7, 0.6, generator=g)
        self.assertEqual(mask.shape, (16, 7, 7))
        self.assertTrue(torch.all((mask == 0) | (mask == 1)))
        kept = (mask == 0).flatten(1).sum(dim=1)
        self.assertTrue(torch.all(kept == int(49 * (1 - 0.6))))  # 19 visible, 30 removed, as in the paper
        self.assertGreater(len({tuple(m.flatten().tolist()) for m in mask}), 1)  # each sample its own mask
        again = random_mask(16, 7, 7, 0.6, generator=torch.Generator().manual_seed(0))
        self.assertTrue(torch.equal(mask, again))

    def test_loss_only_counts_removed_patches(self) -> None:
        torch.manual_seed(0)
        model = tiny_fcmae(False)
        imgs = torch.randn(2, 3, 64, 64)
        mask = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]])
        out = model(imgs, mask=mask)
        self.assertEqual(out.pred.shape, (2, 4, 32 * 32 * 3))
        self.assertTrue(torch.equal(out.mask, mask.reshape(2, 4)))
        target = norm_pix_target(patchify(imgs, 32))
        per_patch = ((out.pred - target) ** 2).mean(dim=-1)
        expected = (per_patch[0, 0] + per_patch[1, 1] + per_patch[1, 2]) / 3
        torch.testing.assert_close(out.loss, expected)

    def test_explicit_mask_shape_is_checked(self) -> None:
        model = tiny_fcmae(False)
        with self.assertRaisesRegex(ValueError, "mask shape"):
            model(torch.randn(1, 3, 64, 64), mask=torch.zeros(1, 3, 3))
        with self.assertRaisesRegex(ValueError, "multiple of the patch size"):
            model(torch.randn(1, 3, 48, 64))


class VisibleOnly(unittest.TestCase):
    def test_grn_with_keep_equals_grn_over_visible_cells(self) -> None:
        torch.manual_seed(0)
        x = torch.randn(1, 4, 4, 6, dtype=torch.float64)  # NHWC
        keep = torch.zeros(1, 4, 4, 1, dtype=torch.float64)
        keep[0, :2, :, 0] = 1  # top half visible
        w, b = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
        masked = global_response_norm(x, w, b, channel_dim=3, keep=keep)
        visible = x[:, :2]  # the same GRN applied to the visible cells alone
        alone = global_response_norm(visible, w, b, channel_dim=3)
        torch.testing.assert_close(masked[:, :2], alone)

    def test_encoder_ignores_the_content_of_removed_patches(self) -> None:
        """Dense masked conv must behave like sparse conv: visible features cannot see removed pixels."""
        for conv_mlp in (False, True):
            with self.subTest(conv_mlp=conv_mlp):
                torch.manual_seed(0)
                model = tiny_fcmae(conv_mlp).double()
                randomize_(model, 2)
                imgs = torch.randn(2, 3, 96, 96, dtype=torch.float64)
                mask = random_mask(2, 3, 3, 0.6, generator=torch.Generator().manual_seed(1)).double()
                pixel_mask = mask.repeat_interleave(32, 1).repeat_interleave(32, 2).unsqueeze(1)
                other = imgs + 5.0 * torch.randn_like(imgs) * pixel_mask  # change removed patches only
                a = model.encoder.forward_features(imgs, mask)
                b = model.encoder.forward_features(other, mask)
                torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
                self.assertTrue(torch.all(a * mask.unsqueeze(1) == 0))  # removed cells are zero
                unmasked = model.encoder.forward_features(other)  # without a mask the content leaks
                self.assertFalse(torch.allclose(unmasked * (1 - mask.unsqueeze(1)), a))


class Targets(unittest.TestCase):
    def test_patchify_pixel_order_is_row_col_channel(self) -> None:
        imgs = torch.randn(2, 3, 64, 96)
        patches = patchify(imgs, 32)
        self.assertEqual(patches.shape, (2, 6, 3072))
        n, gy, gx, r, c, ch = 1, 1, 2, 5, 7, 2
        self.assertEqual(patches[n, gy * 3 + gx, (r * 32 + c) * 3 + ch], imgs[n, ch, gy * 32 + r, gx * 32 + c])
        self.assertTrue(torch.equal(unpatchify(patches, 32, 2, 3), imgs))

    def test_norm_pix_uses_unbiased_variance(self) -> None:
        t = torch.tensor([[[1.0, 2.0, 3.0, 6.0]]])
        mean = 3.0
        var = ((1 - mean) ** 2 + (2 - mean) ** 2 + 0 + (6 - mean) ** 2) / 3  # n - 1
        expected = (t - mean) / (var + 1e-6) ** 0.5
        torch.testing.assert_close(norm_pix_target(t), expected)


class StateDictNames(unittest.TestCase):
    def test_encoder_timm_names_and_official_decoder_names(self) -> None:
        state = create_fcmae("convnextv2_atto", decoder_dim=64, decoder_depth=2).state_dict()
        encoder = {k for k in state if k.startswith("encoder.")}
        self.assertIn("encoder.stem.0.weight", encoder)
        self.assertIn("encoder.stages.3.blocks.1.mlp.grn.weight", encoder)
        self.assertFalse(any(k.startswith("encoder.head.") for k in encoder))
        decoder = set(state) - encoder
        expected = {"proj.weight", "proj.bias", "mask_token", "pred.weight", "pred.bias"}
        for k in range(2):
            for layer in ("dwconv", "norm", "pwconv1", "pwconv2"):
                expected |= {f"decoder.{k}.{layer}.weight", f"decoder.{k}.{layer}.bias"}
            expected |= {f"decoder.{k}.grn.gamma", f"decoder.{k}.grn.beta"}
        self.assertEqual(decoder, expected)
        self.assertEqual(state["mask_token"].shape, (1, 64, 1, 1))
        self.assertEqual(state["decoder.0.grn.gamma"].shape, (1, 1, 1, 256))
        self.assertEqual(state["decoder.0.pwconv1.weight"].shape, (256, 64))
        self.assertEqual(state["proj.weight"].shape, (64, 320, 1, 1))
        self.assertEqual(state["pred.weight"].shape, (3072, 64, 1, 1))


class AgreesWithReference(unittest.TestCase):
    """Loss, prediction and gradients against the independent eager FCMAE (test/python/eager_convnext.py) on
    the same weights and mask, in float64 (tolerance 1e-9 relative: only the order of float64 roundings may
    differ). The reference keeps removed cells at zero after every block; ours masks before and after each
    depthwise conv: both must agree wherever a value reaches the output."""

    def check(self, conv_mlp: bool) -> None:
        ref = eager_reference()
        depths = (1, 1, 2, 1)
        params = ref.fcmae_params(depths, (8, 16, 24, 32), decoder_dim=16, seed=3)
        ours = tiny_fcmae(conv_mlp).double()
        ours.load_state_dict(to_model_layout(params, conv_mlp), strict=True)
        imgs = torch.randn(2, 3, 96, 96, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        mask = random_mask(2, 3, 3, 0.6, generator=torch.Generator().manual_seed(11)).double()
        loss_ref, pred_ref = ref.fcmae(params, imgs, mask, depths)
        out = ours(imgs, mask=mask)
        torch.testing.assert_close(out.loss, loss_ref, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(out.pred.detach(), pred_ref.detach(), rtol=1e-9, atol=1e-12)

        loss_ref.backward()
        out.loss.backward()
        ref_grads = to_model_layout({n: p.grad for n, p in params.items() if p.grad is not None}, conv_mlp)
        for name, p in ours.named_parameters():
            self.assertIsNotNone(p.grad, name)
            torch.testing.assert_close(p.grad, ref_grads[name], rtol=1e-7, atol=1e-12, msg=name)

    def test_linear_mlp_encoder(self) -> None:
        self.check(conv_mlp=False)

    def test_conv_mlp_encoder(self) -> None:
        self.check(conv_mlp=True)


class Training(unittest.TestCase):
    def test_a_few_steps_lower_the_loss_on_a_fixed_batch(self) -> None:
        torch.manual_seed(0)
        model = tiny_fcmae(True, decoder_dim=32)
        imgs = torch.randn(2, 3, 64, 64)
        mask = random_mask(2, 2, 2, 0.5, generator=torch.Generator().manual_seed(0))
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
        first = float(model(imgs, mask=mask).loss)
        for _ in range(8):
            loss = model(imgs, mask=mask).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.assertLess(float(model(imgs, mask=mask).loss), first * 0.9)


if __name__ == "__main__":
    unittest.main()
