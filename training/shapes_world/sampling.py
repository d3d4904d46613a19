"""Sampling with the models in training (PyTorch), for sample grids and quick scores."""
from __future__ import annotations

import torch

from .models import sampling_scheduler


@torch.no_grad()
def encode(text_encoder, tokenizer, captions: list[str]) -> torch.Tensor:
    ids = tokenizer(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    return text_encoder(ids).last_hidden_state


@torch.no_grad()
def generate(unet, text_encoder, tokenizer, captions: list[str], steps: int = 30, guidance: float = 4.0,
             seed: int = 0, size: int = 32, low_resolution: torch.Tensor | None = None, noise_level: int = 0) -> torch.Tensor:
    """Images in [-1, 1], [B, 3, size, size]. With `low_resolution`, runs the SR stage."""
    scheduler = sampling_scheduler()
    scheduler.set_timesteps(steps)
    conditional = encode(text_encoder, tokenizer, captions)
    unconditional = encode(text_encoder, tokenizer, [""] * len(captions))
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(len(captions), 3, size, size, generator=generator)
    extra = {}
    if low_resolution is not None:
        upsampled = torch.nn.functional.interpolate(low_resolution, size=(size, size), mode="bilinear", align_corners=False)
        if noise_level > 0:
            noise = torch.randn(upsampled.shape, generator=generator)
            upsampled = scheduler.add_noise(upsampled, noise, torch.tensor([noise_level]))
    for t in scheduler.timesteps:
        inputs = torch.cat([x, x])
        if low_resolution is not None:
            inputs = torch.cat([inputs, torch.cat([upsampled, upsampled])], dim=1)
            extra = {"class_labels": torch.full((2 * len(captions),), noise_level, dtype=torch.long)}
        out = unet(inputs, t, torch.cat([unconditional, conditional]), **extra).sample
        uncond, cond = out.chunk(2)
        x = scheduler.step(uncond + guidance * (cond - uncond), t, x).prev_sample
    return x.clamp(-1, 1)


def to_images(x: torch.Tensor):
    """[B, 3, H, W] in [-1, 1] -> list of H x W x 3 uint8 arrays (rounded as diffusers does)."""
    array = ((x / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return list(array)
