"""Data-parallel runs on the CPU (gloo): 2 processes train like 1 with the same global batch, a stop on any
rank checkpoints all, a run resumes on another world size, a dead rank ends the run interrupted."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from _testkit import HERE, PYTHON, job_config, of_type, parse_events, run_job, write_manifest  # noqa: E402
from cnx_torch.config import ConfigError, parse_job_config  # noqa: E402
from cnx_torch.data import EpochBatchSampler  # noqa: E402
from cnx_torch.distributed import Ranks, ShardedBatchSampler  # noqa: E402
from cnx_torch.safetensors_io import load_file  # noqa: E402

STEPS = 20
tmp: tempfile.TemporaryDirectory
manifest = ""
single: Tuple[int, List[Dict[str, Any]], str] = (1, [], "")


def config(name: str, **overrides: Any) -> Dict[str, Any]:
    """Fine-tuning atto at 32 px, global batch 4 in 2 micro-batches (accumulation), no drop path (its per-sample
    draws come from each rank's own RNG)."""
    return job_config("finetune", os.path.join(tmp.name, name), manifest, model={"inputSize": 32, "dropPathRate": 0.0},
                      optim={"totalSteps": STEPS, "accumSteps": 2, "warmupSteps": 2}, checkpointEverySteps=10,
                      **overrides)


def setUpModule() -> None:
    global tmp, manifest, single
    tmp = tempfile.TemporaryDirectory()
    manifest = write_manifest(tmp.name, count=24)  # 18 train images
    single = run_job(config("one"), tmp.name, "one.json")


def tearDownModule() -> None:
    tmp.cleanup()


def losses(events: List[Dict[str, Any]]) -> Dict[int, float]:
    return {m["step"]: m["values"]["loss"] for m in of_type(events, "metrics")}


def start(cfg: Dict[str, Any], name: str, env: Optional[Dict[str, str]] = None) -> "subprocess.Popen[str]":
    path = os.path.join(tmp.name, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    return subprocess.Popen([PYTHON, os.path.join(HERE, "run_job.py"), path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "CNX_LAUNCHER": "self", **(env or {})})


def read_until_step(proc: "subprocess.Popen[str]", step: int) -> List[Dict[str, Any]]:
    assert proc.stdout is not None
    seen: List[Dict[str, Any]] = []
    for line in proc.stdout:
        seen.append(json.loads(line))
        if seen[-1]["type"] == "progress" and seen[-1]["step"] >= step:
            return seen
    raise AssertionError(f"the run ended before step {step}: {seen}")


def rank_pid(launcher: int, rank: int) -> int:
    """The pid of a rank the launcher started, found by its RANK variable."""
    with open(f"/proc/{launcher}/task/{launcher}/children", encoding="utf-8") as f:
        for pid in f.read().split():
            with open(f"/proc/{pid}/environ", "rb") as env:
                if f"RANK={rank}".encode() in env.read().split(b"\0"):
                    return int(pid)
    raise AssertionError(f"no rank {rank} under {launcher}")


def max_param_diff(a_path: str, b_path: str) -> float:
    a, b = load_file(a_path), load_file(b_path)
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def assert_close_losses(case: unittest.TestCase, got: Dict[int, float], want: Dict[int, float]) -> None:
    # Ranks sum the same per-image gradients in another order (an all-reduce of two halves): float32
    # rounding, ~1e-7 relative per step, grows over 20 AdamW steps to ~1e-5 measured; 1e-4 leaves margin.
    for step, value in got.items():
        case.assertLess(abs(value - want[step]) / abs(want[step]), 1e-4, f"step {step}: {value} vs {want[step]}")


class TwoProcessesTrainLikeOne(unittest.TestCase):
    def test_same_losses_and_parameters_with_the_same_global_batch(self) -> None:
        code, events, stderr = run_job(config("two", nproc=2), tmp.name, "two.json")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(single[0], 0, single[2])
        self.assertEqual(events[0]["worldSize"], 2)
        logs = " ".join(e["message"] for e in of_type(events, "log"))
        self.assertIn("data-parallel over 2 processes (gloo)", logs)
        self.assertRegex(logs, r"torchrun (starts|does not work here)")  # which launcher ran is said
        got, want = losses(events), losses(single[1])
        self.assertEqual(sorted(got), list(range(1, STEPS + 1)))
        assert_close_losses(self, got, want)
        ckpts = os.path.join(tmp.name, "{}", "checkpoints", f"step-{STEPS}.safetensors")
        self.assertLess(max_param_diff(ckpts.format("one"), ckpts.format("two")), 1e-4)
        # Rank 0 alone reports and writes: one event per step, one set of checkpoint files.
        self.assertEqual([e["step"] for e in of_type(events, "checkpoint")], [10, 20])
        self.assertEqual(events[-1], {"v": 1, "type": "done", "status": "completed"})


class StopAndResume(unittest.TestCase):
    def test_sigterm_on_one_rank_checkpoints_and_a_single_process_resumes_the_same_data(self) -> None:
        proc = start(config("stopped", nproc=2), "stopped.json")
        seen = read_until_step(proc, 3)
        os.kill(rank_pid(proc.pid, 1), signal.SIGTERM)
        out, stderr = proc.communicate(timeout=300)
        events = seen + parse_events(out)
        self.assertEqual(proc.returncode, 0, stderr)
        self.assertEqual(events[-1]["status"], "cancelled", stderr)
        stop_step = of_type(events, "checkpoint")[-1]["step"]
        self.assertGreaterEqual(stop_step, 3)
        self.assertLess(stop_step, STEPS)
        last = os.path.join(tmp.name, "stopped", "checkpoints", "last.json")
        resumed = config("stopped", resume=last)
        code, after, stderr = run_job(resumed, tmp.name, "resumed.json")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(after[0]["worldSize"], 1)
        got = losses(after)
        self.assertEqual(sorted(got), list(range(stop_step + 1, STEPS + 1)))
        # The same losses as the uninterrupted single process at every step: the same images in the same order.
        assert_close_losses(self, got, losses(single[1]))
        ckpts = os.path.join(tmp.name, "{}", "checkpoints", f"step-{STEPS}.safetensors")
        self.assertLess(max_param_diff(ckpts.format("one"), ckpts.format("stopped")), 1e-4)


class Reliability(unittest.TestCase):
    def test_a_dead_rank_ends_the_run_interrupted_with_its_stderr_and_a_busy_port_is_replaced(self) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            proc = start(config("killed", nproc=2), "killed.json", {"MASTER_PORT": str(port)})
            seen = read_until_step(proc, 1)
            os.kill(rank_pid(proc.pid, 1), signal.SIGKILL)
            out, stderr = proc.communicate(timeout=120)
        events = seen + parse_events(out)
        logs = " ".join(e["message"] for e in of_type(events, "log"))
        self.assertIn(f"port {port} is in use", logs)
        errors = of_type(events, "error")
        self.assertEqual(len(errors), 1, events)
        self.assertIn("rank 1 of 2 was killed by signal 9", errors[0]["message"])
        self.assertEqual(events[-1], {"v": 1, "type": "done", "status": "cancelled"})  # resumable
        # The dead rank's last stderr lines (its own log lines here) travel with the error.
        self.assertIn("data-parallel over 2 processes", errors[0]["detail"])
        self.assertIn("[rank 1] ", stderr)

    def test_a_rendezvous_that_times_out_names_the_backend_and_the_limit(self) -> None:
        started = time.monotonic()
        proc = subprocess.run([PYTHON, os.path.join(HERE, "run_job.py"), os.path.join(tmp.name, "one.json")],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                                   "MASTER_PORT": str(free_port()), "CNX_DIST_TIMEOUT": "2"})
        events = parse_events(proc.stdout)
        self.assertEqual(proc.returncode, 1)
        self.assertRegex(events[-2]["message"], r"^gloo rendezvous at 127\.0\.0\.1:\d+ failed for rank 0 of 2 "
                                                 r"\(timeout 2 s, CNX_DIST_TIMEOUT\)")
        self.assertLess(time.monotonic() - started, 60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sharding(unittest.TestCase):
    def test_ranks_take_disjoint_slices_of_the_same_global_batches(self) -> None:
        global_batches = EpochBatchSampler(10, 4, seed=5, start_batch=1)
        shards = [ShardedBatchSampler(EpochBatchSampler(10, 4, seed=5, start_batch=1), Ranks(r, 2), 4)
                  for r in range(2)]
        for want, a, b, _ in zip(global_batches, *shards, range(6)):
            self.assertEqual(a + b, want)
            self.assertEqual(len(a), 2)
        with self.assertRaisesRegex(ValueError, "does not split evenly over 3 processes"):
            ShardedBatchSampler(global_batches, Ranks(0, 3), 4)

    def test_devices_and_nproc_in_the_job_config(self) -> None:
        cfg = parse_job_config({**config("c"), "device": "cuda", "devices": 2})
        self.assertEqual((cfg.devices, cfg.nproc), ((0, 1), 2))
        self.assertEqual(parse_job_config({**config("c"), "device": "auto", "devices": [3, 1]}).devices, (3, 1))
        self.assertEqual(parse_job_config({**config("c"), "nproc": 4}).nproc, 4)
        bad = [({"devices": [0, 1], "nproc": 3}, "nproc"), ({"devices": [0, 0]}, "devices"),
               ({"device": "cpu", "devices": [0]}, "devices"), ({"nproc": 3}, "data.batchSize")]
        for extra, field in bad:
            with self.assertRaises(ConfigError) as caught:
                parse_job_config({**config("c"), "device": "cuda", **extra})
            self.assertEqual(caught.exception.field, field, extra)


if __name__ == "__main__":
    torch.set_num_threads(1)
    unittest.main()
