"""Trains a stage of the shapes-world cascade, resumably.

    python train.py base --run runs/base --steps 6000 --score-samples 128
    python train.py base --run runs/pairs --init-from runs/base --steps 3000 --two-objects 0.5 --lr 2e-4 --warmup 100 --seed 2
    python train.py sr --run runs/sr --steps 2000 --batch 16 --text-encoder-from runs/pairs
    python train.py sr --run runs/sr-pairs --init-from runs/sr --steps 2000 --batch 16 --text-encoder-from runs/pairs \
        --two-objects 0.5 --lr 2e-4 --warmup 100 --seed 3
    python train.py sr --run runs/sr-final --init-from runs/sr-pairs --steps 1500 --batch 16 --text-encoder-from runs/pairs \
        --two-objects 0.5 --lr 1e-4 --warmup 50 --seed 4

A run may start from the weights of an earlier one (--init-from: a run folder, whose EMA weights
are taken, or an exported model folder), as the second phases do: more two-object captions,
where attribute binding is learnt, at a lower learning rate. Stage 2 takes its frozen text
encoder from the base run (or exported model) it will be exported with.

Every `--checkpoint-every` steps the run folder gets checkpoint.pt (models, EMA, optimiser,
step); restarting the same command continues from it. log.jsonl records the loss, samples/
holds sample grids, and scores.jsonl the detector scores of the EMA model as training goes.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from transformers import CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shapes_world import models  # noqa: E402
from shapes_world.data import SceneBatches, box_downsample  # noqa: E402
from shapes_world.sampling import generate, to_images  # noqa: E402
from shapes_world.scoring import matches  # noqa: E402
from shapes_world.tokenizer import write_tokenizer  # noqa: E402
from shapes_world.world import render, sample_scene  # noqa: E402

PREVIEW_CAPTIONS = [
    "a red circle on a blue background", "a big yellow triangle on a black background",
    "a small green square on a striped white background", "a purple circle on a dotted orange background",
    "a white square on the left on a green background", "a blue triangle and a red circle on a yellow background",
    "a black circle at the top on a purple background", "an orange square on a striped blue background",
]


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=["base", "sr"])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--ema", type=float, default=0.9995)
    p.add_argument("--min-snr", type=float, default=5.0)
    p.add_argument("--caption-dropout", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--two-objects", type=float, default=0.25, help="share of training scenes with two objects")
    p.add_argument("--init-from", type=Path, help="start from a run's EMA weights (its folder) or an exported model folder")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--crop", type=int, default=64, help="SR: train on random crops of this size")
    p.add_argument("--max-noise-level", type=int, default=250, help="SR: low-resolution noise augmentation, up to this t")
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--sample-every", type=int, default=1000)
    p.add_argument("--score-samples", type=int, default=64)
    p.add_argument("--text-encoder-from", type=Path, help="SR: the base run or exported model whose (frozen) text encoder to use")
    p.add_argument("--no-bf16", action="store_true")
    return p.parse_args()


def learning_rate(step: int, args) -> float:
    """Linear warm-up, then cosine decay to a tenth."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.run.mkdir(parents=True, exist_ok=True)
    (args.run / "samples").mkdir(exist_ok=True)
    tokenizer_dir = args.run / "tokenizer"
    vocab_size = write_tokenizer(tokenizer_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id

    if args.stage == "base":
        unet = models.base_unet()
        text_encoder = models.text_encoder(vocab_size, bos, eos)
        trainable = list(unet.parameters()) + list(text_encoder.parameters())
    else:
        if args.text_encoder_from is None:
            sys.exit("--text-encoder-from is required for the sr stage: the base run or exported model whose text encoder to use")
        text_encoder = models.text_encoder(vocab_size, bos, eos)
        load_text_encoder(args.text_encoder_from, text_encoder)
        text_encoder.requires_grad_(False)
        unet = models.sr_unet()
        trainable = list(unet.parameters())
    if args.init_from is not None and not (args.run / "checkpoint.pt").exists():
        initial_weights(args.init_from, unet, text_encoder if args.stage == "base" else None)
        print(f"initialised from {args.init_from}", flush=True)
    ema_unet, ema_text = copy.deepcopy(unet).requires_grad_(False), copy.deepcopy(text_encoder).requires_grad_(False)
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.01)
    scheduler = models.training_scheduler()
    alphas = scheduler.alphas_cumprod
    snr = alphas / (1 - alphas)

    start, elapsed = 0, 0.0
    checkpoint_path = args.run / "checkpoint.pt"
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        unet.load_state_dict(state["unet"])
        text_encoder.load_state_dict(state["text_encoder"])
        ema_unet.load_state_dict(state["ema_unet"])
        ema_text.load_state_dict(state["ema_text_encoder"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        start, elapsed = state["step"], state["elapsed"]
        print(f"resumed at step {start} ({elapsed / 60:.1f} min so far)", flush=True)
    (args.run / "config.json").write_text(json.dumps({k: str(v) for k, v in vars(args).items()}, indent=2))

    size = models.BASE_SIZE if args.stage == "base" else models.SR_SIZE
    loader = DataLoader(SceneBatches(args.seed, args.batch, size, start, args.two_objects), batch_size=None, num_workers=1,
                        prefetch_factor=4)
    log = open(args.run / "log.jsonl", "a")
    t0 = time.time()
    window = []
    for step, captions, images in loader:
        if step >= args.steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        captions = ["" if random.random() < args.caption_dropout else c for c in captions]
        ids = tokenizer(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        extra = {}
        if args.stage == "sr":
            # Random crops of the 128x128 image and the matching part of its (noised) low-res version.
            low = box_downsample(images, models.SR_SIZE // models.BASE_SIZE)
            factor = models.SR_SIZE // models.BASE_SIZE
            upsampled = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
            levels = torch.randint(0, args.max_noise_level + 1, (len(images),))
            upsampled = scheduler.add_noise(upsampled, torch.randn_like(upsampled), levels)
            cy, cx = [random.randrange(0, (size - args.crop) // factor + 1) * factor for _ in range(2)]
            images = images[:, :, cy:cy + args.crop, cx:cx + args.crop]
            upsampled = upsampled[:, :, cy:cy + args.crop, cx:cx + args.crop]
            extra = {"class_labels": levels}
        noise = torch.randn_like(images)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(images),))
        noisy = scheduler.add_noise(images, noise, t)
        target = scheduler.get_velocity(images, noise, t)
        inputs = noisy if args.stage == "base" else torch.cat([noisy, upsampled], dim=1)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not args.no_bf16):
            if args.stage == "base":
                context = text_encoder(ids).last_hidden_state
            else:
                with torch.no_grad():
                    context = text_encoder(ids).last_hidden_state
            prediction = unet(inputs, t, context, **extra).sample
        # Min-SNR-gamma weighting for v-prediction: min(snr, gamma) / (snr + 1).
        weights = torch.clamp(snr[t], max=args.min_snr) / (snr[t] + 1)
        loss = (weights * ((prediction.float() - target) ** 2).mean(dim=(1, 2, 3))).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for ema_model, model in ((ema_unet, unet), (ema_text, text_encoder)):
                for e, p in zip(ema_model.parameters(), model.parameters()):
                    e.lerp_(p, 1 - decay)
        window.append(loss.item())
        done = step + 1
        if done % 50 == 0:
            now = time.time()
            record = {"step": done, "loss": float(np.mean(window)), "lr": learning_rate(step, args),
                      "minutes": (elapsed + now - t0) / 60}
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(json.dumps(record), flush=True)
            window = []
        if done % args.checkpoint_every == 0 or done == args.steps:
            torch.save({"unet": unet.state_dict(), "text_encoder": text_encoder.state_dict(),
                        "ema_unet": ema_unet.state_dict(), "ema_text_encoder": ema_text.state_dict(),
                        "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                        "step": done, "elapsed": elapsed + time.time() - t0}, args.run / "checkpoint.tmp")
            (args.run / "checkpoint.tmp").replace(checkpoint_path)
        if done % args.sample_every == 0 or done == args.steps:
            preview(args, done, ema_unet, ema_text, tokenizer)


def initial_weights(source: Path, unet, text_encoder) -> None:
    """Loads a run's EMA weights (source/checkpoint.pt) or an exported model's (source/unet and
    source/text_encoder for the base stage, source/super_resolution_unet for the sr stage, whose
    text_encoder is None) into the models, in float32."""
    if (source / "checkpoint.pt").exists():
        state = torch.load(source / "checkpoint.pt", map_location="cpu", weights_only=False)
        unet.load_state_dict(state["ema_unet"])
        if text_encoder is not None:
            text_encoder.load_state_dict(state["ema_text_encoder"])
        return
    from safetensors.torch import load_file
    folder = "unet" if text_encoder is not None else "super_resolution_unet"
    unet.load_state_dict({k: v.float() for k, v in load_file(source / folder / "diffusion_pytorch_model.safetensors").items()})
    if text_encoder is not None:
        load_text_encoder(source, text_encoder)


def load_text_encoder(source: Path, text_encoder) -> None:
    """Loads the text encoder of a run (the EMA weights of source/checkpoint.pt) or of an exported
    model (source/text_encoder), in float32. Stage 2 should be trained with the encoder it will be
    paired with in the export."""
    if (source / "checkpoint.pt").exists():
        state = torch.load(source / "checkpoint.pt", map_location="cpu", weights_only=False)
        text_encoder.load_state_dict(state["ema_text_encoder"])
        return
    from safetensors.torch import load_file
    text_weights = {k: v.float() for k, v in load_file(source / "text_encoder" / "model.safetensors").items()}
    missing, unexpected = text_encoder.load_state_dict(text_weights, strict=False)
    if [k for k in missing if not k.endswith("position_ids")] or unexpected:
        sys.exit(f"{source}/text_encoder does not match the architecture: missing {missing}, unexpected {unexpected}")


def preview(args, step: int, unet, text_encoder, tokenizer) -> None:
    """A sample grid and detector scores for the EMA model."""
    unet.eval()
    if args.stage == "base":
        images = to_images(generate(unet, text_encoder, tokenizer, PREVIEW_CAPTIONS, seed=0))
        grid = np.concatenate(images, axis=1)
        Image.fromarray(grid).resize((grid.shape[1] * 4, grid.shape[0] * 4), Image.NEAREST).save(args.run / "samples" / f"{step:06d}.png")
        rng = random.Random(12345)
        scenes = [sample_scene(rng, two_objects_probability=0.5) for _ in range(args.score_samples)]
        generated = []
        for i in range(0, len(scenes), 32):
            generated += to_images(generate(unet, text_encoder, tokenizer, [s.caption() for s in scenes[i:i + 32]], seed=i + 1))
        single = [matches(s, g) for s, g in zip(scenes, generated) if len(s.objects) == 1]
        pair = [matches(s, g) for s, g in zip(scenes, generated) if len(s.objects) == 2]
        pair_in_order = [matches(s, g, in_drawing_order=True) for s, g in zip(scenes, generated) if len(s.objects) == 2]
        record = {"step": step, "single_object_fidelity": float(np.mean(single)), "two_object_fidelity": float(np.mean(pair)) if pair else None,
                  "two_object_fidelity_in_order": float(np.mean(pair_in_order)) if pair else None, "samples": len(scenes)}
    else:
        rng = random.Random(54321)
        scenes = [sample_scene(rng) for _ in range(8)]
        exact = torch.stack([torch.from_numpy(render(s, models.SR_SIZE)).permute(2, 0, 1).float() / 127.5 - 1 for s in scenes])
        low = box_downsample(exact, models.SR_SIZE // models.BASE_SIZE)
        upscaled = generate(unet, text_encoder, tokenizer, [s.caption() for s in scenes], steps=20, guidance=1.0, seed=0,
                            size=models.SR_SIZE, low_resolution=low, noise_level=20)
        mse = ((upscaled - exact) / 2).pow(2).mean(dim=(1, 2, 3))
        psnr = float((10 * torch.log10(1 / mse)).mean())
        rows = [np.concatenate(to_images(torch.nn.functional.interpolate(low, size=models.SR_SIZE, mode="nearest")), axis=1),
                np.concatenate(to_images(upscaled), axis=1), np.concatenate(to_images(exact), axis=1)]
        Image.fromarray(np.concatenate(rows, axis=0)).save(args.run / "samples" / f"{step:06d}.png")
        record = {"step": step, "psnr": psnr, "samples": len(scenes)}
    unet.train()
    with open(args.run / "scores.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
