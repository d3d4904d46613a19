"""Trains a small CLIP model on the shapes world, resumably, and exports it as the embedded
model's scorer (the InstructPix2Pix recipe's CLIP similarities of generated edit pairs).

    python train_clip.py --run runs/clip --steps 1500 --batch 128 --out ../models/shapes-world/scorer
    python train_clip.py --run runs/clip --steps 1500 --batch 128 --out ../models/shapes-world/scorer --export-only

A transformers CLIPModel: a vision transformer on 64x64 pictures (8x8 patches, width 128, 4
layers), a causal text transformer on the shapes-world tokenizer (width 128, 3 layers, as the
embedded model's text encoder), both projected to 128. Pictures are prepared exactly as the Swift
scorer (Sources/Engine/Models/CLIPModel.swift) prepares them: RGB uint8 -> [0, 1] -> torch's
bicubic interpolation without antialiasing to 64x64 -> OpenAI CLIP's mean and std.

Data. Each batch is made of pairs: a scene of the grammar and the same scene with one attribute
edited (an object's colour, shape or size, the background colour or its pattern), as
Prompt-to-Prompt's edits change it, both rendered at 32x32 (the cascade's base stage) or both at
128x128 (its super-resolution output), with mild augmentation (colour gain and offset, a little
Gaussian blur and noise, rounded to 8 bits) for the generated pictures the scorer will see.
Every caption also brings `--negatives` captions of its own scene with one attribute wrong
(colour, shape, size, background, pattern, the opposite position, or a pair's colours or shapes
swapped between its objects; each of a kind drawn uniformly, so that the seven wrong colours
and backgrounds do not outnumber the rest). A pair's caption names its objects in either order (as `ptp eval`
scores pairs), and so do its negatives. The loss is CLIP's symmetric InfoNCE with a learnable
temperature over the batch's pictures and all its captions (hard negatives included); which
captions are true of which pictures is decided by the grammar's meaning (a caption without a
size word is true of either size), not by string equality. Pair k of step s comes from its own
seed, so a resumed run sees exactly the data an uninterrupted one would.

Every `--checkpoint-every` steps the run folder gets checkpoint.pt; restarting the same command
continues from it. log.jsonl records the loss and in-batch accuracies every 25 steps and a
retrieval evaluation every `--eval-every` steps. At the end the model is exported to --out in
float16 (CLIPModel.save_pretrained, safetensors, with the tokenizer files), loaded back, and
evaluated on 512 held-out scenes (top-1 retrieval among every one-attribute-wrong caption, mean
cosine similarities, and the recipe's four scores of one-attribute edits); the numbers go to
the run's eval.json and the export's README.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shapes_world import world  # noqa: E402
from shapes_world.world import (COLOURS, MARGIN, PAIR_GAP, PAIR_RADIUS, PATTERN_PERIOD, DOT_RADIUS, RADIUS, SHAPES,  # noqa: E402
                                SUPERSAMPLING, Scene, SceneObject, extent, pattern_colour, render, sample_scene, shape_mask)

HERE = Path(__file__).resolve().parent
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_SIZE = 64
WIDTH = 128
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")
EVAL_SEED = 987_654_321  # held-out scenes: seeds no training pair uses (training seeds are seed * 1e9 + ...)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=HERE / "runs" / "clip")
    p.add_argument("--out", type=Path, default=HERE.parent / "models" / "shapes-world" / "scorer", help="export folder")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=128, help="pictures per step (pairs of scenes: even)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--negatives", type=int, default=4, help="one-attribute-wrong captions per picture")
    p.add_argument("--two-objects", type=float, default=0.4, help="share of scenes with two objects")
    p.add_argument("--large", type=float, default=0.5, help="share of pairs rendered at 128x128 (the others at 32x32)")
    p.add_argument("--augment", type=float, default=0.8, help="share of pictures augmented")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=0, help="processes drawing batches ahead (0: in the training process)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the towers")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-scenes", type=int, default=512, help="scenes of the final evaluation")
    p.add_argument("--tokenizer", type=Path, default=HERE.parent / "models" / "shapes-world" / "tokenizer")
    p.add_argument("--export-only", action="store_true", help="export and evaluate the run's checkpoint without training")
    p.add_argument("--no-export", action="store_true", help="train only")
    args = p.parse_args()
    if args.batch % 2:
        p.error("--batch must be even (pictures come in pairs)")
    return args


# ----------------------------------------------------------------------------------------------
# Rendering: world.render's result, faster (the sub-sampled work only around the objects).


@functools.lru_cache(maxsize=None)
def pattern_samples(pattern: Optional[str], size: int) -> np.ndarray:
    """Which of the n x n sample points (n = size * SUPERSAMPLING) have the pattern colour."""
    n = size * SUPERSAMPLING
    coords = (np.arange(n, dtype=np.float64) + 0.5) / n
    px, py = np.meshgrid(coords, coords)
    if pattern == "striped":
        return np.floor(py / (PATTERN_PERIOD / 2)).astype(np.int64) % 2 == 1
    if pattern == "dotted":
        cx = (np.floor(px / PATTERN_PERIOD) + 0.5) * PATTERN_PERIOD
        cy = (np.floor(py / PATTERN_PERIOD) + 0.5) * PATTERN_PERIOD
        return (px - cx) ** 2 + (py - cy) ** 2 <= DOT_RADIUS**2
    return np.zeros((n, n), dtype=bool)


@functools.lru_cache(maxsize=None)
def pattern_coverage(pattern: Optional[str], size: int) -> np.ndarray:
    """The share of each pixel's samples with the pattern colour, [size, size]."""
    s = SUPERSAMPLING
    return pattern_samples(pattern, size).reshape(size, s, size, s).mean(axis=(1, 3))


