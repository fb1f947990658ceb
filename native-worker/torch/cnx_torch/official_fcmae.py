"""The official FCMAE checkpoints (facebookresearch/ConvNeXt-V2) for the PyTorch engine.

main_pretrain.py saves {'model', 'optimizer', 'epoch', 'scaler', 'args'}: `args` is an argparse.Namespace,
which torch.load(weights_only=True) refuses, and the encoder is MinkowskiEngine's sparse layout (weights
named `kernel`, modules wrapped as `.ln` / `.linear`, conv kernels (k*k, Cin, Cout), depthwise (k*k, C),
biases and GRN parameters (1, C)). `load_restricted` reads such a file with an allowlist of globals (tensor
rebuilding, OrderedDict, and Namespace rebuilt as a plain dict; torch 1.13's torch.load ignores a custom
pickle module, so the zip is read here); `densify` turns sparse names and shapes
into the official dense ones, as the official fine-tuning script does (utils.remap_checkpoint_keys).
The ONNX engine does the same in native-worker/checkpoint/layout.ts.
"""
from __future__ import annotations

import collections
import io
import math
import pickle
import zipfile
from typing import Any, Dict

import torch

Tensor = torch.Tensor


class PlainNamespace(dict):
    """What an argparse.Namespace in a checkpoint becomes: its attributes as a dict, nothing callable."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


def _rebuild_tensor(storage: Tensor, offset: int, size: Any, stride: Any, *_: Any) -> Tensor:
    return storage.as_strided(tuple(size), tuple(stride), offset)


def _rebuild_parameter(data: Tensor, *_: Any) -> Tensor:
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("argparse", "Namespace"): PlainNamespace,
}


class _Unpickler(pickle.Unpickler):
    """Knows only the globals above, storage types (as dtypes) and torch dtypes; storages come from the zip."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None and module == "torch":
            found = _STORAGE_DTYPES.get(name) or getattr(torch, name, None)
            found = found if isinstance(found, torch.dtype) else None
        if found is None:
            raise pickle.UnpicklingError(f"refusing the global {module}.{name} (not plain checkpoint data)")
        return found

    def persistent_load(self, pid: Any) -> Tensor:
        # ('storage', storage type, key, location, numel): the storage as a flat tensor of its dtype.
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], torch.dtype)):
            raise pickle.UnpicklingError("unknown persistent id")
        data = bytearray(self.archive.read(f"{self.prefix}data/{pid[2]}"))
        return torch.frombuffer(data, dtype=pid[1]) if data else torch.empty(0, dtype=pid[1])


def load_restricted(path: str) -> Any:
    """A torch.save zip (little-endian) read without running anything from it."""
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise pickle.UnpicklingError("not a torch.save archive")
        prefix = pickles[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in archive.namelist() and archive.read(f"{prefix}byteorder").strip() != b"little":
            raise pickle.UnpicklingError("big-endian archive")
        return _Unpickler(archive.read(pickles[0]), archive, prefix).load()


def is_sparse(state: Dict[str, Tensor]) -> bool:
    return any(k.endswith(".kernel") or ".ln." in k or ".linear." in k for k in state)


def _dense_kernel(v: Tensor) -> Tensor:
    """(k*k, Cin, Cout) or depthwise (k*k, C) -> (Cout, Cin, k, k); kernel offset = col * k + row."""
    if v.dim() == 2:
        v = v.unsqueeze(1)
    kv, cin, cout = v.shape
    k = int(round(math.sqrt(kv)))
    return v.permute(2, 1, 0).reshape(cout, cin, k, k).transpose(2, 3).contiguous()


def densify(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Sparse FCMAE encoder names and shapes -> official dense ones; other tensors pass unchanged."""
    out: Dict[str, Tensor] = {}
    for key, value in state.items():
        if key.endswith(".kernel"):
            key, value = key[: -len("kernel")] + "weight", _dense_kernel(value)
        key = key.replace(".ln.", ".").replace(".linear.", ".")
        if key.endswith(".bias") and value.dim() == 2 and value.shape[0] == 1:
            value = value.reshape(-1)
        out[key] = value
    return out
