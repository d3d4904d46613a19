"""Scores of generated images against their captions, through the detectors."""
from __future__ import annotations

from .detect import detect
from .world import Scene


def matches(scene: Scene, image) -> bool:
    """Shape, colour and background (and pattern, and each object of a pair) all detected right."""
    found = detect(image)
    if found.background != scene.background or found.pattern != scene.pattern:
        return False
    if len(found.objects) != len(scene.objects):
        return False
    detected = sorted(found.objects, key=lambda o: o.centroid[0])
    expected = sorted(scene.objects, key=lambda o: o.x)
    return all(d.colour == e.colour and d.shape == e.shape for d, e in zip(detected, expected))
