"""safetensors and .npy I/O: round trips, the on-disk layout, and errors that name the file and the key."""
from __future__ import annotations

import json
import os
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from cnx_torch.npy_io import NpyError, load_npy, save_npy  # noqa: E402
from cnx_torch.safetensors_io import SafetensorsError, load_metadata, load_with_metadata, save_file  # noqa: E402


def raw_file(path: str, header: dict, data: bytes) -> None:
    """Writes a safetensors file byte by byte, independently of save_file."""
    encoded = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded + data)


class RoundTrip(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "w.safetensors")

    def tearDown(self) -> None:
        self.dir.cleanup()

    def test_every_dtype_shape_and_metadata(self) -> None:
        torch.manual_seed(0)
        tensors = {
            "f32": torch.randn(3, 4), "f16": torch.randn(5).half(), "bf16": torch.randn(2, 2).bfloat16(),
            "i64": torch.arange(-3, 4), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3),
            "u8": torch.arange(7, dtype=torch.uint8), "f64": torch.randn(2, dtype=torch.float64),
            "strided": torch.randn(4, 6).t(),  # non-contiguous input is stored in logical order
        }
        save_file(tensors, self.path, {"arch": "convnextv2_atto"})
        loaded, metadata = load_with_metadata(self.path)
        self.assertEqual(metadata, {"arch": "convnextv2_atto"})
        self.assertEqual(set(loaded), set(tensors))
        for key, value in tensors.items():
            self.assertEqual(loaded[key].dtype, value.dtype, key)
            self.assertTrue(torch.equal(loaded[key], value), key)
        self.assertEqual(load_metadata(self.path), {"arch": "convnextv2_atto"})
        self.assertEqual([n for n in os.listdir(self.dir.name)], ["w.safetensors"])  # no temp file left

    def test_layout_is_standard_safetensors(self) -> None:
        save_file({"b": torch.tensor([1.0, 2.0]), "a": torch.tensor([7], dtype=torch.int64)}, self.path)
        with open(self.path, "rb") as f:
            data = f.read()
        (n,) = struct.unpack("<Q", data[:8])
        self.assertEqual((8 + n) % 8, 0)  # data buffer aligned
        header = json.loads(data[8:8 + n])
        self.assertEqual(header["a"], {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]})
        self.assertEqual(header["b"], {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]})
        self.assertEqual(struct.unpack("<q2f", data[8 + n:]), (7, 1.0, 2.0))

    def test_reads_a_file_written_by_hand(self) -> None:
        raw_file(self.path, {"x": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
                             "__metadata__": {"k": "v"}}, struct.pack("<2e", 1.5, -2.0))
        loaded, metadata = load_with_metadata(self.path)
        self.assertTrue(torch.equal(loaded["x"], torch.tensor([1.5, -2.0], dtype=torch.float16)))
        self.assertEqual(metadata, {"k": "v"})

    def test_failed_write_keeps_the_old_file(self) -> None:
        save_file({"a": torch.ones(2)}, self.path)
        with self.assertRaisesRegex(SafetensorsError, "'bad'.*complex"):
            save_file({"a": torch.zeros(2), "bad": torch.zeros(2, dtype=torch.complex64)}, self.path)
        self.assertTrue(torch.equal(load_with_metadata(self.path)[0]["a"], torch.ones(2)))
        self.assertEqual(os.listdir(self.dir.name), ["w.safetensors"])


class CorruptFiles(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "bad.safetensors")

    def tearDown(self) -> None:
        self.dir.cleanup()

    def assert_error(self, pattern: str) -> None:
        with self.assertRaises(SafetensorsError) as ctx:
            load_with_metadata(self.path)
        self.assertIn(self.path, str(ctx.exception))
        self.assertRegex(str(ctx.exception), pattern)

    def test_truncated_data_names_the_tensor(self) -> None:
        save_file({"stem.0.weight": torch.randn(4, 4), "z": torch.randn(3)}, self.path)
        with open(self.path, "rb+") as f:
            f.truncate(os.path.getsize(self.path) - 4)
        self.assert_error("tensor 'z'.*truncated")

    def test_header_length_beyond_the_file(self) -> None:
        with open(self.path, "wb") as f:
            f.write(struct.pack("<Q", 1 << 40) + b"{}")
        self.assert_error("header length")

    def test_empty_and_tiny_files(self) -> None:
        open(self.path, "wb").close()
        self.assert_error("empty")
        with open(self.path, "wb") as f:
            f.write(b"\x01\x02")
        self.assert_error("too short")

    def test_header_not_json(self) -> None:
        with open(self.path, "wb") as f:
            f.write(struct.pack("<Q", 5) + b"{oops")
        self.assert_error("not valid JSON")

    def test_unknown_dtype_names_the_tensor(self) -> None:
        raw_file(self.path, {"w": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}, b"\0")
        self.assert_error("tensor 'w'.*unsupported dtype")

    def test_size_mismatch_names_the_tensor(self) -> None:
        raw_file(self.path, {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8)
        self.assert_error("tensor 'w'.*needs 12")

    def test_overlapping_tensors(self) -> None:
        raw_file(self.path, {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                             "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8)
        self.assert_error("tensor '[ab]'.*overlaps")

    def test_bad_shape_and_metadata(self) -> None:
        raw_file(self.path, {"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4)
        self.assert_error("tensor 'w'.*shape")
        raw_file(self.path, {"__metadata__": {"step": 3}}, b"")
        self.assert_error("__metadata__")

    def test_missing_file(self) -> None:
        self.assert_error("cannot open")  # setUp creates only the folder


class Npy(unittest.TestCase):
    def test_round_trip_and_numpy_compatibility(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "x.npy")
            for tensor in (torch.randn(2, 3, 4), torch.arange(5), torch.tensor(1.5, dtype=torch.float64),
                           torch.zeros(0, 2)):
                save_npy(path, tensor)
                self.assertTrue(torch.equal(load_npy(path), tensor))
            try:
                import numpy as np
            except ImportError:
                self.skipTest("numpy not installed: only our own round trip was checked")
            arr = np.arange(12, dtype=np.float32).reshape(3, 4)
            np.save(path, arr)
            self.assertTrue(torch.equal(load_npy(path), torch.arange(12, dtype=torch.float32).reshape(3, 4)))
            save_npy(path, torch.ones(2, 2, dtype=torch.int64))
            self.assertTrue((np.load(path) == np.ones((2, 2), dtype=np.int64)).all())

    def test_rejects_non_npy(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "x.npy")
            with open(path, "wb") as f:
                f.write(b"not numpy")
            with self.assertRaisesRegex(NpyError, "bad magic"):
                load_npy(path)


if __name__ == "__main__":
    unittest.main()
