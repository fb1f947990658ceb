"""Starts the ranks of one node and reports the run as one worker: rank 0's events on stdout, every rank's
stderr on stderr (prefixed), and one outcome for the whole run.

torchrun starts the ranks where it works; where the installed torchrun fails before starting any worker
(Debian's torch 1.13 on Python 3.11 does), this starts them itself with the same environment rendezvous
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and says so in the log. On SLURM the sbatch script
runs one launcher per node (srun --ntasks-per-node=1) and SLURM_NNODES / SLURM_NODEID place the node.
A rank that dies stops the others: the run ends `cancelled` (the app shows it interrupted, resumable) with
that rank's last stderr lines, or `failed` with its error when it reported one.
"""
from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional, TextIO

TAIL_LINES = 20
KILL_GRACE_S = 10.0


@dataclass
class NodePlan:
    nnodes: int
    node_rank: int
    nproc: int
    master_addr: str
    master_port: int
    notes: List[str] = field(default_factory=list)  # what the launcher decided, logged by rank 0

    @property
    def world(self) -> int:
        return self.nnodes * self.nproc


def port_free(addr: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((addr, port))
            return True
        except OSError:
            return False


def free_port(addr: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return int(s.getsockname()[1])


def node_plan(nproc: int, env: Dict[str, str]) -> NodePlan:
    """Where this node stands: SLURM's variables, else one node; a busy port on one node picks another."""
    nnodes = int(env.get("SLURM_NNODES") or env.get("CNX_NNODES") or 1)
    node_rank = int(env.get("SLURM_NODEID") or env.get("CNX_NODE_RANK") or 0)
    nproc = int(env.get("CNX_NPROC_PER_NODE") or nproc)
    addr = env.get("MASTER_ADDR") or "127.0.0.1"
    plan = NodePlan(nnodes, node_rank, nproc, addr, int(env.get("MASTER_PORT") or 0))
    if nnodes == 1 and addr in ("127.0.0.1", "localhost"):
        if plan.master_port and not port_free(addr, plan.master_port):
            plan.notes.append(f"port {plan.master_port} is in use; the rendezvous uses another")
            plan.master_port = 0
        plan.master_port = plan.master_port or free_port(addr)
    elif not plan.master_port:
        raise ValueError("MASTER_PORT must be set for a run over several nodes")
    return plan


def torchrun_works(python: str) -> Optional[str]:
    """None when torchrun can start a worker here, else why not (its last stderr line)."""
    if os.environ.get("CNX_LAUNCHER") == "self":
        return "CNX_LAUNCHER=self"
    try:
        probe = subprocess.run([python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
                                "--no_python", "true"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    lines = probe.stderr.strip().splitlines()
    return None if probe.returncode == 0 else (lines[-1] if lines else f"exit code {probe.returncode}")


def commands(plan: NodePlan, python: str, script_args: List[str]) -> List[Dict[str, Any]]:
    """The processes to start on this node: one torchrun, or one per local rank."""
    base = {**os.environ, "MASTER_ADDR": plan.master_addr, "MASTER_PORT": str(plan.master_port),
            "PYTHONUNBUFFERED": "1"}
    why = torchrun_works(python)
    if why is None:
        plan.notes.append(f"torchrun starts {plan.nproc} processes on node {plan.node_rank} of {plan.nnodes}")
        argv = [python, "-m", "torch.distributed.run", "--nnodes", str(plan.nnodes), "--nproc_per_node", str(plan.nproc)]
        if plan.nnodes > 1:  # nodes meet at rank 0's host through torchrun's c10d rendezvous
            argv += ["--rdzv_backend", "c10d", "--rdzv_endpoint", f"{plan.master_addr}:{plan.master_port}",
                     "--rdzv_id", os.environ.get("SLURM_JOB_ID", "cnx")]
        else:
            argv += ["--master_addr", plan.master_addr, "--master_port", str(plan.master_port)]
        argv += script_args
        return [{"name": "torchrun", "argv": argv, "env": {**base, "CNX_LAUNCH_NOTES": json.dumps(plan.notes)}}]
    count = f"{plan.nproc} process{'es' if plan.nproc > 1 else ''}"
    plan.notes.append(f"torchrun does not work here ({why}); the launcher starts the {count} of "
                      f"node {plan.node_rank} itself (environment rendezvous at {plan.master_addr}:{plan.master_port})")
    out = []
    for local in range(plan.nproc):
        rank = plan.node_rank * plan.nproc + local
        env = {**base, "RANK": str(rank), "WORLD_SIZE": str(plan.world), "LOCAL_RANK": str(local),
               "LOCAL_WORLD_SIZE": str(plan.nproc), "CNX_LAUNCH_NOTES": json.dumps(plan.notes)}
        out.append({"name": f"rank {rank}", "argv": [python, *script_args], "env": env})
    return out


class _Rank:
    def __init__(self, index: int, name: str, proc: "subprocess.Popen[str]") -> None:
        self.index = index
        self.name = name
        self.proc = proc
        self.tail: Deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.error: Optional[Dict[str, Any]] = None
        self.exited_at: Optional[float] = None


class NodeLauncher:
    """Runs this node's processes to the end and prints one outcome (see the module docstring)."""

    def __init__(self, plan: NodePlan, procs: List[Dict[str, Any]], out: TextIO, log: Optional["RunLog"]) -> None:
        self.plan, self.out, self.log = plan, out, log
        self.lock = threading.Lock()
        self.held: List[str] = []  # rank 0's error/done, sent once the outcome is known
        self.last_error: Optional[Dict[str, str]] = None
        # The first process's stdout carries rank 0's events (others print nothing there but stray output).
        self.ranks = [_Rank(i, p["name"], subprocess.Popen(p["argv"], env=p["env"], text=True, bufsize=1,
                                                           stdout=subprocess.PIPE if i == 0 else sys.stderr,
                                                           stderr=subprocess.PIPE))
                      for i, p in enumerate(procs)]
        self.threads = [threading.Thread(target=self._read_stderr, args=(r,), daemon=True) for r in self.ranks]
        self.threads.append(threading.Thread(target=self._read_events, daemon=True))
        for t in self.threads:
            t.start()

    def forward_signal(self, signum: int) -> None:
        for r in self.ranks:
            if r.proc.poll() is None:
                r.proc.send_signal(signum)

    def _read_stderr(self, r: _Rank) -> None:
        assert r.proc.stderr is not None
        for line in r.proc.stderr:
            text = line.rstrip("\n")
            r.tail.append(text)
            if text.startswith('{"v": 1, "type": "error"'):
                try:
                    r.error = json.loads(text)
                except ValueError:
                    pass
            sys.stderr.write(f"[{r.name}] {line}")
        sys.stderr.flush()

    def _read_events(self) -> None:
        stdout = self.ranks[0].proc.stdout
        assert stdout is not None
        for line in stdout:
            if '"type":"done"' in line or '"type":"error"' in line:
                self.held.append(line)
            else:
                self.send(line)

    def send(self, line: str) -> None:
        if '"type":"error"' in line:
            sent = json.loads(line)
            self.last_error = {"message": str(sent.get("message", "")), "detail": str(sent.get("detail", ""))}
        with self.lock:
            self.out.write(line if line.endswith("\n") else line + "\n")
            self.out.flush()
            if self.log is not None:
                self.log.event(line.strip())

    def wait(self) -> str:
        """Waits for every process; the first to die abnormally stops the others. Returns the status."""
        first: Optional[_Rank] = None
        while any(r.exited_at is None for r in self.ranks):
            for r in self.ranks:
                if r.exited_at is None and r.proc.poll() is not None:
                    r.exited_at = time.monotonic()
                    if r.proc.returncode != 0 and first is None:
                        first = r
                        self._stop_others(r)
            time.sleep(0.05)
        for t in self.threads:
            t.join(timeout=5)
        return self._finish(first)

    def _stop_others(self, dead: _Rank) -> None:
        def stop() -> None:
            self.forward_signal(signal.SIGTERM)
            deadline = time.monotonic() + KILL_GRACE_S
            while time.monotonic() < deadline and any(r.proc.poll() is None for r in self.ranks):
                time.sleep(0.1)
            for r in self.ranks:
                if r.proc.poll() is None:
                    r.proc.kill()
        if any(r.proc.poll() is None for r in self.ranks if r is not dead):
            threading.Thread(target=stop, daemon=True).start()

    def _finish(self, first: Optional[_Rank]) -> str:
        if first is None and self.plan.node_rank > 0:
            return "completed"  # rank 0 (on node 0) reports the run; this node only had to end cleanly
        if not any('"type":"done"' in x for x in self.held):
            first = first or self.ranks[0]  # ended without saying how: treat as died
        elif first is None or (first.index == 0 and first.error is None):
            for line in self.held:
                self.send(line)
            done = [json.loads(x) for x in self.held if '"type":"done"' in x]
            return str(done[-1]["status"]) if done else "failed"
        code = first.proc.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        tail = "\n".join(first.tail)
        error = first.error or next((json.loads(x) for x in self.held if '"type":"error"' in x), None)
        if error is not None and code > 0:
            message, status = f"{first.name}: {error.get('message', '')}", "failed"
        else:
            message, status = (f"{first.name} of {self.plan.world} {how}; the run stopped and resumes "
                               "from its last checkpoint"), "cancelled"
        self.send(json.dumps({"v": 1, "type": "error", "message": message, "detail": tail, "rank": first.index},
                             separators=(",", ":")))
        self.send(json.dumps({"v": 1, "type": "done", "status": status}, separators=(",", ":")))
        return status


class RunLog:
    """Appends to a run folder's events.jsonl in the workbench's format (main/services/run-log.ts), so a
    run started outside the app (a cluster job) is a normal run folder that `cnx attach` can follow."""

    def __init__(self, path: str, attempt: int) -> None:
        self.path, self.attempt, self.seq = path, attempt, 0
        if os.path.exists(path):
            with open(path, "r", encoding="utf-8") as f:
                for line in f:
                    try:
                        self.seq = max(self.seq, int(json.loads(line)["seq"]))
                    except (ValueError, KeyError, TypeError):
                        pass  # a torn last line after a crash
        self.file = open(path, "a", encoding="utf-8")

    def _append(self, body: str) -> None:
        self.seq += 1
        self.file.write(f'{{"seq":{self.seq},"t":{int(time.time() * 1000)},{body}}}\n')
        self.file.flush()

    def event(self, raw: str) -> None:
        self._append(f'"attempt":{self.attempt},"event":{raw}')

    def service(self, svc: Dict[str, Any]) -> None:
        self._append(f'"svc":{json.dumps(svc)}')

    def attempt_started(self, pid: int, lane: str, resumed_from: Optional[int]) -> None:
        self.service({"type": "attempt", "attempt": self.attempt, "engine": "torch", "lane": lane, "pid": pid,
                      "resumedFromStep": resumed_from})

    def attempt_ended(self, code: int, status: str, error: Optional[Dict[str, str]]) -> None:
        # A stop nobody asked for here (SLURM's time limit) is an interruption: the requeued job resumes.
        outcome = {"completed": "completed", "failed": "failed"}.get(status, "interrupted")
        self.service({"type": "exit", "attempt": self.attempt, "code": code, "signal": None, "outcome": outcome,
                      "error": error, "stderrTail": None})
        self.file.close()
