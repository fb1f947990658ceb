"""Dataset manifests, image transforms and deterministic, resumable batch order.

Workers return uint8 CHW crops (and, for training, the random erasing boxes); normalisation and erasing
happen on the device (`normalize`, augment.apply_erasing), which moves 4x fewer bytes through pinned memory. Every random choice is seeded by (seed, epoch, index) or (seed, step), so a
run gives the same batches for any worker count and a resumed run continues the same sequence.
"""
from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from .augment import Augment, OpObserver, erase_boxes, parse_rand_augment, rand_augment

Tensor = torch.Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_CROP_PCT = 0.875
SPLITS = ("train", "val", "test")
_RESAMPLING = getattr(Image, "Resampling", Image)  # Pillow >= 9.1 moved the filter constants
BICUBIC = _RESAMPLING.BICUBIC
FLIP_LEFT_RIGHT = getattr(Image, "Transpose", Image).FLIP_LEFT_RIGHT


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class ManifestItem:
    path: str  # absolute
    label: Optional[int]
    split: str


@dataclass(frozen=True)
class Manifest:
    dataset: str
    root: str
    classes: Tuple[str, ...]
    items: Tuple[ManifestItem, ...]
    hash: str

    def split(self, name: str) -> List[ManifestItem]:
        return [it for it in self.items if it.split == name]


def load_manifest(path: str) -> Manifest:
    """Reads and validates a version-1 manifest; errors name the manifest and the offending item."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = json.load(f)
    except OSError as err:
        raise ManifestError(f"manifest {path}: cannot read ({err.strerror})") from None
    except json.JSONDecodeError as err:
        raise ManifestError(f"manifest {path}: not valid JSON ({err})") from None
    where = f"manifest {path}"
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: must be a JSON object")
    if raw.get("version") != 1:
        raise ManifestError(f"{where}: version must be 1, got {raw.get('version')!r}")
    for key in ("dataset", "createdAt", "hash", "root"):
        if not isinstance(raw.get(key), str):
            raise ManifestError(f"{where}: '{key}' must be a string")
    root = raw["root"]
    if not os.path.isabs(root) or not os.path.isdir(root):
        raise ManifestError(f"{where}: root {root!r} is not an absolute path to a folder")
    classes = raw.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ManifestError(f"{where}: 'classes' must be a list of strings")
    items = raw.get("items")
    if not isinstance(items, list):
        raise ManifestError(f"{where}: 'items' must be a list")
    parsed: List[ManifestItem] = []
    for i, item in enumerate(items):
        at = f"{where}: items[{i}]"
        if not isinstance(item, dict):
            raise ManifestError(f"{at}: must be an object")
        rel = item.get("path")
        if not isinstance(rel, str) or not rel or os.path.isabs(rel):
            raise ManifestError(f"{at}: 'path' must be a non-empty path relative to root")
        label = item.get("label")
        if label is not None and (not isinstance(label, int) or isinstance(label, bool)
                                  or not 0 <= label < len(classes)):
            raise ManifestError(f"{at}: 'label' must be null or an index into classes (0..{len(classes) - 1})")
        split = item.get("split")
        if split not in SPLITS:
            raise ManifestError(f"{at}: 'split' must be one of {', '.join(SPLITS)}")
        parsed.append(ManifestItem(os.path.join(root, rel), label, split))
    return Manifest(raw["dataset"], root, tuple(classes), tuple(parsed), raw["hash"])


def random_resized_crop_box(width: int, height: int, scale: Tuple[float, float], rng: random.Random,
                            ratio: Tuple[float, float] = (3 / 4, 4 / 3)) -> Tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box (left, top, w, h): 10 tries at a random area and log-uniform
    aspect, then a centre crop clamped to the ratio range."""
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, width - w), rng.randint(0, height - h), w, h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def to_uint8_chw(img: Image.Image) -> Tensor:
    w, h = img.size
    hwc = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).reshape(h, w, 3)
    return hwc.permute(2, 0, 1).contiguous()  # (H, W, 3) -> (3, H, W)


def pad_crop(img: Image.Image, size: int, pad: int, rng: random.Random) -> Image.Image:
    """torchvision RandomCrop(size, padding=pad) with black fill, on the image resized to size x size."""
    img = eval_geometry(img, size, 1.0)
    top, left = rng.randint(0, 2 * pad), rng.randint(0, 2 * pad)
    canvas = Image.new("RGB", (size, size))
    canvas.paste(img, (pad - left, pad - top))
    return canvas


