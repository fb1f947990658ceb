"""Line-delimited JSON events on stdout, the worker protocol of the PyTorch engine (`"v": 1`).

types: started {engine, torchVersion, device, params, kind, arch, precision}
       progress {step, totalSteps, epoch, imagesPerSec}
       metrics {step, values: {loss, lr, gradNorm, ...}}
       checkpoint {step, path, statePath}
       eval {step, weights: "model" | "ema", images, top1, top5, perClass, confusion}
       log {level: "debug" | "info" | "warning" | "error", message}
       error {message, detail, ...}       done {status: "completed" | "cancelled" | "failed"}
Non-finite floats are sent as null so every line parses as strict JSON. `started` is the first event of a
job: logs emitted while setting up are held back until it (or until an error ends the job before it).
"""
from __future__ import annotations

import json
import math
import os
import threading
from typing import Any, Callable, List, Optional, TextIO


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class EventWriter:
    """Writes one JSON object per line and flushes, so the reader sees each event as it happens.

    When the reader goes away (broken pipe) further events are dropped and `on_closed` runs once, so the
    job can checkpoint and stop instead of training for nobody.
    """

    def __init__(self, stream: TextIO, on_closed: Optional[Callable[[], None]] = None) -> None:
        self.stream = stream
        self.on_closed = on_closed
        self.closed = False
        self.lock = threading.Lock()
        self.started = False
        self.held: List[str] = []

    def emit(self, type_: str, **fields: Any) -> None:
        line = json.dumps(_finite({"v": 1, "type": type_, **fields}), separators=(",", ":"), allow_nan=False)
        with self.lock:
            if type_ == "log" and not self.started:
                self.held.append(line)
                return
            lines = [line] + self.held if type_ == "started" else self.held + [line]
            self.held = []
            self.started = self.started or type_ == "started"
            if self.closed:
                return
            try:
                self.stream.write("".join(f"{x}\n" for x in lines))
                self.stream.flush()
            except (BrokenPipeError, ConnectionResetError):
                self._reader_gone()

    def _reader_gone(self) -> None:
        self.closed = True
        try:
            # Point the descriptor at /dev/null so the interpreter's final flush does not fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass
        if self.on_closed is not None:
            self.on_closed()

    def log(self, message: str, level: str = "info") -> None:
        self.emit("log", level=level, message=message)

    def error(self, message: str, detail: Optional[str] = None, **extra: Any) -> None:
        self.emit("error", message=message, detail=detail or "", **extra)

    def done(self, status: str) -> None:
        self.emit("done", status=status)