def fast_render(scene: Scene, size: int) -> np.ndarray:
    """world.render(scene, size), computing sample points only in the objects' boxes (the rest
    from the pattern's cached coverage: sums of multiples of 1/16, exact in float64)."""
    s = SUPERSAMPLING
    base = np.array(world.PALETTE[scene.background], dtype=np.float64)
    second = np.array(pattern_colour(world.PALETTE[scene.background]), dtype=np.float64)
    image = base + pattern_coverage(scene.pattern, size)[..., None] * (second - base)
    samples = pattern_samples(scene.pattern, size)
    n = size * s
    coords = (np.arange(n, dtype=np.float64) + 0.5) / n
    for obj in scene.objects:
        half_width, up, down = extent(obj.shape, obj.radius)
        x0, x1 = max(0, math.floor((obj.x - half_width) * size) - 1), min(size, math.ceil((obj.x + half_width) * size) + 1)
        y0, y1 = max(0, math.floor((obj.y - up) * size) - 1), min(size, math.ceil((obj.y + down) * size) + 1)
        px, py = np.meshgrid(coords[x0 * s:x1 * s], coords[y0 * s:y1 * s])
        box = np.where(samples[y0 * s:y1 * s, x0 * s:x1 * s, None], second, base)
        for other in scene.objects:  # every object, in drawing order, so that boxes may overlap
            box[shape_mask(other.shape, other.x, other.y, other.radius, px, py)] = world.PALETTE[other.colour]
        image[y0:y1, x0:x1] = box.reshape(y1 - y0, s, x1 - x0, s, 3).mean(axis=(1, 3))
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Captions as meanings: what a caption says, whether it is true of a scene, and its variants.


@dataclasses.dataclass(frozen=True)
class Said:
    """What a caption says: per named object (size or None when unstated, colour, shape), the
    background, its pattern, and a stated position."""
    objects: tuple[tuple[Optional[str], str, str], ...]
    background: str
    pattern: Optional[str]
    position: Optional[str] = None

    def caption(self) -> str:
        objects = tuple(SceneObject(shape, colour, size or "big", 0.5, 0.5, 0.0) for size, colour, shape in self.objects)
        return Scene(self.background, self.pattern, objects, self.position, tuple(size is not None for size, _, _ in self.objects)).caption()

    def core(self) -> tuple:
        """What any scene it is true of shares with it (to find candidates quickly)."""
        return self.background, self.pattern, tuple(sorted((c, s) for _, c, s in self.objects))


def said_of(scene: Scene, reverse: bool = False) -> Said:
    """The scene's own caption, the objects named in reverse order if asked."""
    objects = tuple((obj.size if stated else None, obj.colour, obj.shape)
                    for obj, stated in zip(scene.objects, scene.size_stated or (False,) * len(scene.objects)))
    return Said(objects[::-1] if reverse else objects, scene.background, scene.pattern, scene.position_word)


def scene_core(scene: Scene) -> tuple:
    return scene.background, scene.pattern, tuple(sorted((o.colour, o.shape) for o in scene.objects))


def in_position(obj: SceneObject, position: str) -> bool:
    """Whether an object is where a stated position puts it (world.sample_scene's ranges)."""
    half_width, up, down = extent(obj.shape, obj.radius)
    eps = 1e-9
    if position == "on the left":
        return obj.x <= max(half_width + MARGIN, 0.35) + eps
    if position == "on the right":
        return obj.x >= min(1 - half_width - MARGIN, 0.65) - eps
    if position == "at the top":
        return obj.y <= max(up + MARGIN, 0.35) + eps
    return obj.y >= min(1 - down - MARGIN, 0.65) - eps