def train_transform(img: Image.Image, size: int, aug: Augment, rng: random.Random,
                    observe: Optional[OpObserver] = None) -> Tuple[Tensor, Tensor]:
    """uint8 (3, size, size) and the random erasing boxes (recount, 4); data.augment's order: crop (or
    pad-crop), flip, RandAugment, erasing."""
    if aug.pad_crop is not None:
        img = pad_crop(img, size, aug.pad_crop, rng)
    else:
        left, top, w, h = random_resized_crop_box(img.width, img.height, aug.scale, rng, aug.ratio)
        img = img.resize((size, size), BICUBIC, box=(left, top, left + w, top + h))
    if rng.random() < aug.hflip:
        img = img.transpose(FLIP_LEFT_RIGHT)
    if aug.rand_augment is not None:
        img = rand_augment(img, parse_rand_augment(aug.rand_augment), rng, observe)
    return to_uint8_chw(img), erase_boxes(size, aug, rng)


def eval_transform(img: Image.Image, size: int) -> Tensor:
    return to_uint8_chw(eval_geometry(img, size, EVAL_CROP_PCT))


def eval_geometry(img: Image.Image, size: int, crop_pct: float) -> Image.Image:
    """Resize the short side to int(size / crop_pct) (bicubic), then centre-crop size x size."""
    short = int(size / crop_pct)
    w, h = img.size
    if w <= h:
        nw, nh = short, max(1, int(round(short * h / w)))
    else:
        nw, nh = max(1, int(round(short * w / h))), short
    img = img.resize((nw, nh), BICUBIC)
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def load_rgb(path: str) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")  # grayscale, palette and RGBA become 3-channel RGB


class ImageDataset(Dataset):
    """Items of one split; keyed by (epoch, index) so augmentation is reproducible in any worker.

    Training (`augment` given) yields (image, label, erase boxes); evaluation yields (image, label)."""

    def __init__(self, items: Sequence[ManifestItem], size: int, augment: Optional[Augment], seed: int) -> None:
        self.items = list(items)
        self.size = size
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: Tuple[int, int]) -> Tuple[Any, ...]:
        epoch, index = key
        item = self.items[index]
        try:
            img = load_rgb(item.path)
        except (OSError, ValueError) as err:
            raise RuntimeError(f"cannot read image {item.path}: {err}") from None
        label = -1 if item.label is None else item.label
        if self.augment is None:
            return eval_transform(img, self.size), label
        x, boxes = train_transform(img, self.size, self.augment, random.Random(f"{self.seed}:{epoch}:{index}"))
        return x, label, boxes


class EpochBatchSampler(Sampler):
    """Endless training batches: each epoch a seeded permutation cut into full batches (the rest dropped).

    `start_batch` is the number of batches already consumed, so a resumed run picks up mid-epoch.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, start_batch: int = 0) -> None:
        if num_items < batch_size:
            raise ValueError(f"the training split has {num_items} images, fewer than one batch of {batch_size}")
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.start_batch = start_batch
        self.batches_per_epoch = num_items // batch_size

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        epoch, offset = divmod(self.start_batch, self.batches_per_epoch)
        while True:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.num_items, generator=g).tolist()
            for b in range(offset, self.batches_per_epoch):
                chunk = order[b * self.batch_size:(b + 1) * self.batch_size]
                yield [(epoch, i) for i in chunk]
            epoch, offset = epoch + 1, 0


class SequentialBatchSampler(Sampler):
    def __init__(self, num_items: int, batch_size: int) -> None:
        self.num_items = num_items
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        for start in range(0, self.num_items, self.batch_size):
            yield [(0, i) for i in range(start, min(start + self.batch_size, self.num_items))]

    def __len__(self) -> int:
        return (self.num_items + self.batch_size - 1) // self.batch_size


def make_loader(dataset: ImageDataset, batch_sampler: Sampler, workers: int, pin_memory: bool,
                seed: int) -> DataLoader:
    # A generator of our own keeps the DataLoader from drawing its base seed from the global RNG,
    # which would make the drop-path sequence depend on when loaders are created.
    return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=workers, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(seed))


def normalize(batch: Tensor, device: torch.device, channels_last: bool) -> Tensor:
    """uint8 (N, 3, H, W) -> float32 ImageNet-normalised on `device`."""
    x = batch.to(device, non_blocking=True).float()
    mean = torch.tensor(IMAGENET_MEAN, device=device).reshape(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=device).reshape(1, 3, 1, 1) * 255.0
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
