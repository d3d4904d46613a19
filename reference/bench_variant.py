"""The PyTorch side of `ptp bench variants`: one dataset variant as the InstructPix2Pix recipe makes
it (its generate_img_dataset.py, on diffusers and transformers from PyPI): both prompts from one
noise, Euler ancestral steps with one shared noise, the second prompt's self-attention replaced by
the first's in every layer and both guidance halves for the first p of the steps, the VAE, then
CLIP's four similarities with the recipe's preprocessing. Models are loaded once; each step count
is timed over whole variants (the fastest of --repeats, after one untimed), printed as JSON.

    python reference/bench_variant.py --model DIR --scorer CLIP_DIR --steps 2 4 --dtype bfloat16
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
from transformers import CLIPModel, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ip2p_reference import RecipeAttention, encode  # noqa: E402

CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--scorer", required=True, type=Path)
    p.add_argument("--steps", type=int, nargs="+", required=True)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--guidance", type=float, default=10.0)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    start = time.time()
    unet = UNet2DConditionModel.from_pretrained(args.model / "unet", torch_dtype=dtype).eval()
    vae = AutoencoderKL.from_pretrained(args.model / "vae", torch_dtype=dtype).eval()
    tokenizer = CLIPTokenizer.from_pretrained(args.model / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(args.model / "text_encoder", torch_dtype=dtype).eval()
    scheduler = EulerAncestralDiscreteScheduler.from_pretrained(args.model / "scheduler")
    clip = CLIPModel.from_pretrained(args.scorer, torch_dtype=dtype).eval()
    clip_tokenizer = CLIPTokenizer.from_pretrained(args.scorer)
    processor = RecipeAttention()
    unet.set_attn_processor(processor)
    loaded = time.time() - start
    prompts = ["a photograph of a red car parked on a street", "a photograph of a blue car parked on a street"]

    def variant(steps: int) -> None:
        scheduler.set_timesteps(steps)
        sigmas = scheduler.sigmas
        generator = torch.Generator().manual_seed(args.seed)
        with torch.no_grad():
            cond = encode(tokenizer, text_encoder, prompts)
            uncond = encode(tokenizer, text_encoder, [""] * 2)
            context = torch.cat([uncond, cond])
            x = torch.randn((1, 4, args.size // 8, args.size // 8), generator=generator) * scheduler.init_noise_sigma
            x = x.repeat(2, 1, 1, 1)
            for i, t in enumerate(scheduler.timesteps):
                processor.active = args.threshold > i / (len(sigmas) - 2)
                sigma = sigmas[i]
                x_in = (torch.cat([x] * 2) / (sigma ** 2 + 1) ** 0.5).to(dtype)
                eps_uncond, eps_cond = unet(x_in, t, encoder_hidden_states=context).sample.float().chunk(2)
                eps = eps_uncond + args.guidance * (eps_cond - eps_uncond)
                denoised = x - sigma * eps
                sigma_to = sigmas[i + 1]
                sigma_up = (sigma_to ** 2 * (sigma ** 2 - sigma_to ** 2) / sigma ** 2) ** 0.5
                sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
                x = x + (x - denoised) / sigma * (sigma_down - sigma)
                x = x + torch.randn(x[:1].shape, generator=generator) * sigma_up
            images = vae.decode((x / vae.config.scaling_factor).to(dtype)).sample.float()
            images = ((images / 2 + 0.5).clamp(0, 1) * 255).round() / 255
            # The recipe's ClipSimilarity: bicubic to the model's size, CLIP's mean and std.
            side = clip.config.vision_config.image_size
            pixels = (F.interpolate(images, size=side, mode="bicubic", align_corners=False) - CLIP_MEAN) / CLIP_STD
            image_features = F.normalize(clip.get_image_features(pixel_values=pixels.to(dtype)).pooler_output.float(), dim=1)
            ids = clip_tokenizer(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
            text_features = F.normalize(clip.get_text_features(input_ids=ids).pooler_output.float(), dim=1)
            F.cosine_similarity(image_features, text_features)
            F.cosine_similarity(image_features[1:] - image_features[:1], text_features[1:] - text_features[:1])
            F.cosine_similarity(image_features[:1], image_features[1:])

    variant(min(args.steps))  # untimed: first-call set-up
    seconds = {}
    for steps in args.steps:
        runs = []
        for _ in range(args.repeats):
            begin = time.time()
            variant(steps)
            runs.append(time.time() - begin)
        seconds[str(steps)] = min(runs)
    print(json.dumps({"load_seconds": loaded, "seconds": seconds, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