def true_of(said: Said, scene: Scene) -> bool:
    """Whether the caption is true of the scene: the same background and pattern, its objects in
    some order with their colours and shapes (and sizes, where stated), a stated position held."""
    if said.background != scene.background or said.pattern != scene.pattern or len(said.objects) != len(scene.objects):
        return False
    if said.position is not None and not (len(scene.objects) == 1 and in_position(scene.objects[0], said.position)):
        return False
    for order in itertools.permutations(scene.objects):
        if all(c == o.colour and s == o.shape and (z is None or z == o.size) for (z, c, s), o in zip(said.objects, order)):
            return True
    return False


OPPOSITE = {"on the left": "on the right", "on the right": "on the left", "at the top": "at the bottom", "at the bottom": "at the top"}


def variants(said: Said, scene: Scene) -> list[tuple[str, Said]]:
    """(kind, caption) for every caption with one attribute wrong (kinds: colour, shape, size,
    background, pattern, position, swap), none of them true of the scene."""
    out = []

    def with_object(i, **change):
        size, colour, shape = said.objects[i]
        new = (change.get("size", size), change.get("colour", colour), change.get("shape", shape))
        return dataclasses.replace(said, objects=said.objects[:i] + (new,) + said.objects[i + 1:])

    for i, (size, colour, shape) in enumerate(said.objects):
        out += [("colour", with_object(i, colour=c)) for c in COLOURS if c != colour]
        out += [("shape", with_object(i, shape=s)) for s in SHAPES if s != shape]
        actual = scene.objects[[o.colour for o in scene.objects].index(colour)].size if len(said.objects) > 1 else scene.objects[0].size
        out.append(("size", with_object(i, size="small" if actual == "big" else "big")))
    out += [("background", dataclasses.replace(said, background=c)) for c in COLOURS if c != said.background]
    out += [("pattern", dataclasses.replace(said, pattern=p)) for p in (None, "striped", "dotted") if p != said.pattern]
    if said.position is not None:
        out.append(("position", dataclasses.replace(said, position=OPPOSITE[said.position])))
    if len(said.objects) == 2:
        (z0, c0, s0), (z1, c1, s1) = said.objects
        out.append(("swap", dataclasses.replace(said, objects=((z0, c1, s0), (z1, c0, s1)))))
        out.append(("swap", dataclasses.replace(said, objects=((z0, c0, s1), (z1, c1, s0)))))
    seen, kept = set(), []
    for kind, variant in out:
        if variant not in seen and not true_of(variant, scene):
            seen.add(variant)
            kept.append((kind, variant))
    return kept


# ----------------------------------------------------------------------------------------------
# Edits: the same scene with one attribute changed, its geometry kept (and kept valid).


def placed(obj: SceneObject, pair_index: Optional[int]) -> SceneObject:
    """The object moved (as little as needed) back into the range world.sample_scene allows."""
    half_width, up, down = extent(obj.shape, obj.radius)
    y = min(max(obj.y, up + MARGIN), 1 - down - MARGIN)
    if pair_index is None:
        low, high = half_width + MARGIN, 1 - half_width - MARGIN
    elif pair_index == 0:
        low, high = half_width + MARGIN / 2, 0.5 - half_width - PAIR_GAP
    else:
        low, high = 0.5 + half_width + PAIR_GAP, 1 - half_width - MARGIN / 2
    return dataclasses.replace(obj, x=min(max(obj.x, low), high), y=y)


def edit_scene(scene: Scene, rng: random.Random) -> tuple[Scene, Scene, str]:
    """(scene, edited scene, kind): one attribute changed as a Prompt-to-Prompt edit changes it.
    A size edit states the size in both captions (so that they differ)."""
    kind = rng.choices(["colour", "shape", "background", "pattern", "size"], weights=[2, 3, 1.5, 1.5, 2])[0]
    objects = list(scene.objects)
    i = rng.randrange(len(objects))
    pair_index = i if len(objects) == 2 else None
    used = {o.colour for o in objects}
    if kind == "colour":
        objects[i] = dataclasses.replace(objects[i], colour=rng.choice([c for c in COLOURS if c not in used and c != scene.background]))
    elif kind == "shape":
        objects[i] = placed(dataclasses.replace(objects[i], shape=rng.choice([s for s in SHAPES if s != objects[i].shape])), pair_index)
    elif kind == "background":
        return scene, dataclasses.replace(scene, background=rng.choice([c for c in COLOURS if c not in used and c != scene.background])), kind
    elif kind == "pattern":
        return scene, dataclasses.replace(scene, pattern=rng.choice([p for p in (None, "striped", "dotted") if p != scene.pattern])), kind
    else:
        stated = tuple(s or j == i for j, s in enumerate(scene.size_stated))
        scene = dataclasses.replace(scene, size_stated=stated)
        size = "small" if objects[i].size == "big" else "big"
        radius = (PAIR_RADIUS if len(objects) == 2 else RADIUS)[size]
        objects[i] = placed(dataclasses.replace(objects[i], size=size, radius=radius), pair_index)
    return scene, dataclasses.replace(scene, objects=tuple(objects)), kind


