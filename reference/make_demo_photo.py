"""Draws demo/photo.jpg: a "photograph" of a shapes-world scene (a red circle on a blue
background, 48 x 32, a little blur and sensor noise) stored the way phones store pictures taken
sideways: the pixels turned a quarter counter-clockwise and EXIF orientation 6 saying to turn
them back. The demo edits it; it must come out 48 wide and 32 high.

    $(scripts/python-env) reference/make_demo_photo.py
"""
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parent.parent

width, height = 48, 32
rng = np.random.default_rng(7)
y, x = np.mgrid[0:height, 0:width].astype(np.float32)
image = np.zeros((height, width, 3), np.float32)
image[...] = (20, 40, 200)
disc = (x - 30) ** 2 + (y - 15) ** 2 < 9.5 ** 2
image[disc] = (220, 30, 30)
picture = Image.fromarray(image.astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))
noisy = np.asarray(picture, np.float32) + rng.normal(0, 3, (height, width, 3))
upright = Image.fromarray(np.clip(noisy, 0, 255).round().astype(np.uint8))
stored = upright.transpose(Image.Transpose.ROTATE_90)
exif = Image.Exif()
exif[0x0112] = 6
stored.save(ROOT / "demo" / "photo.jpg", quality=90, exif=exif)
print(f"demo/photo.jpg: stored {stored.size[0]}x{stored.size[1]}, shown {upright.size[0]}x{upright.size[1]}")
