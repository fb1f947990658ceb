#!/usr/bin/env python3
"""Runs one PyTorch-engine job and speaks line-delimited JSON events on stdout.

    run_job.py CONFIG.json        (or `-` to read the config from stdin)

The config format is documented in cnx_torch/config.py, the events in cnx_torch/events.py.
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

from cnx_torch.config import ConfigError, parse_job_config  # noqa: E402
from cnx_torch.events import EventWriter  # noqa: E402
from cnx_torch.job import CancelToken, Job  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Run a ConvNeXt (V2) job on PyTorch; events go to stdout.")
    parser.add_argument("config", help="path of the job config JSON, or - for stdin")
    args = parser.parse_args(argv)
    cancel = CancelToken()
    # Events own stdout; anything else printed (library warnings, stray prints) goes to stderr.
    events = EventWriter(sys.stdout, on_closed=cancel.cancel)
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
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: cancel.cancel())
    status = Job(cfg, events, cancel).run()
    return 1 if status == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())