# ----------------------------------------------------------------------------------------------
# Pictures: augmentation and the scorer's preprocessing.


def augment(images: torch.Tensor, generator: torch.Generator, share: float) -> torch.Tensor:
    """[N, 3, H, W] in [0, 1] -> the same, a share of them with a per-channel gain and offset, a
    Gaussian blur (sigma up to 0.6 px at 32x32, scaled with the side) and Gaussian noise, then
    rounded to 8 bits, as generated pictures arrive."""
    n, _, side, _ = images.shape
    chosen = (torch.rand(n, generator=generator) < share).float()[:, None, None, None]
    gain = 1 + (torch.rand(n, 3, 1, 1, generator=generator) * 2 - 1) * 0.05
    offset = (torch.rand(n, 3, 1, 1, generator=generator) * 2 - 1) * 0.03
    x = images * gain + offset
    # Blur: a separable Gaussian per picture (sigma 0 leaves it unchanged), for half of them.
    sigma = torch.rand(n, generator=generator) * 0.6 * side / 32 * (torch.rand(n, generator=generator) < 0.5).float()
    radius = math.ceil(3 * 0.6 * side / 32)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps[None] / sigma.clamp(min=1e-3)[:, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(3, 0)  # [n * 3, taps]
    flat = F.pad(x.reshape(1, n * 3, side, side), (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=n * 3)
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=n * 3)
    x = flat.reshape(n, 3, side, side)
    noise = torch.rand(n, 1, 1, 1, generator=generator) * 0.03 * (torch.rand(n, 1, 1, 1, generator=generator) < 0.5).float()
    x = x + noise * torch.randn(x.shape, generator=generator)
    x = torch.round(x.clamp(0, 1) * 255) / 255
    return chosen * x + (1 - chosen) * images


def to_unit(images: list[np.ndarray]) -> torch.Tensor:
    """H x W x 3 uint8 pictures (one size) -> [N, 3, H, W] in [0, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


def preprocess(unit: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] in [0, 1] -> the model's input, as the Swift scorer prepares it."""
    x = F.interpolate(unit, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bicubic", align_corners=False, antialias=False)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


# ----------------------------------------------------------------------------------------------
# The model.


def make_model(tokenizer: CLIPTokenizer) -> CLIPModel:
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=WIDTH, intermediate_size=4 * WIDTH, num_hidden_layers=3,
                         num_attention_heads=4, max_position_embeddings=tokenizer.model_max_length, hidden_act="quick_gelu",
                         layer_norm_eps=1e-5, projection_dim=WIDTH, bos_token_id=bos, eos_token_id=eos, pad_token_id=eos),
        vision_config=dict(image_size=IMAGE_SIZE, patch_size=8, num_channels=3, hidden_size=WIDTH, intermediate_size=4 * WIDTH,
                           num_hidden_layers=4, num_attention_heads=4, hidden_act="quick_gelu", layer_norm_eps=1e-5,
                           projection_dim=WIDTH),
        projection_dim=WIDTH, logit_scale_init_value=math.log(1 / 0.07))
    return CLIPModel(config)


def image_features(model: CLIPModel, pixels: torch.Tensor) -> torch.Tensor:
    """L2-normalised [N, projection] features of preprocessed pictures."""
    return F.normalize(model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output), dim=-1)


