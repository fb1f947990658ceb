"""A small safetensors reader/writer (no dependency beyond torch).

Layout: u64 little-endian header length N, N bytes of JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the data buffer.
Reading validates the whole header first and names the file and the key in every error.
Writing is atomic: a temporary file in the same folder, fsync, then rename over the target.
"""
from __future__ import annotations

import ctypes
import json
import mmap
import os
import struct
import sys
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from .fileio import atomic_file

Tensor = torch.Tensor

DTYPES: Dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool,
}
DTYPE_NAMES: Dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}
ALIGN = 8
MAX_HEADER = 100 * 1024 * 1024  # the format's own limit; larger means a corrupt length field


class SafetensorsError(ValueError):
    """A file that is not valid safetensors, or a tensor that cannot be stored."""


def _check_little_endian() -> None:
    if sys.byteorder != "little":
        raise SafetensorsError("safetensors I/O here assumes a little-endian machine")


def _parse_header(path: str, raw: bytes, file_size: int) -> Tuple[int, Dict[str, dict], Dict[str, str]]:
    if len(raw) < 8:
        raise SafetensorsError(f"{path}: file is {len(raw)} bytes, too short for a safetensors header")
    (header_len,) = struct.unpack("<Q", raw[:8])
    if header_len > MAX_HEADER or 8 + header_len > file_size:
        raise SafetensorsError(f"{path}: header length {header_len} does not fit the file ({file_size} bytes)")
    try:
        header = json.loads(raw[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SafetensorsError(f"{path}: header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in metadata.items()):
        raise SafetensorsError(f"{path}: __metadata__ must map strings to strings")
    data_len = file_size - 8 - header_len
    spans: List[Tuple[int, int, str]] = []
    for key, entry in header.items():
        where = f"{path}: tensor '{key}'"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise SafetensorsError(f"{where}: entry must have exactly dtype, shape and data_offsets")
        dtype = entry["dtype"]
        if dtype not in DTYPES:
            raise SafetensorsError(f"{where}: unsupported dtype {dtype!r} (supported: {', '.join(DTYPES)})")
        shape = entry["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise SafetensorsError(f"{where}: shape must be a list of non-negative integers, got {shape!r}")
        offsets = entry["data_offsets"]
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise SafetensorsError(f"{where}: data_offsets must be two integers, got {offsets!r}")
        begin, end = offsets
        numel = 1
        for d in shape:
            numel *= d
        expected = numel * torch.empty((), dtype=DTYPES[dtype]).element_size()
        if not 0 <= begin <= end <= data_len:
            raise SafetensorsError(f"{where}: data_offsets [{begin}, {end}] outside the data buffer "
                                   f"({data_len} bytes); the file may be truncated")
        if end - begin != expected:
            raise SafetensorsError(f"{where}: holds {end - begin} bytes but {dtype} {shape} needs {expected}")
        spans.append((begin, end, key))
    spans.sort()
    cursor = 0
    for begin, end, key in spans:
        if begin != cursor:
            raise SafetensorsError(f"{path}: tensor '{key}': data at byte {begin} overlaps or leaves a gap "
                                   f"(expected {cursor})")
        cursor = end
    if cursor != data_len:
        raise SafetensorsError(f"{path}: {data_len - cursor} trailing bytes after the last tensor")
    return 8 + header_len, header, metadata


def load_with_metadata(path: str, device: str = "cpu") -> Tuple[Dict[str, Tensor], Dict[str, str]]:
    """Reads every tensor (copied out of the file, so the file can be replaced afterwards) and the metadata."""
    _check_little_endian()
    try:
        f = open(path, "rb")
    except OSError as err:
        raise SafetensorsError(f"{path}: cannot open ({err.strerror})") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise SafetensorsError(f"{path}: file is empty")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            base, header, metadata = _parse_header(path, mm[:min(size, 8 + MAX_HEADER)], size)
            tensors: Dict[str, Tensor] = {}
            for key, entry in header.items():
                dtype = DTYPES[entry["dtype"]]
                begin, end = entry["data_offsets"]
                if end == begin:
                    tensor = torch.empty(entry["shape"], dtype=dtype)
                else:
                    # bytearray copy: writable and aligned, so torch.frombuffer neither warns nor misaligns
                    tensor = torch.frombuffer(bytearray(mm[base + begin:base + end]), dtype=dtype)
                    tensor = tensor.reshape(entry["shape"])
                tensors[key] = tensor.to(device) if device != "cpu" else tensor
    return tensors, metadata


def load_file(path: str, device: str = "cpu") -> Dict[str, Tensor]:
    return load_with_metadata(path, device)[0]


def load_metadata(path: str) -> Dict[str, str]:
    """Reads only the header's metadata (cheap for large files)."""
    _check_little_endian()
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) == 8:
                (n,) = struct.unpack("<Q", head)
                head += f.read(min(n, MAX_HEADER))
    except OSError as err:
        raise SafetensorsError(f"{path}: cannot open ({err.strerror})") from None
    return _parse_header(path, head, size)[2]


def save_file(tensors: Mapping[str, Tensor], path: str, metadata: Optional[Mapping[str, str]] = None) -> None:
    """Writes tensors (any device; stored contiguous, little-endian) atomically to `path`."""
    _check_little_endian()
    header: Dict[str, object] = {}
    if metadata:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise SafetensorsError(f"{path}: metadata values must be strings (keys {bad})")
        header["__metadata__"] = dict(metadata)
    prepared: List[Tuple[str, Tensor]] = []
    offset = 0
    for key in sorted(tensors):
        tensor = tensors[key]
        if not isinstance(tensor, torch.Tensor):
            raise SafetensorsError(f"{path}: tensor '{key}': not a tensor ({type(tensor).__name__})")
        if tensor.dtype not in DTYPE_NAMES:
            raise SafetensorsError(f"{path}: tensor '{key}': dtype {tensor.dtype} cannot be stored "
                                   f"(supported: {', '.join(DTYPES)})")
        flat = tensor.detach().to("cpu").contiguous()
        nbytes = flat.numel() * flat.element_size()
        header[key] = {"dtype": DTYPE_NAMES[flat.dtype], "shape": list(flat.shape),
                       "data_offsets": [offset, offset + nbytes]}
        prepared.append((key, flat))
        offset += nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-(8 + len(encoded)) % ALIGN)  # pad so the data buffer starts 8-byte aligned
    with atomic_file(path) as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for _, flat in prepared:
            if flat.numel():
                f.write(ctypes.string_at(flat.data_ptr(), flat.numel() * flat.element_size()))
