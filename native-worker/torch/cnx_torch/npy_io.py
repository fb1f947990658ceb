"""Minimal .npy reader/writer (format versions 1-3, C order, little-endian), so numpy stays optional."""
from __future__ import annotations

import ast
import ctypes
import struct
from typing import Dict, Tuple

import torch

from .fileio import atomic_file

Tensor = torch.Tensor

MAGIC = b"\x93NUMPY"
DESCR_TO_DTYPE: Dict[str, torch.dtype] = {
    "<f8": torch.float64, "<f4": torch.float32, "<f2": torch.float16, "<i8": torch.int64,
    "<i4": torch.int32, "|u1": torch.uint8, "|b1": torch.bool,
}
DTYPE_TO_DESCR: Dict[torch.dtype, str] = {v: k for k, v in DESCR_TO_DTYPE.items()}


class NpyError(ValueError):
    pass


def _read_header(path: str, data: bytes) -> Tuple[str, Tuple[int, ...], int]:
    if data[:6] != MAGIC:
        raise NpyError(f"{path}: not a .npy file (bad magic)")
    major = data[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", data[8:10])
        start = 10
    elif major in (2, 3):
        (hlen,) = struct.unpack("<I", data[8:12])
        start = 12
    else:
        raise NpyError(f"{path}: unsupported .npy version {major}")
    try:
        header = ast.literal_eval(data[start:start + hlen].decode("latin1" if major < 3 else "utf-8"))
    except (ValueError, SyntaxError) as err:
        raise NpyError(f"{path}: unreadable header ({err})") from None
    if not isinstance(header, dict) or header.get("fortran_order"):
        raise NpyError(f"{path}: only C-ordered arrays are supported")
    descr = header.get("descr")
    if descr not in DESCR_TO_DTYPE:
        raise NpyError(f"{path}: dtype {descr!r} unsupported (supported: {', '.join(DESCR_TO_DTYPE)})")
    shape = tuple(header.get("shape", ()))
    return descr, shape, start + hlen


def load_npy(path: str) -> Tensor:
    with open(path, "rb") as f:
        data = f.read()
    descr, shape, offset = _read_header(path, data)
    dtype = DESCR_TO_DTYPE[descr]
    numel = 1
    for d in shape:
        numel *= d
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    if len(data) - offset != nbytes:
        raise NpyError(f"{path}: holds {len(data) - offset} data bytes, {descr} {shape} needs {nbytes}")
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(data[offset:]), dtype=dtype).reshape(shape)


def save_npy(path: str, tensor: Tensor) -> None:
    """Writes `tensor` as a version-1 .npy file, atomically."""
    flat = tensor.detach().to("cpu").contiguous()
    if flat.dtype not in DTYPE_TO_DESCR:
        raise NpyError(f"{path}: dtype {flat.dtype} cannot be written as .npy here")
    shape = repr(tuple(flat.shape))  # "(2, 3)", "(5,)", "()" as numpy writes them
    header = f"{{'descr': '{DTYPE_TO_DESCR[flat.dtype]}', 'fortran_order': False, 'shape': {shape}, }}"
    pad = -(10 + len(header) + 1) % 64  # numpy aligns the data to 64 bytes
    encoded = (header + " " * pad + "\n").encode("latin1")
    with atomic_file(path) as f:
        f.write(MAGIC + bytes([1, 0]) + struct.pack("<H", len(encoded)) + encoded)
        if flat.numel():
            f.write(ctypes.string_at(flat.data_ptr(), flat.numel() * flat.element_size()))
