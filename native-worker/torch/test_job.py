"""run_job.py end to end on a tiny generated dataset: events, checkpoints, exact resume, eval, failures."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import unittest
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from _testkit import HERE, PYTHON, first, job_config, of_type, parse_events, run_job, write_manifest  # noqa: E402
from cnx_torch.config import ConfigError, parse_job_config  # noqa: E402
from cnx_torch.events import EventWriter  # noqa: E402
from cnx_torch.job import CancelToken, Job  # noqa: E402
from cnx_torch.safetensors_io import load_file, load_with_metadata  # noqa: E402


class TrainingJobs(unittest.TestCase):
    """One pretraining run, its resumed twin, a fine-tune from it, and an evaluation of the fine-tune."""

    tmp: tempfile.TemporaryDirectory
    manifest: str
    runs: Dict[str, Any]

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.manifest = write_manifest(d, count=12)  # 9 train (2 batches of 4 per epoch), 3 val: one per class
        cls.runs = {}
        pre = job_config("pretrain", os.path.join(d, "pre"), cls.manifest, data={"workers": 1},
                         optim={"totalSteps": 4})
        cls.runs["pre"] = run_job(pre, d, "pre.json")
        resumed = job_config("pretrain", os.path.join(d, "resumed"), cls.manifest, optim={"totalSteps": 4},
                             resume=os.path.join(d, "pre", "checkpoints", "step-2.state.safetensors"))
        cls.runs["resumed"] = run_job(resumed, d, "resumed.json")
        ft = job_config("finetune", os.path.join(d, "ft"), cls.manifest, evalEverySteps=2,
                        init={"weights": os.path.join(d, "pre", "checkpoints", "step-4.safetensors")},
                        model={"headInitScale": 0.001},
                        optim={"totalSteps": 2, "betas": [0.9, 0.999], "layerDecay": 0.9, "labelSmoothing": 0.1,
                               "mixup": 0.8, "cutmix": 1.0, "emaDecay": 0.9, "clipGrad": 1.0})
        cls.runs["ft"] = run_job(ft, d, "ft.json")
        ev = job_config("eval", os.path.join(d, "ev"), cls.manifest,
                        init={"weights": os.path.join(d, "ft", "checkpoints", "step-2.safetensors")})
        del ev["optim"]
        cls.runs["ev"] = run_job(ev, d, "ev.json")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def events(self, name: str) -> List[Dict[str, Any]]:
        code, events, stderr = self.runs[name]
        self.assertEqual(code, 0, f"{name} failed:\n{stderr}\n{events}")
        return events

    def test_pretrain_event_sequence(self) -> None:
        events = self.events("pre")
        self.assertEqual(events[0]["type"], "started")
        self.assertEqual((events[0]["engine"], events[0]["device"], events[0]["v"]), ("torch", "cpu", 1))
        self.assertGreater(events[0]["params"], 3_000_000)
        self.assertEqual(events[-1], {"v": 1, "type": "done", "status": "completed"})
        self.assertEqual([e["step"] for e in of_type(events, "progress")], [1, 2, 3, 4])
        self.assertEqual([e["totalSteps"] for e in of_type(events, "progress")], [4] * 4)
        self.assertEqual([e["epoch"] for e in of_type(events, "progress")], [0.5, 1.0, 1.5, 2.0])  # 2 batches/epoch
        metrics = of_type(events, "metrics")
        self.assertEqual(metrics[0]["values"]["lr"], 0.0)  # one warmup step starts from zero
        self.assertAlmostEqual(metrics[1]["values"]["lr"], 1e-3)
        for m in metrics:
            self.assertTrue(0.5 < m["values"]["loss"] < 2.0)  # norm-pix MSE of a fresh model is ~1
            self.assertGreater(m["values"]["gradNorm"], 0)
        self.assertEqual([e["step"] for e in of_type(events, "checkpoint")], [2, 4])

    def test_pretrain_checkpoint_files(self) -> None:
        self.events("pre")
        folder = os.path.join(self.tmp.name, "pre", "checkpoints")
        weights, metadata = load_with_metadata(os.path.join(folder, "step-4.safetensors"))
        self.assertEqual((metadata["naming"], metadata["step"], metadata["arch"]), ("fcmae", "4", "convnextv2_atto"))
        self.assertIn("encoder.stages.2.blocks.5.mlp.grn.weight", weights)
        self.assertEqual(weights["decoder.0.grn.gamma"].shape, (1, 1, 1, 128))
        self.assertIn("mask_token", weights)
        self.assertFalse(any(k.startswith("encoder.head.") for k in weights))
        state = load_file(os.path.join(folder, "step-4.state.safetensors"))
        self.assertEqual(state["optim.mask_token.exp_avg"].shape, (1, 32, 1, 1))
        self.assertIn("rng.cpu", state)
        with open(os.path.join(folder, "last.json"), encoding="utf-8") as f:
            self.assertEqual(json.load(f), {"step": 4, "weights": "step-4.safetensors",
                                            "state": "step-4.state.safetensors"})

    def test_resume_continues_exactly(self) -> None:
        straight, resumed = self.events("pre"), self.events("resumed")
        self.assertEqual([e["step"] for e in of_type(resumed, "progress")], [3, 4])
        # Same device, same thread count, same seeds: the continuation is bit-identical (drop path included).
        self.assertEqual([m["values"] for m in of_type(resumed, "metrics")],
                         [m["values"] for m in of_type(straight, "metrics")][2:])
        a = load_file(os.path.join(self.tmp.name, "pre", "checkpoints", "step-4.safetensors"))
        b = load_file(os.path.join(self.tmp.name, "resumed", "checkpoints", "step-4.safetensors"))
        for key in a:
            self.assertTrue(torch.equal(a[key], b[key]), key)

    def test_finetune_from_pretraining_evaluates_and_keeps_the_best(self) -> None:
        events = self.events("ft")
        self.assertEqual(events[0]["type"], "started")
        logs = " ".join(e["message"] for e in of_type(events, "log"))
        self.assertIn("head not in the checkpoint", logs)
        self.assertIn("layer decay 0.9 (single)", logs)
        evals = of_type(events, "eval")
        self.assertEqual([(e["step"], e["weights"]) for e in evals], [(2, "model"), (2, "ema")])
        for e in evals:
            self.assertEqual(e["images"], 3)
            self.assertEqual(len(e["confusion"]), 3)
            self.assertEqual([sum(row) for row in e["confusion"]], [1, 1, 1])
            self.assertAlmostEqual(e["top1"], sum(e["confusion"][i][i] for i in range(3)) / 3)
            self.assertEqual(e["top5"], 1.0)  # 3 classes: the true one is always in the top 5
            self.assertEqual(len(e["perClass"]), 3)
        folder = os.path.join(self.tmp.name, "ft", "checkpoints")
        with open(os.path.join(folder, "best.json"), encoding="utf-8") as f:
            best = json.load(f)
        self.assertEqual((best["step"], best["top1"]), (2, evals[0]["top1"]))
        weights = load_file(os.path.join(folder, best["weights"]))
        self.assertEqual(weights["head.fc.weight"].shape, (3, 320))
        self.assertIn("stages.0.blocks.0.mlp.fc1.weight", weights)
        state = load_file(os.path.join(folder, "step-2.state.safetensors"))
        self.assertIn("ema.head.fc.weight", state)
        # The model evaluation names its misclassified images: exactly the matrix's off-diagonal counts.
        samples = [e for e in of_type(events, "sample") if e["kind"] == "mistakes"]
        self.assertEqual([e["step"] for e in samples], [2])
        with open(samples[0]["path"], encoding="utf-8") as f:
            recorded = json.load(f)
        self.assertEqual(recorded["split"], "val")
        counted = [[0] * 3 for _ in range(3)]
        for m in recorded["mistakes"]:
            self.assertNotEqual(m["label"], m["pred"])
            self.assertFalse(os.path.isabs(m["path"]), m["path"])
            counted[m["label"]][m["pred"]] += 1
        model_eval = evals[0]["confusion"]
        self.assertEqual(counted, [[0 if t == p else model_eval[t][p] for p in range(3)] for t in range(3)])

    def test_eval_job(self) -> None:
        events = self.events("ev")
        self.assertEqual([e["type"] for e in events if e["type"] != "log"], ["started", "eval", "sample", "done"])
        ev = first(events, "eval")
        assert ev is not None
        self.assertEqual((ev["step"], ev["images"]), (0, 3))
        ft_model_eval = of_type(self.events("ft"), "eval")[0]
        self.assertEqual(ev["confusion"], ft_model_eval["confusion"])  # same weights, same images


class Failures(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.manifest = write_manifest(self.tmp.name, count=8)

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def test_unknown_kind_is_a_clear_error(self) -> None:
        cfg = job_config("distill", os.path.join(self.tmp.name, "run"), self.manifest)
        code, events, _ = run_job(cfg, self.tmp.name)
        self.assertEqual(code, 2)
        self.assertEqual([e["type"] for e in events], ["error", "done"])
        self.assertIn("unknown job kind 'distill'", events[0]["message"])
        self.assertEqual(events[1]["status"], "failed")

    def test_bad_field_is_named(self) -> None:
        cfg = job_config("finetune", os.path.join(self.tmp.name, "run"), self.manifest, optim={"lr": -1})
        code, events, _ = run_job(cfg, self.tmp.name)
        self.assertEqual(code, 2)
        self.assertEqual(events[0]["field"], "optim.lr")

    def test_missing_init_weights(self) -> None:
        cfg = job_config("finetune", os.path.join(self.tmp.name, "run"), self.manifest,
                         init={"weights": os.path.join(self.tmp.name, "nope.safetensors")})
        code, events, _ = run_job(cfg, self.tmp.name)
        self.assertEqual(code, 1)
        self.assertIn("no such weights file", events[-2]["message"])
        self.assertEqual(events[-1]["status"], "failed")

    def test_eval_every_without_the_eval_split_names_both_fixes(self) -> None:
        cfg = job_config("finetune", os.path.join(self.tmp.name, "run"), self.manifest, evalEverySteps=2,
                         data={"evalSplit": "test"})
        code, events, _ = run_job(cfg, self.tmp.name)
        self.assertEqual(code, 1)
        self.assertEqual([e["type"] for e in events], ["error", "done"])
        self.assertIn("evalEverySteps is set but the dataset has no labeled test images to evaluate on; split some "
                      "off (cnx dataset split NAME --val 0.1) or evaluate on the test split", events[0]["message"])

    def test_sigterm_checkpoints_and_reports_cancelled(self) -> None:
        run_dir = os.path.join(self.tmp.name, "run")
        cfg = job_config("pretrain", run_dir, self.manifest, optim={"totalSteps": 10_000},
                         checkpointEverySteps=10_000)
        path = os.path.join(self.tmp.name, "long.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(cfg, f)
        proc = subprocess.Popen([PYTHON, os.path.join(HERE, "run_job.py"), path], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if '"type":"progress"' in line:
                proc.send_signal(signal.SIGTERM)
                break
        rest, _ = proc.communicate(timeout=120)
        events = parse_events("".join(lines) + rest)
        self.assertEqual(proc.returncode, 0)
        self.assertEqual(events[-1]["status"], "cancelled")
        ck = events[-2]
        self.assertEqual(ck["type"], "checkpoint")
        self.assertTrue(os.path.isfile(ck["path"]) and os.path.isfile(ck["statePath"]))
        self.assertLess(ck["step"], 10_000)

    def test_out_of_memory_suggests_a_smaller_batch(self) -> None:
        cfg = parse_job_config(job_config("finetune", os.path.join(self.tmp.name, "run"), self.manifest))
        stream = io.StringIO()
        job = Job(cfg, EventWriter(stream), CancelToken())

        def fail() -> str:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

        job._run = fail  # type: ignore[method-assign]
        self.assertEqual(job.run(), "failed")
        events = parse_events(stream.getvalue())
        self.assertEqual([e["type"] for e in events], ["error", "done"])
        self.assertEqual(events[0]["suggestedBatchSize"], 2)
        self.assertIn("out of memory at batch size 4", events[0]["message"])


if __name__ == "__main__":
    unittest.main()
