"""Real-image Prompt-to-Prompt on top of diffusers, written from ../shared/spec/prompt-to-prompt.md
and the two inversion papers (our own code), producing the fixtures the Swift real-image path
must reproduce: Tests/Fixtures/reference/p2p-real.{png,json,safetensors}.

    $(scripts/python-env) reference/real_image_reference.py

A picture (drawn here, saved as PNG, read back) is encoded by the tiny p2p-sd model's VAE (the
latent mean times the scaling factor) and inverted with the source prompt through the edit's
own timesteps (DDIM's, or DPM-Solver++'s): from the clean sample at the scheduler's final alpha,
each step to the next timestep's alpha with the UNet evaluated at that timestep (the null-text
notebook's DDIM inversion, generalised to any whole timesteps). Editing starts from the last
latent of that path, with
  - direct inversion (Ju et al. 2023): the source row put back on the path after every step;
  - negative-prompt inversion (Miyake et al. 2023): the source prompt's embedding as every
    prompt's unconditional embedding (null-text inversion's optimised embedding approximated).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor
from PIL import Image
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "reference"
sys.path.insert(0, str(ROOT / "reference"))
from p2p_reference import MAX_TOKENS, Controller, Processor  # noqa: E402

torch.set_num_threads(2)

SOURCE = "a red circle on a blue background"
TARGET = "a green circle on a blue background"
# (scheduler class, steps, inversion)
CASES = {
    "direct-ddim": (DDIMScheduler, 10, "direct"),
    "ddim-ddim": (DDIMScheduler, 10, "ddim"),
    "negative-prompt-ddim": (DDIMScheduler, 10, "negative-prompt"),
    "direct-dpm": (DPMSolverMultistepScheduler, 20, "direct"),
    "negative-prompt-dpm": (DPMSolverMultistepScheduler, 20, "negative-prompt"),
}
# The tiny SDXL pipeline (reference/make_fixtures.py sdxl-pipeline): its conditioning (both
# encoders, the pooled projection, the size ids) in the inversion and the edit alike.
SDXL_SOURCE, SDXL_TARGET = "a cat sitting on a red sofa", "a dog sitting on a red sofa"
SDXL_CASES = {
    "sdxl-direct-ddim": (DDIMScheduler, 10, "direct"),
    "sdxl-negative-prompt-dpm": (DPMSolverMultistepScheduler, 12, "negative-prompt"),
}
GUIDANCE = 7.5
SIDE = 128


def picture() -> Path:
    """A 128 px picture: a red disc on a blue gradient with a little noise, as a PNG."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    image = np.zeros((SIDE, SIDE, 3), np.float32)
    image[..., 2] = 150 + 80 * y / SIDE
    image[..., 1] = 40 + 30 * x / SIDE
    disc = (x - 70) ** 2 + (y - 58) ** 2 < 30 ** 2
    image[disc] = [210, 40, 35]
    image += rng.normal(0, 6, image.shape)
    path = OUT / "p2p-real.png"
    Image.fromarray(np.clip(image, 0, 255).round().astype(np.uint8)).save(path)
    return path


