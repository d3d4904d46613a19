"""Renders and detects a fixed set of scenes with the Python shapes world, so the Swift renderer
and detectors can be checked against it (Tests/Fixtures/shapes-world).

    $(scripts/python-env) training/make_world_fixtures.py
"""
from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

from shapes_world.detect import detect
from shapes_world.world import render, sample_scene

OUT = Path(__file__).resolve().parent.parent / "Tests" / "Fixtures" / "shapes-world"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(2024)
    cases = []
    for index in range(24):
        scene = sample_scene(rng, two_objects_probability=0.35)
        for size in (32, 128) if index < 6 else (32,):
            image = render(scene, size)
            name = f"scene-{index:02d}-{size}.png"
            Image.fromarray(image).save(OUT / name)
            found = detect(image)
            cases.append({
                "image": name, "size": size, "caption": scene.caption(),
                "scene": {"background": scene.background, "pattern": scene.pattern, "position_words": scene.position_word,
                          "size_stated": list(scene.size_stated),
                          "objects": [{k: (float(v) if isinstance(v, (float, np.floating)) else v)
                                       for k, v in dataclasses.asdict(o).items()} for o in scene.objects]},
                "detected": {"background": found.background, "pattern": found.pattern,
                             "objects": [{"colour": o.colour, "shape": o.shape, "fill": o.fill, "area": o.area,
                                          "centroid": list(o.centroid)} for o in found.objects]},
            })
    (OUT / "cases.json").write_text(json.dumps(cases, indent=1))
    print(f"{len(cases)} renders")


if __name__ == "__main__":
    main()