def text_features(model: CLIPModel, tokenizer: CLIPTokenizer, captions: list[str]) -> torch.Tensor:
    """L2-normalised [N, projection] features of captions (padded to the longest: the text
    transformer is causal and pools at the first end-of-text token, so padding changes nothing)."""
    ids = tokenizer(captions, padding="longest", truncation=True, max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
    return F.normalize(model.text_projection(model.text_model(input_ids=ids).pooler_output), dim=-1)


# ----------------------------------------------------------------------------------------------
# Batches.


@dataclasses.dataclass
class Batch:
    pixels: torch.Tensor  # [B, 3, 64, 64]
    scenes: list[Scene]  # per picture
    captions: list[str]  # every distinct caption of the batch (shown and negative)
    truth: torch.Tensor  # [B, len(captions)]: caption true of picture
    shown: torch.Tensor  # [B]: the column of each picture's own caption
    own_negatives: torch.Tensor  # [B, K + 1]: columns of each picture's negatives (its pair's caption last)


def hard_negatives(said: Said, scene: Scene, count: int, rng: random.Random) -> list[Said]:
    """`count` captions with one attribute wrong, each of a kind drawn uniformly from the kinds
    the caption has (so that shapes, sizes, positions and swapped pairs are not outnumbered by
    the seven wrong colours and backgrounds), without repeats."""
    by_kind: dict[str, list[Said]] = {}
    for kind, variant in variants(said, scene):
        by_kind.setdefault(kind, []).append(variant)
    chosen = []
    while len(chosen) < count and by_kind:
        kind = rng.choice(sorted(by_kind))
        options = by_kind[kind]
        chosen.append(options.pop(rng.randrange(len(options))))
        if not options:
            del by_kind[kind]
    return chosen


def make_batch(args, step: int) -> Batch:
    """Pair k of step s comes from seed (seed * 1e9 + 7) + s * batch + 2k; the augmentation
    from a generator seeded with the step."""
    pairs = args.batch // 2
    sizes, scenes, said, negatives = [], [], [], []
    for k in range(pairs):
        rng = random.Random(args.seed * 1_000_000_007 + step * args.batch + 2 * k)
        first, second, _ = edit_scene(sample_scene(rng, args.two_objects), rng)
        size = 128 if rng.random() < args.large else 32
        for scene in (first, second):
            shown = said_of(scene, reverse=len(scene.objects) == 2 and rng.random() < 0.5)
            scenes.append(scene)
            sizes.append(size)
            said.append(shown)
            negatives.append(hard_negatives(shown, scene, args.negatives, rng))
    generator = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    pixels = torch.empty(len(scenes), 3, IMAGE_SIZE, IMAGE_SIZE)
    for size in (32, 128):
        index = [i for i, s in enumerate(sizes) if s == size]
        if index:
            unit = to_unit([fast_render(scenes[i], size) for i in index])
            pixels[index] = preprocess(augment(unit, generator, args.augment))
    return assemble(pixels, scenes, said, negatives)


def assemble(pixels, scenes, said, negatives) -> Batch:
    columns: dict[Said, int] = {}
    for s in said + [n for group in negatives for n in group]:
        columns.setdefault(s, len(columns))
    by_core: dict[tuple, list[tuple[Said, int]]] = {}
    for s, c in columns.items():
        by_core.setdefault(s.core(), []).append((s, c))
    truth = torch.zeros(len(scenes), len(columns), dtype=torch.bool)
    for i, scene in enumerate(scenes):
        for s, c in by_core.get(scene_core(scene), []):
            truth[i, c] = true_of(s, scene)
    shown = torch.tensor([columns[s] for s in said])
    partner = [i ^ 1 for i in range(len(scenes))]
    own = torch.tensor([[columns[n] for n in negatives[i]] + [columns[said[partner[i]]]] for i in range(len(scenes))])
    assert truth[torch.arange(len(scenes)), shown].all(), "a shown caption is not true of its picture"
    return Batch(pixels, scenes, [s.caption() for s in columns], truth, shown, own)


class Batches(IterableDataset):
    """The batches of steps start..args.steps, for a DataLoader (in order; one worker at most)."""

    def __init__(self, args, start: int):
        self.args, self.start = args, start

    def __iter__(self):
        torch.set_num_threads(1)
        for step in range(self.start, self.args.steps):
            yield step, make_batch(self.args, step)


def contrastive_loss(model, tokenizer, batch: Batch, bf16: bool):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        images = image_features(model, batch.pixels).float()
        texts = text_features(model, tokenizer, batch.captions).float()
    scale = model.logit_scale.exp()
    logits = scale * images @ texts.T  # [B, C]
    truth = batch.truth.float()
    image_to_text = -(truth / truth.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
    # Caption to picture, for the captions shown with some picture.
    rows = torch.unique(batch.shown)
    t2i_truth = truth[:, rows].T
    text_to_image = -(t2i_truth / t2i_truth.sum(1, keepdim=True) * F.log_softmax(logits[:, rows].T, dim=1)).sum(1).mean()
    loss = (image_to_text + text_to_image) / 2
    with torch.no_grad():
        best = logits.argmax(1)
        in_batch = truth[torch.arange(len(best)), best].mean()
        own = logits.gather(1, batch.shown[:, None])
        hard = (own > logits.gather(1, batch.own_negatives)).all(1).float().mean()
    return loss, {"in_batch_accuracy": float(in_batch), "hard_accuracy": float(hard)}


# ----------------------------------------------------------------------------------------------
# Evaluation.


@torch.no_grad()
def evaluate(model: CLIPModel, tokenizer: CLIPTokenizer, count: int, exact: bool = True, distractors: int = 32) -> dict:
    """Held-out scenes (half with two objects): per picture size (32, 128, and 128 augmented),
    top-1 retrieval of the true caption among up to `distractors` captions with one attribute
    wrong; the mean cosine similarity of pictures with their captions, with those distractors,
    and with other scenes' captions; and the recipe's scores of one-attribute edits (the scene
    and its edit under their captions), also with a wrong edited caption."""
    model.eval()
    scenes, edited, kinds, options = [], [], [], []
    for i in range(count):
        rng = random.Random(EVAL_SEED + i)
        scene, after, kind = edit_scene(sample_scene(rng, 0.5), rng)
        scenes.append(scene)
        edited.append(after)
        kinds.append(kind)
        wrong = variants(said_of(scene), scene)
        rng.shuffle(wrong)
        options.append(wrong[:distractors])
    draw = render if exact else fast_render
    text_cache: dict[str, torch.Tensor] = {}

    def texts(captions: list[str]) -> torch.Tensor:
        missing = list(dict.fromkeys(c for c in captions if c not in text_cache))
        for start in range(0, len(missing), 512):
            chunk = missing[start:start + 512]
            for c, f in zip(chunk, text_features(model, tokenizer, chunk)):
                text_cache[c] = f
        return torch.stack([text_cache[c] for c in captions])

    def images(pictures: list[np.ndarray], augmented: bool) -> torch.Tensor:
        unit = to_unit(pictures)
        if augmented:
            unit = augment(unit, torch.Generator().manual_seed(EVAL_SEED), 1.0)
        return torch.cat([image_features(model, preprocess(unit[i:i + 256])) for i in range(0, len(unit), 256)])

    texts([v.caption() for o in options for _, v in o])  # all at once, into the cache
    own = texts([s.caption() for s in scenes])
    after_text = texts([s.caption() for s in edited])
    # A wrong edited caption: a one-attribute variant of the source caption not true of the edit.
    rng = random.Random(EVAL_SEED - 1)
    wrong_edit = []
    for scene, after in zip(scenes, edited):
        candidates = [v for _, v in variants(said_of(scene), scene) if not true_of(v, after)]
        wrong_edit.append(rng.choice(candidates).caption())
    wrong_edit_text = texts(wrong_edit)
    results = {"scenes": count, "renderer": "exact" if exact else "fast",
               "distractors_mean": float(np.mean([len(o) for o in options])),
               "chance_top1": float(np.mean([1 / (len(o) + 1) for o in options]))}
    two = np.array([len(s.objects) == 2 for s in scenes])
    drawn = {size: ([draw(s, size) for s in scenes], [draw(s, size) for s in edited]) for size in (32, 128)}
    for name, size, augmented in (("32", 32, False), ("128", 128, False), ("128_augmented", 128, True)):
        before = images(drawn[size][0], augmented)
        after = images(drawn[size][1], augmented)
        correct, kind_wins, matched, near, unrelated = [], {}, [], [], []
        for i, scene in enumerate(scenes):
            distractor = texts([v.caption() for _, v in options[i]])
            true_score = float(before[i] @ own[i])
            scores = (distractor @ before[i]).tolist()
            correct.append(all(true_score > s for s in scores))
            for (kind, _), s in zip(options[i], scores):
                kind_wins.setdefault(kind, []).append(true_score > s)
            matched.append(true_score)
            near += scores
            unrelated.append(float(before[i] @ own[(i + 1) % count]))
        correct = np.array(correct)
        direction = F.cosine_similarity(after - before, after_text - own, dim=1)
        wrong_direction = F.cosine_similarity(after - before, wrong_edit_text - own, dim=1)
        results[name] = {
            "top1": float(correct.mean()), "top1_one_object": float(correct[~two].mean()), "top1_two_objects": float(correct[two].mean()),
            "pairwise_by_kind": {k: round(float(np.mean(v)), 4) for k, v in sorted(kind_wins.items())},
            "cos_matched": float(np.mean(matched)), "cos_one_attribute_wrong": float(np.mean(near)),
            "cos_other_scene": float(np.mean(unrelated)),
            "edit_text0": float((before * own).sum(1).mean()), "edit_text1": float((after * after_text).sum(1).mean()),
            "edit_direction": float(direction.mean()), "edit_direction_wrong_caption": float(wrong_direction.mean()),
            "edit_image": float((before * after).sum(1).mean()),
            "edit_direction_by_kind": {k: round(float(direction[[j for j, x in enumerate(kinds) if x == k]].mean()), 4)
                                       for k in sorted(set(kinds))},
        }
    model.train()
    return results


# ----------------------------------------------------------------------------------------------
# Training, export.


def learning_rate(step: int, args) -> float:
    """Linear warm-up, then cosine decay to a twentieth."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def optimiser(model: CLIPModel, args) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases, norms, embeddings and the temperature."""
    decay, plain = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim == 2 and "embedding" not in name else plain).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay}, {"params": plain, "weight_decay": 0.0}],
                             lr=args.lr, betas=(0.9, 0.98), eps=1e-6)


