"""Checkpoint files of a run and weight loading from any supported layout.

runDir/checkpoints/step-N.safetensors        model weights, fp32: timm names (finetune) or FCMAE names
                                             (pretrain: encoder.* + proj/mask_token/decoder/pred)
runDir/checkpoints/step-N.state.safetensors  optimizer state by parameter name (optim.<name>.<key>), EMA
                                             weights (ema.<name>), RNG states (rng.*); metadata: step,
                                             consumed micro-batches, grad scaler, best top-1
runDir/checkpoints/last.json, best.json      pointers {step, weights, state[, top1]} (file names relative
                                             to the folder), replaced atomically
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import torch

from . import official_fcmae
from .fileio import atomic_file
from .safetensors_io import SafetensorsError, load_with_metadata

Tensor = torch.Tensor

WEIGHTS_FORMAT = "cnx-weights/1"  # shared by both engines
STATE_FORMAT = "cnx-state/1"  # shared by both engines


class CheckpointError(ValueError):
    pass


def weights_name(step: int) -> str:
    return f"step-{step}.safetensors"


def state_name(step: int) -> str:
    return f"step-{step}.state.safetensors"


def write_json_atomic(path: str, payload: Dict[str, Any]) -> None:
    with atomic_file(path, binary=False) as f:
        json.dump(payload, f)


@dataclass(frozen=True)
class ResumePaths:
    weights: str
    state: str


def resolve_resume(path: str) -> ResumePaths:
    """Accepts a pointer (last.json / best.json), a step-N.state.safetensors or a step-N.safetensors file."""
    folder = os.path.dirname(path)
    if path.endswith(".json"):
        try:
            with open(path, "r", encoding="utf-8") as f:
                pointer = json.load(f)
            return ResumePaths(os.path.join(folder, pointer["weights"]), os.path.join(folder, pointer["state"]))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"{path}: not a readable checkpoint pointer ({err})") from None
    if path.endswith(".state.safetensors"):
        return ResumePaths(path[: -len(".state.safetensors")] + ".safetensors", path)
    if path.endswith(".safetensors"):
        return ResumePaths(path, path[: -len(".safetensors")] + ".state.safetensors")
    raise CheckpointError(f"{path}: resume expects last.json, step-N.safetensors or step-N.state.safetensors")


def load_weights_file(path: str) -> Dict[str, Tensor]:
    """Tensors of a .safetensors file or of a PyTorch .pt/.pth/.bin (a state dict, or {'model': state dict})."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such weights file")
    if path.endswith(".safetensors"):
        try:
            return load_with_metadata(path)[0]
        except SafetensorsError as err:
            raise CheckpointError(str(err)) from None
    try:
        # weights_only keeps a checkpoint from running code while unpickling (torch >= 1.13).
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for unreadable pickles
        try:
            # Official training checkpoints also hold an argparse.Namespace: read with our own allowlist.
            obj = official_fcmae.load_restricted(path)
        except Exception:  # noqa: BLE001
            raise CheckpointError(f"{path}: cannot load as PyTorch weights ({err})") from None
    for key in ("model", "state_dict", "model_ema"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: does not hold a state dict of tensors")
    return official_fcmae.densify(obj) if official_fcmae.is_sparse(obj) else dict(obj)


def read_state(path: str) -> Tuple[Dict[str, Tensor], Dict[str, Any]]:
    """A state file's tensors and its decoded metadata (`meta` JSON)."""
    try:
        tensors, metadata = load_with_metadata(path)
    except SafetensorsError as err:
        raise CheckpointError(str(err)) from None
    if metadata.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not a training state file (format {metadata.get('format')!r})")
    try:
        meta = json.loads(metadata["meta"])
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable state metadata ({err})") from None
    return tensors, meta


def optimizer_state_tensors(optimizer: torch.optim.Optimizer, names: Dict[int, str]) -> Dict[str, Tensor]:
    """optim.<param name>.<state key> for every tensor in the optimizer state (step counters included)."""
    out: Dict[str, Tensor] = {}
    for param, state in optimizer.state.items():
        name = names[id(param)]
        for key, value in state.items():
            out[f"optim.{name}.{key}"] = value if isinstance(value, torch.Tensor) else torch.tensor(float(value))
    return out


def load_optimizer_state(optimizer: torch.optim.Optimizer, names: Dict[int, str], tensors: Dict[str, Tensor],
                         source: str) -> None:
    """Rebuilds a torch optimizer state dict from name-keyed tensors and loads it (torch moves devices)."""
    sd = optimizer.state_dict()
    state: Dict[int, Dict[str, Tensor]] = {}
    index = 0
    for group in optimizer.param_groups:
        for param in group["params"]:
            prefix = f"optim.{names[id(param)]}."
            entry = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if entry:
                state[index] = entry
            index += 1
    expected = sum(1 for k in tensors if k.startswith("optim."))
    found = sum(len(v) for v in state.values())
    if found != expected:
        raise CheckpointError(f"{source}: optimizer state names {expected - found} tensors of parameters this "
                              f"model does not have")
    sd["state"] = state
    optimizer.load_state_dict(sd)


def rng_state_tensors() -> Dict[str, Tensor]:
    out = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["rng.cuda"] = torch.cuda.get_rng_state()
    return out


def restore_rng(tensors: Dict[str, Tensor]) -> None:
    if "rng.cpu" in tensors:
        torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])


def read_pointer(folder: str, name: str) -> Optional[Dict[str, Any]]:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        return None
    with open(path, "r", encoding="utf-8") as f:
        value = json.load(f)
    return value if isinstance(value, dict) else None