def encode(text_encoder, tokenizer, texts):
    ids = tokenizer(texts, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt").input_ids
    return text_encoder(ids).last_hidden_state


@torch.no_grad()
def invert(unet, context, sample, timesteps, alphas, final_alpha, added=None):
    """The inversion path of `sample` through `timesteps` (descending), clean first."""
    unet.set_attn_processor(AttnProcessor())
    extra = {"added_cond_kwargs": added} if added else {}
    path, x, current = [sample], sample, None
    for t in reversed(timesteps):
        eps = unet(x, t, context, **extra).sample
        alpha = alphas[current] if current is not None else final_alpha
        alpha_next = alphas[t]
        original = (x - (1 - alpha).sqrt() * eps) / alpha.sqrt()
        x = alpha_next.sqrt() * original + (1 - alpha_next).sqrt() * eps
        path.append(x)
        current = t
    return path


@torch.no_grad()
def edit(unet, cond, uncond, scheduler, start, steps, controller, anchor=None, added=None):
    unet.set_attn_processor({name: Processor(controller, name.split("_")[0] if not name.startswith("mid") else "mid")
                             for name in unet.attn_processors})
    extra = {"added_cond_kwargs": added} if added else {}
    latents = start.expand(cond.shape[0], -1, -1, -1).clone() * scheduler.init_noise_sigma
    for step, t in enumerate(scheduler.timesteps):
        controller.step = step
        model_input = scheduler.scale_model_input(torch.cat([latents, latents]), t)
        out = unet(model_input, t, torch.cat([uncond, cond]), **extra).sample
        controller.end_pass()
        u, c = out.chunk(2)
        latents = scheduler.step(u + GUIDANCE * (c - u), t, latents).prev_sample
        if anchor is not None:
            latents[0] = anchor[len(anchor) - 2 - step][0]
        latents = controller.end_step(latents)
    return latents


def main() -> None:
    directory = OUT / "p2p-sd"
    tokenizer = CLIPTokenizer.from_pretrained(directory / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(directory / "text_encoder", torch_dtype=torch.float32).eval()
    unet = UNet2DConditionModel.from_pretrained(directory / "unet", torch_dtype=torch.float32).eval()
    vae = AutoencoderKL.from_pretrained(directory / "vae", torch_dtype=torch.float32).eval()
    config = DDIMScheduler.from_pretrained(directory / "scheduler").config
    ddim = DDIMScheduler.from_config(config)

    pixels = np.asarray(Image.open(picture()).convert("RGB"), dtype=np.float32)
    image = torch.from_numpy(pixels / 127.5 - 1).permute(2, 0, 1)[None]
    with torch.no_grad():
        sample = vae.encode(image).latent_dist.mean * vae.config.scaling_factor
        cond = encode(text_encoder, tokenizer, [SOURCE, TARGET])
        empty = encode(text_encoder, tokenizer, ["", ""])
    tensors, meta = {"sample": sample}, {}
    for name, (cls, steps, inversion) in CASES.items():
        scheduler = cls.from_config(config)
        scheduler.set_timesteps(steps)
        timesteps = [int(t) for t in scheduler.timesteps]
        path = invert(unet, cond[:1], sample, timesteps, ddim.alphas_cumprod, ddim.final_alpha_cumprod)
        uncond = cond[:1].expand(2, -1, -1) if inversion == "negative-prompt" else empty
        controller = Controller([SOURCE, TARGET], tokenizer, steps, "replace")
        latents = edit(unet, cond, uncond, scheduler, path[-1], steps, controller,
                       anchor=path if inversion == "direct" else None)
        tensors[f"{name}.start"] = path[-1]
        tensors[f"{name}.latents"] = latents
        meta[name] = {"prompts": [SOURCE, TARGET], "scheduler": cls.__name__, "steps": steps, "inversion": inversion,
                      "guidance": GUIDANCE, "height": SIDE, "width": SIDE, "timesteps": timesteps}
        reconstruction = (latents[0] - sample[0]).abs().max().item()
        print(f"{name}: timesteps {timesteps[:3]}..., start scale {path[-1].abs().max():.3f}, "
              f"source vs picture {reconstruction:.4f}, edited vs source {(latents[1] - latents[0]).abs().max():.3f}")
    sdxl_cases(image, tensors, meta)
    save_file({k: v.contiguous().float() for k, v in tensors.items()}, str(OUT / "p2p-real.safetensors"))
    (OUT / "p2p-real.json").write_text(json.dumps(meta, indent=2))


def sdxl_cases(image, tensors, meta) -> None:
    pipe = StableDiffusionXLPipeline.from_pretrained(OUT / "tiny-sdxl", torch_dtype=torch.float32)
    pipe.unet.eval()
    ddim = DDIMScheduler.from_config(pipe.scheduler.config)
    with torch.no_grad():
        sample = pipe.vae.encode(image).latent_dist.mean * pipe.vae.config.scaling_factor
    tensors["sdxl-sample"] = sample
    time_ids = torch.tensor([[SIDE, SIDE, 0, 0, SIDE, SIDE]], dtype=torch.float32)
    for name, (cls, steps, inversion) in SDXL_CASES.items():
        negative = [SDXL_SOURCE, SDXL_SOURCE] if inversion == "negative-prompt" else None
        with torch.no_grad():
            cond, uncond, pooled, negative_pooled = pipe.encode_prompt([SDXL_SOURCE, SDXL_TARGET], device="cpu", num_images_per_prompt=1,
                                                                       do_classifier_free_guidance=True, negative_prompt=negative)
        scheduler = cls.from_config(pipe.scheduler.config)
        scheduler.set_timesteps(steps)
        timesteps = [int(t) for t in scheduler.timesteps]
        path = invert(pipe.unet, cond[:1], sample, timesteps, ddim.alphas_cumprod, ddim.final_alpha_cumprod,
                      added={"text_embeds": pooled[:1], "time_ids": time_ids})
        controller = Controller([SDXL_SOURCE, SDXL_TARGET], pipe.tokenizer, steps, "replace")
        added = {"text_embeds": torch.cat([negative_pooled, pooled]), "time_ids": time_ids.repeat(4, 1)}
        latents = edit(pipe.unet, cond, uncond, scheduler, path[-1], steps, controller,
                       anchor=path if inversion == "direct" else None, added=added)
        tensors[f"{name}.start"] = path[-1]
        tensors[f"{name}.latents"] = latents
        meta[name] = {"prompts": [SDXL_SOURCE, SDXL_TARGET], "scheduler": cls.__name__, "steps": steps, "inversion": inversion,
                      "guidance": GUIDANCE, "height": SIDE, "width": SIDE, "timesteps": timesteps}
        print(f"{name}: timesteps {timesteps[:3]}..., start scale {path[-1].abs().max():.3f}, "
              f"source vs picture {(latents[0] - sample[0]).abs().max():.4f}, edited vs source {(latents[1] - latents[0]).abs().max():.3f}")


if __name__ == "__main__":
    main()