def train(args, model, tokenizer) -> None:
    optimizer = optimiser(model, args)
    start, elapsed = 0, 0.0
    checkpoint_path = args.run / "checkpoint.pt"
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, elapsed = state["step"], state["elapsed"]
        print(f"resumed at step {start} ({elapsed / 60:.1f} min so far)", flush=True)
    (args.run / "config.json").write_text(json.dumps({k: str(v) for k, v in vars(args).items()}, indent=2))
    log = open(args.run / "log.jsonl", "a")
    model.train()
    t0 = time.time()
    window: list[dict] = []
    batches = iter(DataLoader(Batches(args, start), batch_size=None, num_workers=min(args.workers, 1),
                              prefetch_factor=4 if args.workers else None))
    t_data = time.time()
    for step, batch in batches:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        t_model = time.time()
        loss, metrics = contrastive_loss(model, tokenizer, batch, args.bf16)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        window.append({"loss": loss.item(), **metrics, "data_seconds": t_model - t_data, "model_seconds": time.time() - t_model})
        done = step + 1
        if done % 25 == 0 or done == args.steps:
            now = time.time()
            record = {"step": done, **{k: round(float(np.mean([w[k] for w in window])), 4) for k in window[0]},
                      "logit_scale": round(float(model.logit_scale.detach().exp()), 2), "lr": learning_rate(step, args),
                      "minutes": round((elapsed + now - t0) / 60, 2)}
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(json.dumps(record), flush=True)
            window = []
        if done % args.eval_every == 0 and done != args.steps:
            t_eval = time.time()
            result = evaluate(model, tokenizer, 128, exact=False)
            record = {"step": done, "eval_scenes": 128, **{f"top1_{k}": round(result[k]["top1"], 4) for k in ("32", "128", "128_augmented")},
                      "edit_direction_128": round(result["128"]["edit_direction"], 4)}
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(json.dumps(record), flush=True)
            t0 += time.time() - t_eval  # evaluation time is not training time
        if done % args.checkpoint_every == 0 or done == args.steps:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": done,
                        "elapsed": elapsed + time.time() - t0}, args.run / "checkpoint.tmp")
            (args.run / "checkpoint.tmp").replace(checkpoint_path)
        t_data = time.time()


