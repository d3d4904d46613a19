"""Endless, deterministic training batches: sample k of step s comes from its own seed, so a
resumed run sees exactly the data it would have seen."""
from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import IterableDataset

from .world import render, sample_scene


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W float in [-1, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1


def box_downsample(image: torch.Tensor, factor: int) -> torch.Tensor:
    """Area average over factor x factor blocks: [..., 3, H, W] -> [..., 3, H/f, W/f]."""
    return torch.nn.functional.avg_pool2d(image, factor)


class SceneBatches(IterableDataset):
    """Batches of (captions, images) at `size`, from step `start` on; a share
    `two_objects` of the scenes has two objects."""

    def __init__(self, seed: int, batch: int, size: int, start: int, two_objects: float = 0.25):
        self.seed, self.batch, self.size, self.start, self.two_objects = seed, batch, size, start, two_objects

    def __iter__(self):
        step = self.start
        while True:
            captions, images = [], []
            for k in range(self.batch):
                scene = sample_scene(random.Random(self.seed * 1_000_000_007 + step * self.batch + k), self.two_objects)
                captions.append(scene.caption())
                images.append(to_tensor(render(scene, self.size)))
            yield step, captions, torch.stack(images)
            step += 1
