"""The PyTorch engine's training augmentation, sampled for the cross-engine statistical test
(test/unit/augment-parity.test.ts).
usage: augment_stats.py samples IMAGE SIZE N AUGMENT_JSON   per-sample records as JSON
       augment_stats.py ops RAW WIDTH HEIGHT MAGNITUDE OUT  every RandAugment op on a raw RGB image, both signs
`samples` prints, per sample: the mean and std of the normalized tensor, the ops applied with their
magnitudes, and the erased boxes. `ops` writes, per op of both sets and per sign, the uint8 RGB result."""
import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'native-worker', 'torch'))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from cnx_torch.augment import INCREASING_OPS, ORIGINAL_OPS, Augment, apply_erasing  # noqa: E402
from cnx_torch.data import load_rgb, normalize, train_transform  # noqa: E402

torch.set_num_threads(1)


def samples(path, size, n, raw):
    aug = Augment(scale=tuple(raw['scale']), ratio=tuple(raw['ratio']), hflip=raw['hflip'], pad_crop=raw['padCrop'],
                  rand_augment=raw['randAugment'], reprob=raw['reprob'], remode=raw['remode'], recount=raw['recount'])
    img = load_rgb(path)
    gen = torch.Generator().manual_seed(0)
    records = []
    for seed in range(n):
        ops = []
        x, boxes = train_transform(img, size, aug, random.Random(f'stats:{seed}'), lambda name, m: ops.append([name, m]))
        x = apply_erasing(normalize(x[None], torch.device('cpu'), False), boxes[None], aug.remode, lambda _sample: gen)[0]
        erased = [[int(v) for v in b] for b in boxes if b[2] > 0]
        records.append({'mean': float(x.mean()), 'std': float(x.std(unbiased=False)), 'ops': ops, 'erased': erased})
    print(json.dumps(records))


class Sign(random.Random):
    """random() fixed above or below 0.5: timm's random negation is then forced."""

    def __init__(self, value):
        super().__init__(0)
        self.value = value

    def random(self):
        return self.value


def ops(raw_path, width, height, magnitude, out):
    img = Image.frombytes('RGB', (width, height), open(raw_path, 'rb').read())
    with open(out, 'wb') as f:
        for name, op in INCREASING_OPS + ORIGINAL_OPS:
            for sign in (0.9, 0.1):
                f.write(op(img, magnitude, Sign(sign)).tobytes())


if sys.argv[1] == 'samples':
    samples(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5]))
else:
    ops(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6])