def export(args, model, tokenizer) -> None:
    state = torch.load(args.run / "checkpoint.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    args.out.mkdir(parents=True, exist_ok=True)
    half = make_model(tokenizer)
    half.load_state_dict(model.state_dict())
    half.half().save_pretrained(args.out, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copyfile(args.tokenizer / name, args.out / name)
    # Loaded back as the Swift scorer will load it: float16 weights, computed in float32.
    loaded = CLIPModel.from_pretrained(args.out, dtype=torch.float32).eval()
    reference = make_model(tokenizer).eval()
    reference.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    probe = [sample_scene(random.Random(EVAL_SEED - 2 - i), 0.5) for i in range(8)]
    pixels = preprocess(to_unit([render(s, 128) for s in probe]))
    with torch.no_grad():
        difference = max(float((image_features(loaded, pixels) - image_features(reference, pixels)).abs().max()),
                         float((text_features(loaded, tokenizer, [s.caption() for s in probe])
                                - text_features(reference, tokenizer, [s.caption() for s in probe])).abs().max()))
    assert difference < 1e-5, f"the exported model's features differ from the checkpoint's by {difference}"
    t0 = time.time()
    results = evaluate(loaded, tokenizer, args.eval_scenes, exact=True)
    results |= {"step": state["step"], "training_minutes": round(state["elapsed"] / 60, 1), "evaluation_seconds": round(time.time() - t0, 1)}
    (args.run / "eval.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2), flush=True)
    write_readme(args, loaded, results)
    size = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    print(f"exported to {args.out} ({size / 1e6:.1f} MB)", flush=True)


def write_readme(args, model: CLIPModel, results: dict) -> None:
    config = json.loads((args.run / "config.json").read_text()) if (args.run / "config.json").exists() else {}
    vision = sum(p.numel() for p in model.vision_model.parameters()) + model.visual_projection.weight.numel()
    text = sum(p.numel() for p in model.text_model.parameters()) + model.text_projection.weight.numel()
    command = (f"python train_clip.py --run {config.get('run', args.run)} --steps {config.get('steps', args.steps)} "
               f"--batch {config.get('batch', args.batch)} --lr {config.get('lr', args.lr)} --threads {config.get('threads', args.threads)} "
               f"--out {config.get('out', args.out)}")
    rows = []
    for name, label in (("32", "32x32 renders"), ("128", "128x128 renders"), ("128_augmented", "128x128, augmented")):
        r = results[name]
        rows.append(f"| {label} | {100 * r['top1']:.1f} % | {100 * r['top1_one_object']:.1f} % | {100 * r['top1_two_objects']:.1f} % "
                    f"| {r['cos_matched']:.3f} | {r['cos_one_attribute_wrong']:.3f} | {r['cos_other_scene']:.3f} "
                    f"| {r['edit_text0']:.3f} / {r['edit_text1']:.3f} | {r['edit_direction']:.3f} ({r['edit_direction_wrong_caption']:.3f}) "
                    f"| {r['edit_image']:.3f} |")
    kinds = results["128"]["pairwise_by_kind"]
    text_md = f"""# shapes-world scorer: a small CLIP model of the shapes world

The CLIP model `ptp` scores generated edit pairs of the embedded model with, as the
InstructPix2Pix dataset recipe scores its pairs: each picture's cosine similarity with its
caption, the directional similarity (picture 1 - picture 0 against caption 1 - caption 0) and
the similarity of the two pictures. A transformers `CLIPModel` as `save_pretrained` writes it
(`config.json`, float16 `model.safetensors`) with the shapes-world tokenizer's files beside it.
Trained by `training/train_clip.py`; see its docstring for the data and the loss.

| Tower | What it is | Parameters |
| --- | --- | --- |
| vision | ViT on 64x64 pictures, 8x8 patches, width 128, 4 layers, 4 heads, quick-GELU; projection to 128 | {vision / 1e6:.2f} M |
| text | causal transformer on the shapes-world tokenizer, width 128, 3 layers, 4 heads, quick-GELU, pooled at the end-of-text token; projection to 128 | {text / 1e6:.2f} M |

Pictures are prepared as the Swift scorer prepares them: RGB -> [0, 1] -> bicubic resize to 64x64
without antialiasing (torch's `interpolate`) -> OpenAI CLIP's mean and std. It was trained on
32x32 and 128x128 renders (the cascade's two output sizes), mildly augmented (colour gain and
offset, blur, noise) towards generated pictures.

## Training

{results['step']} steps, {results['training_minutes']} minutes on 1 thread of the development machine's CPU:

```sh
cd training
{command}
```

## Evaluation

{results['scenes']} held-out scenes (half with two objects), exact renders; each picture's caption
against every caption with one attribute wrong (colour, shape, size, background, pattern, the
opposite position, a pair's colours or shapes swapped; {results['distractors_mean']:.1f} on average, chance
{100 * results['chance_top1']:.1f} %). Cosine similarities: picture with its caption, with those
distractors, with another scene's caption. Edits: the scene and the same scene with one
attribute changed, the recipe's scores text 0 / text 1, direction (in brackets: with a wrong
edited caption) and picture-picture.

| pictures | top-1 | one object | two objects | cos matched | cos one wrong | cos other scene | edit text 0 / 1 | edit direction | edit image |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

True caption preferred over a distractor of each kind (128x128):
{', '.join(f'{k} {100 * v:.1f} %' for k, v in kinds.items())}.

The similarities are this model's own scale (not OpenAI CLIP's), so the recipe's thresholds
(0.2 / 0.2 / 0.7 for ViT-L/14) do not carry over: a colour swap changes a 32x32 picture so much
that its picture-picture similarity is about 0.45, and `clip_image >= 0.7` rejects nearly all
of them. With this scorer use `{"clip_text": 0.7, "clip_direction": 0.2, "clip_image": 0.3}`
(chosen with `ptp eval --tables datasets --dataset-scores FILE`, which writes every variant's
scores and whether the detector calls it faithful; `ptp eval` and the demo use them).
"""
    (args.out / "README.md").write_text(text_md)


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.run.mkdir(parents=True, exist_ok=True)
    tokenizer = CLIPTokenizer.from_pretrained(args.tokenizer)
    model = make_model(tokenizer)
    if not args.export_only:
        train(args, model, tokenizer)
    if not args.no_export:
        if not (args.run / "checkpoint.pt").exists():
            sys.exit(f"{args.run} has no checkpoint.pt to export")
        export(args, model, tokenizer)


if __name__ == "__main__":
    main()
