"""Training augmentation as the job config's data.augment names it, the same as the ONNX engine's loader
(common/augment.ts, data/pipeline/randaugment.ts): timm's create_transform is the reference.

Per sample, in this order and from one seeded `random.Random`: crop (RandomResizedCrop, or pad + random
crop), horizontal flip, RandAugment (a timm policy string such as `rand-m9-mstd0.5-inc1`), then the random
erasing boxes. The boxes are filled later, on the device, after normalisation (erasing works in normalized
space: N(0, 1) noise), so workers keep sending uint8 images.
"""
from __future__ import annotations

import functools
import math
import random
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
from PIL import Image, ImageEnhance, ImageOps

Tensor = torch.Tensor
MAX_MAGNITUDE = 10.0
FILL = (124, 116, 104)  # timm's fill: the ImageNet mean in 0..255
FINETUNE_RAND_AUGMENT = "rand-m9-mstd0.5-inc1"
ERASE_MODES = ("pixel", "rand", "const")
# Geometric ops sample bilinearly, as the ONNX engine's loader does (timm: the train interpolation).
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR
_AFFINE = getattr(Image, "Transform", Image).AFFINE


@dataclass(frozen=True)
class Augment:
    scale: Tuple[float, float]
    ratio: Tuple[float, float]
    hflip: float
    pad_crop: Optional[int]
    rand_augment: Optional[str]
    reprob: float
    remode: str
    recount: int


def default_augment(kind: str) -> Augment:
    """The paper's recipe by job kind: FCMAE crops 0.2..1 and flips; fine-tuning adds RandAugment and erasing."""
    finetune = kind != "pretrain"
    return Augment(scale=(0.08, 1.0) if finetune else (0.2, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.5, pad_crop=None,
                   rand_augment=FINETUNE_RAND_AUGMENT if finetune else None, reprob=0.25 if finetune else 0.0,
                   remode="pixel", recount=1)


@dataclass(frozen=True)
class RandAugmentPolicy:
    layers: int = 2
    magnitude: float = 10.0
    magnitude_std: float = 0.0  # inf: uniform in [0, magnitude]
    magnitude_max: float = 10.0
    prob: float = 0.5
    increasing: bool = False


@functools.lru_cache(maxsize=None)
def parse_rand_augment(policy: str) -> RandAugmentPolicy:
    """A timm policy string: `rand`, then dash-separated m, n, mstd, mmax, p, inc sections in any order."""
    head, *sections = policy.split("-")
    if head != "rand":
        raise ValueError(f"RandAugment policy '{policy}' must start with 'rand' (e.g. {FINETUNE_RAND_AUGMENT})")
    values: Dict[str, float] = {}
    for s in sections:
        m = re.fullmatch(r"(mstd|mmax|inc|m|n|p)(\d+(?:\.\d+)?)", s)
        if not m:
            raise ValueError(f"RandAugment policy '{policy}': unknown section '{s}' (known: m, n, mstd, mmax, p, inc)")
        values[m.group(1)] = float(m.group(2))
    mstd = values.get("mstd", 0.0)
    p = RandAugmentPolicy(layers=int(values.get("n", 2)), magnitude=values.get("m", 10.0),
                          magnitude_std=math.inf if mstd > 100 else mstd, magnitude_max=values.get("mmax", 10.0),
                          prob=values.get("p", 0.5), increasing=values.get("inc", 0.0) != 0)
    if p.layers < 1 or p.layers != values.get("n", 2):
        raise ValueError(f"RandAugment policy '{policy}': n must be a positive integer")
    if p.prob > 1:
        raise ValueError(f"RandAugment policy '{policy}': p must be in [0, 1]")
    return p


# ---- RandAugment ops (PIL), timm's level-to-argument functions, magnitude m in 0..10 -------------------
def _negate(v: float, rng: random.Random) -> float:
    return -v if rng.random() > 0.5 else v


def _affine(img: Image.Image, matrix: Tuple[float, ...]) -> Image.Image:
    return img.transform(img.size, _AFFINE, matrix, resample=_BILINEAR, fillcolor=FILL)


def _posterize(img: Image.Image, bits: int) -> Image.Image:
    return img if bits >= 8 else ImageOps.posterize(img, bits)


def _solarize_add(img: Image.Image, m: float, _rng: random.Random) -> Image.Image:
    add = int(m / MAX_MAGNITUDE * 110)
    return img.point([min(255, v + add) if v < 128 else v for v in range(256)] * 3)


def _increasing(m: float, rng: random.Random) -> float:
    return 1.0 + _negate(m / MAX_MAGNITUDE * 0.9, rng)


def _factor(m: float) -> float:
    return m / MAX_MAGNITUDE * 1.8 + 0.1


Op = Callable[[Image.Image, float, random.Random], Image.Image]
_SHARED: Dict[str, Op] = {
    "AutoContrast": lambda img, m, rng: ImageOps.autocontrast(img),
    "Equalize": lambda img, m, rng: ImageOps.equalize(img),
    "Invert": lambda img, m, rng: ImageOps.invert(img),
    "Rotate": lambda img, m, rng: img.rotate(_negate(m / MAX_MAGNITUDE * 30, rng), resample=_BILINEAR, fillcolor=FILL),
    "SolarizeAdd": _solarize_add,
    "ShearX": lambda img, m, rng: _affine(img, (1, _negate(m / MAX_MAGNITUDE * 0.3, rng), 0, 0, 1, 0)),
    "ShearY": lambda img, m, rng: _affine(img, (1, 0, 0, _negate(m / MAX_MAGNITUDE * 0.3, rng), 1, 0)),
    "TranslateXRel": lambda img, m, rng: _affine(img, (1, 0, _negate(m / MAX_MAGNITUDE * 0.45, rng) * img.width, 0, 1, 0)),
    "TranslateYRel": lambda img, m, rng: _affine(img, (1, 0, 0, 0, 1, _negate(m / MAX_MAGNITUDE * 0.45, rng) * img.height)),
}
_ENHANCE = {"Color": ImageEnhance.Color, "Contrast": ImageEnhance.Contrast, "Brightness": ImageEnhance.Brightness,
            "Sharpness": ImageEnhance.Sharpness}
_ORDER = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color", "Contrast",
          "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")


