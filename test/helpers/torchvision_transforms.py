"""Reference transforms for the data-pipeline tests: torchvision's eval transform (Resize(int(size/crop_pct),
bicubic) + CenterCrop(size) + ToTensor + Normalize), and its RandomResizedCrop with fixed crop parameters.
usage: torchvision_transforms.py eval IMAGE SIZE CROP_PCT OUT
       torchvision_transforms.py crop IMAGE SIZE TOP LEFT HEIGHT WIDTH FLIP OUT
       torchvision_transforms.py padcrop IMAGE SIZE PAD TOP LEFT FLIP OUT   (Resize(SIZE) + CenterCrop(SIZE), then
           RandomCrop(SIZE, padding=PAD) with the window at TOP, LEFT of the padded image, then the flip)
       torchvision_transforms.py batch   (one job per stdin line: the arguments above, tab-separated)
Writes the (3, SIZE, SIZE) float32 result to OUT."""
import sys

import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import functional as F

torch.set_num_threads(1)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
to_tensor = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


def run(args):
    mode, path = args[0], args[1]
    img = Image.open(path).convert('RGB')
    if mode == 'eval':
        size, crop_pct, out = int(args[2]), float(args[3]), args[4]
        t = transforms.Compose([
            transforms.Resize(int(size / crop_pct), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(size),
        ])
        x = to_tensor(t(img))
    elif mode == 'padcrop':
        size, pad, top, left, flip, out = int(args[2]), int(args[3]), int(args[4]), int(args[5]), args[6], args[7]
        x = F.center_crop(F.resize(img, size, transforms.InterpolationMode.BICUBIC), size)
        x = F.crop(F.pad(x, pad, fill=0), top, left, size, size)
        if flip == '1':
            x = F.hflip(x)
        x = to_tensor(x)
    else:
        size, top, left, height, width, flip, out = args[2:9]
        x = F.resized_crop(img, int(top), int(left), int(height), int(width), [int(size), int(size)], transforms.InterpolationMode.BICUBIC)
        if flip == '1':
            x = F.hflip(x)
        x = to_tensor(x)
    x.numpy().astype('float32').tofile(out)


if sys.argv[1] == 'batch':  # many jobs, one torch import
    for line in sys.stdin:
        if line.strip():
            run(line.rstrip('\n').split('\t'))
else:
    run(sys.argv[1:])
