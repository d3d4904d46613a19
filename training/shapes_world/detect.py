"""Exact detectors: what an image of the shapes world shows.

Every pixel is classified to the nearest colour of the palette or of its pattern shades. The
background is the most common colour on the border; objects are the connected regions of other
colours; an object's colour is the most common colour inside it and its shape follows from how
much of its bounding box it fills (circle ~0.785, square ~1, triangle ~0.5).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from .world import COLOURS, PALETTE, pattern_colour

# Class k < 8: palette colour k; class 8 + k: the pattern shade of colour k.
REFERENCE = np.array([PALETTE[c] for c in COLOURS] + [pattern_colour(PALETTE[c]) for c in COLOURS], dtype=np.float64)
MIN_OBJECT_FRACTION = 0.012


@dataclasses.dataclass
class DetectedObject:
    colour: str
    shape: str
    area: float  # fraction of the image
    centroid: tuple[float, float]  # (x, y) in image units
    fill: float
    mask: np.ndarray


@dataclasses.dataclass
class Detection:
    background: str
    pattern: Optional[str]
    objects: list[DetectedObject]  # largest first
    object_mask: np.ndarray


def classify(image: np.ndarray) -> np.ndarray:
    pixels = image.reshape(-1, 3).astype(np.float64)
    distances = ((pixels[:, None, :] - REFERENCE[None, :, :]) ** 2).sum(axis=2)
    return distances.argmin(axis=1).reshape(image.shape[:2])


def components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask, as boolean masks, largest first."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    h, w = mask.shape
    found = []
    current = 0
    for sy in range(h):
        for sx in range(w):
            if not mask[sy, sx] or labels[sy, sx]:
                continue
            current += 1
            stack = [(sy, sx)]
            labels[sy, sx] = current
            while stack:
                y, x = stack.pop()
                for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                    if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not labels[ny, nx]:
                        labels[ny, nx] = current
                        stack.append((ny, nx))
            found.append(labels == current)
    found.sort(key=lambda m: -int(m.sum()))
    return found


def soft_fill(image: np.ndarray, component: np.ndarray, background: np.ndarray, colour: np.ndarray) -> float:
    """How much of its bounding box an object fills, from per-pixel coverage: each pixel's
    position between the background and object colours. Widths and heights are sums of
    per-column and per-row maximum coverage, so anti-aliased edges count by how much they are
    covered and small shapes measure as they were drawn."""
    region = component.copy()
    region[1:] |= component[:-1]
    region[:-1] |= component[1:]
    region[:, 1:] |= component[:, :-1]
    region[:, :-1] |= component[:, 1:]
    direction = colour - background
    alpha = ((image.astype(np.float64) - background) @ direction) / max(float(direction @ direction), 1e-6)
    alpha = np.clip(alpha, 0, 1) * region
    width = alpha.max(axis=0).sum()
    height = alpha.max(axis=1).sum()
    return float(alpha.sum() / max(width * height, 1e-6))


def shape_from_fill(fill: float) -> str:
    if fill >= 0.85:
        return "square"
    if fill >= 0.665:
        return "circle"
    return "triangle"


def detect(image: np.ndarray, max_objects: int = 2) -> Detection:
    classes = classify(image)
    h, w = classes.shape
    base = classes % len(COLOURS)
    border = np.concatenate([base[0], base[-1], base[:, 0], base[:, -1]])
    background_index = int(np.bincount(border, minlength=len(COLOURS)).argmax())
    is_background = base == background_index
    object_mask = ~is_background
    objects = []
    background_rgb = REFERENCE[background_index]
    for component in components(object_mask)[:max_objects]:
        area = component.sum() / (h * w)
        if area < MIN_OBJECT_FRACTION:
            break
        colour_index = int(np.bincount(base[component], minlength=len(COLOURS)).argmax())
        fill = soft_fill(image, component, background_rgb, REFERENCE[colour_index])
        ys, xs = np.nonzero(component)
        objects.append(DetectedObject(
            colour=COLOURS[colour_index], shape=shape_from_fill(fill), area=float(area),
            centroid=(float((xs.mean() + 0.5) / w), float((ys.mean() + 0.5) / h)), fill=float(fill), mask=component))
    # Pattern: the share of shade pixels in the background region, and whether they form rows.
    background_region = is_background
    shade = (classes == background_index + len(COLOURS)) & background_region
    pattern = None
    if background_region.sum() > 0 and shade.sum() / background_region.sum() > 0.08:
        rows = [shade[y][background_region[y]].mean() for y in range(h) if background_region[y].sum() >= w // 4]
        mixed = float(np.mean([min(f, 1 - f) for f in rows])) if rows else 0.0
        pattern = "striped" if mixed < 0.12 else "dotted"
    return Detection(COLOURS[background_index], pattern, objects, object_mask)
