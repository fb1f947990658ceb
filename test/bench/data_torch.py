"""Reference for `npm run bench:data`: PIL decode + torchvision RandomResizedCrop(224, bicubic) + flip +
ToTensor + Normalize, single-threaded, over the JPEG files given on the command line.
Prints one JSON line: {"torch_img_s": (wall), "torch_img_cpu_s": (per CPU-second), "images": ...}."""
import json
import sys
import time

import torch
from PIL import Image
from torchvision import transforms

torch.set_num_threads(1)
torch.manual_seed(0)

passes = int(sys.argv[1])
files = sys.argv[2:]
transform = transforms.Compose([
    transforms.RandomResizedCrop(224, interpolation=transforms.InterpolationMode.BICUBIC),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
])


def load(path):
    with open(path, 'rb') as f:
        return transform(Image.open(f).convert('RGB'))


for path in files[:20]:  # warm-up: imports, allocator, file cache
    load(path)
start = time.perf_counter()
cpu_start = time.process_time()
n = 0
for _ in range(passes):
    for path in files:
        x = load(path)
        assert x.shape == (3, 224, 224)
        n += 1
elapsed = time.perf_counter() - start
cpu = time.process_time() - cpu_start
print(json.dumps({"torch_img_s": n / elapsed, "torch_img_cpu_s": n / cpu, "images": n}))
