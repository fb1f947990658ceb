#!/usr/bin/env python3
"""Runs one PyTorch-engine job and speaks line-delimited JSON events on stdout.

    run_job.py CONFIG.json [--events-log RUN/events.jsonl --attempt N]     (CONFIG may be `-` for stdin)

The config format is documented in cnx_torch/config.py, the events in cnx_torch/events.py. A config with
`nproc` or `devices` above one (or SLURM_NNODES above one) makes this process the node's launcher
(cnx_torch/launch.py), which starts one process per rank running this same file. `--events-log` appends the
events to a run folder's log as the app does (cluster runs, which no app supervises).
Exit status: 0 completed or cancelled (SIGTERM/SIGINT checkpoint first), 1 failed, 2 invalid config.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cnx_torch import launch  # noqa: E402
from cnx_torch.config import ConfigError, JobConfig, parse_job_config  # noqa: E402
from cnx_torch.distributed import RankEvents, Ranks  # noqa: E402
from cnx_torch.events import EventWriter  # noqa: E402
from cnx_torch.job import CancelToken, Job  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Run a ConvNeXt (V2) job on PyTorch; events go to stdout.")
    parser.add_argument("config", help="path of the job config JSON, or - for stdin")
    parser.add_argument("--events-log", help="also append the events to this run folder log (events.jsonl)")
    parser.add_argument("--attempt", type=int, default=1, help="the attempt number written to --events-log")
    args = parser.parse_args(argv)
    cancel = CancelToken()
    ranks = Ranks.from_env()
    # Events own stdout; anything else printed (library warnings, stray prints) goes to stderr.
    events = EventWriter(sys.stdout, on_closed=cancel.cancel) if ranks.is_main else RankEvents(ranks.rank)
    sys.stdout = sys.stderr
    try:
        if args.config == "-":
            raw = json.load(sys.stdin)
        else:
            with open(args.config, "r", encoding="utf-8") as f:
                raw = json.load(f)
    except (OSError, ValueError) as err:
        events.error(f"cannot read the job config {args.config}: {err}")
        events.done("failed")
        return 2
    try:
        cfg = parse_job_config(raw)
    except ConfigError as err:
        events.error(f"invalid job config: {err}", detail=err.field, field=err.field)
        events.done("failed")
        return 2
    if cfg.devices is not None and "CUDA_VISIBLE_DEVICES" not in os.environ and "RANK" not in os.environ:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in cfg.devices)  # ranks number them 0..n-1
    if "RANK" not in os.environ and (cfg.nproc > 1 or args.events_log or int(os.environ.get("SLURM_NNODES", "1")) > 1):
        return launch_node(cfg, args, events)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: cancel.cancel())
    for note in json.loads(os.environ.get("CNX_LAUNCH_NOTES", "[]")):
        events.log(note)
    status = Job(cfg, events, cancel, ranks).run()
    return 1 if status == "failed" else 0


def launch_node(cfg: JobConfig, args: argparse.Namespace, events: EventWriter) -> int:
    """This node's launcher: starts the ranks, forwards signals, reports one outcome."""
    try:
        plan = launch.node_plan(cfg.nproc, dict(os.environ))
    except ValueError as err:
        events.error(str(err))
        events.done("failed")
        return 1
    procs = launch.commands(plan, sys.executable, [os.path.abspath(__file__), args.config])
    log = launch.RunLog(args.events_log, args.attempt) if args.events_log and plan.node_rank == 0 else None
    node = launch.NodeLauncher(plan, procs, events.stream, log)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: node.forward_signal(signum))
    if log is not None:
        log.attempt_started(os.getpid(), "gpu" if cfg.devices is not None or cfg.device == "cuda" else "cpu",
                            None)
    status = node.wait()
    if log is not None:
        log.attempt_ended(0 if status != "failed" else 1, status, node.last_error)
    return 1 if status == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())
