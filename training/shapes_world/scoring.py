"""Scores of generated images against their captions, through the detectors (as the Swift
ShapesWorldScore does)."""
from __future__ import annotations

from .detect import detect
from .world import Scene


def matches(scene: Scene, image, in_drawing_order: bool = False) -> bool:
    """Background, pattern, and each named object's colour and shape all detected right. A
    pair's caption states no positions, so its objects may appear in either order, unless
    in_drawing_order asks for them left to right as they are named (the training data's
    convention)."""
    found = detect(image)
    if found.background != scene.background or found.pattern != scene.pattern:
        return False
    if len(found.objects) != len(scene.objects):
        return False
    if in_drawing_order:
        detected = sorted(found.objects, key=lambda o: o.centroid[0])
        expected = sorted(scene.objects, key=lambda o: o.x)
        return all(d.colour == e.colour and d.shape == e.shape for d, e in zip(detected, expected))
    unmatched = [(o.colour, o.shape) for o in found.objects]
    for o in scene.objects:
        if (o.colour, o.shape) not in unmatched:
            return False
        unmatched.remove((o.colour, o.shape))
    return True
