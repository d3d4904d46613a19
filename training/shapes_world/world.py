"""Scenes, captions and the exact renderer.

A scene is a background colour, an optional background pattern and one or two objects. The
renderer draws it at any resolution with anti-aliased edges (each pixel is the mean of a 4x4
grid of point samples), so the same scene can be drawn at the base and the super-resolution
size. The Swift renderer (Sources/Engine/ShapesWorld) implements the same definitions; both are
checked against each other through committed renders.
"""
from __future__ import annotations

import dataclasses
import random
from typing import Optional

import numpy as np

# The palette: well separated, saturated colours so that a nearest-colour classifier is exact.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "purple": (140, 50, 190),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
COLOURS = list(PALETTE)
SHAPES = ["circle", "square", "triangle"]
PATTERNS = ["striped", "dotted"]
SIZES = ["small", "big"]
POSITIONS = ["on the left", "on the right", "at the top", "at the bottom"]

# Geometry in units of the image side. Every shape fits a box of side 2 * radius around its
# centre: the circle of that radius, a square of side 1.8 * radius, an equilateral triangle
# (apex up) of side 2 * radius centred in the box.
RADIUS = {"big": 0.27, "small": 0.16}
PAIR_RADIUS = {"big": 0.2, "small": 0.14}  # two objects must fit side by side
PAIR_GAP = 0.015  # least distance of each object of a pair from the vertical midline
MARGIN = 0.04
PATTERN_PERIOD = 0.125  # 4 pixels at 32x32, 16 at 128x128
DOT_RADIUS = 0.03
SUPERSAMPLING = 4


def extent(shape: str, radius: float) -> tuple[float, float, float]:
    """How far a shape reaches from its centre: (left/right, up, down), in image units."""
    if shape == "circle":
        return radius, radius, radius
    if shape == "square":
        return 0.9 * radius, 0.9 * radius, 0.9 * radius
    half_height = radius * np.sqrt(3) / 2
    return radius, half_height, half_height


def pattern_colour(base: tuple[int, int, int]) -> tuple[int, int, int]:
    """The second colour of a patterned background: darker for light colours, lighter for dark."""
    luminance = 0.299 * base[0] + 0.587 * base[1] + 0.114 * base[2]
    target = 255.0 if luminance < 80 else 0.0
    return tuple(int(round(0.55 * c + 0.45 * target)) for c in base)  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    x: float  # centre, 0 = left edge, 1 = right edge
    y: float  # centre, 0 = top edge, 1 = bottom edge
    radius: float


@dataclasses.dataclass(frozen=True)
class Scene:
    background: str
    pattern: Optional[str]
    objects: tuple[SceneObject, ...]
    position_word: Optional[str] = None  # a stated position of a single object
    size_stated: tuple[bool, ...] = ()

    def caption(self) -> str:
        parts = []
        for i, obj in enumerate(self.objects):
            words = []
            if self.size_stated and self.size_stated[i]:
                words.append(obj.size)
            words += [obj.colour, obj.shape]
            parts.append(article(words[0]) + " " + " ".join(words))
        text = " and ".join(parts)
        if self.position_word:
            text += " " + self.position_word
        background = f"{self.pattern} {self.background}" if self.pattern else self.background
        return f"{text} on {article(background)} {background} background"


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def sample_scene(rng: random.Random, two_objects_probability: float = 0.25) -> Scene:
    """A random scene from the grammar."""
    background = rng.choice(COLOURS)
    pattern = rng.choice(PATTERNS) if rng.random() < 0.3 else None
    count = 2 if rng.random() < two_objects_probability else 1
    objects = []
    position_word = None
    sizes = [rng.choice(SIZES) for _ in range(count)]
    stated = tuple(rng.random() < 0.5 for _ in range(count))
    colours = rng.sample([c for c in COLOURS if c != background], count)
    for i in range(count):
        shape = rng.choice(SHAPES)
        radius = (PAIR_RADIUS if count == 2 else RADIUS)[sizes[i]]
        half_width, up, down = extent(shape, radius)
        y = rng.uniform(up + MARGIN, 1 - down - MARGIN)
        if count == 2:
            # The first named object is on the left half, the second on the right: never touching.
            edge = MARGIN / 2
            if i == 0:
                x = rng.uniform(half_width + edge, 0.5 - half_width - PAIR_GAP)
            else:
                x = rng.uniform(0.5 + half_width + PAIR_GAP, 1 - half_width - edge)
        else:
            low, high = half_width + MARGIN, 1 - half_width - MARGIN
            x = rng.uniform(low, high)
        objects.append(SceneObject(shape, colours[i], sizes[i], x, y, radius))
    if count == 1 and rng.random() < 0.2:
        position_word = rng.choice(POSITIONS)
        obj = objects[0]
        half_width, up, down = extent(obj.shape, obj.radius)
        x, y = obj.x, obj.y
        if position_word == "on the left":
            x = rng.uniform(half_width + MARGIN, max(half_width + MARGIN, 0.35))
        elif position_word == "on the right":
            x = rng.uniform(min(1 - half_width - MARGIN, 0.65), 1 - half_width - MARGIN)
        elif position_word == "at the top":
            y = rng.uniform(up + MARGIN, max(up + MARGIN, 0.35))
        else:
            y = rng.uniform(min(1 - down - MARGIN, 0.65), 1 - down - MARGIN)
        objects[0] = dataclasses.replace(obj, x=x, y=y)
    return Scene(background, pattern, tuple(objects), position_word, stated)