def _enhance(name: str, increasing: bool) -> Op:
    cls = _ENHANCE[name]
    if increasing:
        return lambda img, m, rng: cls(img).enhance(_increasing(m, rng))
    return lambda img, m, rng: cls(img).enhance(_factor(m))


def _op_table(increasing: bool) -> List[Tuple[str, Op]]:
    """timm's _RAND_INCREASING_TRANSFORMS (increasing) or _RAND_TRANSFORMS, in timm's order."""
    suffix = "Increasing" if increasing else ""
    table: Dict[str, Op] = dict(_SHARED)
    if increasing:
        table["Posterize"] = lambda img, m, rng: _posterize(img, 4 - int(m / MAX_MAGNITUDE * 4))
        table["Solarize"] = lambda img, m, rng: ImageOps.solarize(img, 256 - int(m / MAX_MAGNITUDE * 256))
    else:
        table["Posterize"] = lambda img, m, rng: _posterize(img, int(m / MAX_MAGNITUDE * 4))
        table["Solarize"] = lambda img, m, rng: ImageOps.solarize(img, int(m / MAX_MAGNITUDE * 256))
    for name in _ENHANCE:
        table[name] = _enhance(name, increasing)
    renamed = {"Posterize", "Solarize", *_ENHANCE}
    return [(name + suffix if name in renamed else name, table[name]) for name in _ORDER]


INCREASING_OPS = _op_table(True)
ORIGINAL_OPS = _op_table(False)
OpObserver = Callable[[str, float], None]


def rand_augment(img: Image.Image, policy: RandAugmentPolicy, rng: random.Random,
                 observe: Optional[OpObserver] = None) -> Image.Image:
    """`layers` ops drawn with replacement, each applied with probability `prob` at a magnitude ~ N(m, mstd)
    (uniform in [0, m] when mstd is infinite) clipped to [0, mmax]."""
    ops = INCREASING_OPS if policy.increasing else ORIGINAL_OPS
    for _ in range(policy.layers):
        name, op = ops[rng.randrange(len(ops))]
        if policy.prob < 1 and rng.random() > policy.prob:
            continue
        m = policy.magnitude
        if math.isinf(policy.magnitude_std):
            m = rng.uniform(0, m)
        elif policy.magnitude_std > 0:
            m = rng.gauss(m, policy.magnitude_std)
        m = max(0.0, min(policy.magnitude_max, m))
        if observe is not None:
            observe(name, m)
        img = op(img, m, rng)
    return img


# ---- random erasing ----------------------------------------------------------------------
def erase_boxes(size: int, aug: Augment, rng: random.Random) -> Tensor:
    """timm RandomErasing's boxes (top, left, height, width) for one sample, as rows of an (recount, 4) int
    tensor; unused rows are zero. With probability reprob: 1..recount boxes, each of area 2%..33% of the
    image / count and log-uniform aspect 0.3..3.3 (10 tries)."""
    boxes = torch.zeros(aug.recount, 4, dtype=torch.int64)
    if aug.reprob <= 0 or rng.random() >= aug.reprob:
        return boxes
    area = size * size
    count = 1 if aug.recount == 1 else rng.randint(1, aug.recount)
    for k in range(count):
        for _ in range(10):
            target = rng.uniform(0.02, 1 / 3) * area / count
            aspect = math.exp(rng.uniform(math.log(0.3), math.log(1 / 0.3)))
            h, w = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if w < size and h < size:
                boxes[k] = torch.tensor([rng.randint(0, size - h), rng.randint(0, size - w), h, w])
                break
    return boxes


def apply_erasing(x: Tensor, boxes: Tensor, mode: str, noise_of: Callable[[int], torch.Generator]) -> Tensor:
    """Fills each sample's boxes of normalized (N, 3, H, W) `x` in place: N(0, 1) per pixel ('pixel'), one
    N(0, 1) value per channel ('rand') or zeros ('const'). Sample i's noise is drawn on the CPU from
    `noise_of(i)`, so a sample gets the same noise whichever process of a data-parallel run holds it."""
    generators: Dict[int, torch.Generator] = {}
    for i, t, l, h, w in _rows(boxes):
        shape = (3, h, w) if mode == "pixel" else (3, 1, 1)
        gen = generators.setdefault(i, noise_of(i)) if mode != "const" else None
        fill = torch.zeros(shape) if gen is None else torch.randn(shape, generator=gen)
        x[i, :, t:t + h, l:l + w] = fill.to(x.device, x.dtype)
    return x


def _rows(boxes: Tensor) -> List[Tuple[int, int, int, int, int]]:
    """(N, K, 4) boxes -> (sample, top, left, height, width) for the non-empty ones."""
    return [(i, *map(int, b)) for i in range(boxes.shape[0]) for b in boxes[i] if b[2] > 0 and b[3] > 0]