def shape_mask(shape: str, x: float, y: float, radius: float, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Which sample points (px, py in image units) fall inside the shape."""
    if shape == "circle":
        return (px - x) ** 2 + (py - y) ** 2 <= radius**2
    if shape == "square":
        half = 0.9 * radius
        return (np.abs(px - x) <= half) & (np.abs(py - y) <= half)
    if shape == "triangle":
        height = radius * np.sqrt(3)
        top = y - height / 2
        inside_vertical = (py >= top) & (py <= top + height)
        half_width = (py - top) / height * radius
        return inside_vertical & (np.abs(px - x) <= half_width)
    raise ValueError(f"unknown shape {shape}")


def render(scene: Scene, size: int) -> np.ndarray:
    """The scene as a size x size x 3 uint8 image, each pixel the mean of 4x4 point samples."""
    n = size * SUPERSAMPLING
    coords = (np.arange(n, dtype=np.float64) + 0.5) / n
    px, py = np.meshgrid(coords, coords)
    image = np.empty((n, n, 3), dtype=np.float64)
    image[:] = PALETTE[scene.background]
    if scene.pattern == "striped":
        stripes = np.floor(py / (PATTERN_PERIOD / 2)).astype(np.int64) % 2 == 1
        image[stripes] = pattern_colour(PALETTE[scene.background])
    elif scene.pattern == "dotted":
        cx = (np.floor(px / PATTERN_PERIOD) + 0.5) * PATTERN_PERIOD
        cy = (np.floor(py / PATTERN_PERIOD) + 0.5) * PATTERN_PERIOD
        dots = (px - cx) ** 2 + (py - cy) ** 2 <= DOT_RADIUS**2
        image[dots] = pattern_colour(PALETTE[scene.background])
    for obj in scene.objects:
        image[shape_mask(obj.shape, obj.x, obj.y, obj.radius, px, py)] = PALETTE[obj.colour]
    image = image.reshape(size, SUPERSAMPLING, size, SUPERSAMPLING, 3).mean(axis=(1, 3))
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def scene_with(scene: Scene, **changes) -> Scene:
    """A copy of the scene with background fields or the first object's fields changed."""
    object_fields = {k: v for k, v in changes.items() if k in ("shape", "colour", "size")}
    scene_fields = {k: v for k, v in changes.items() if k in ("background", "pattern")}
    objects = scene.objects
    if object_fields:
        objects = (dataclasses.replace(objects[0], **object_fields),) + objects[1:]
    return dataclasses.replace(scene, objects=objects, **scene_fields)
