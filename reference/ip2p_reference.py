"""The InstructPix2Pix dataset recipe's sampling (Brooks et al. 2023,
dataset_creation/generate_img_dataset.py of timothybrooks/instruct-pix2pix), re-written on
diffusers from PyPI, producing the fixtures the Swift implementation must reproduce:
Tests/Fixtures/reference/ip2p-recipe.{json,safetensors}.

    $(scripts/python-env) reference/ip2p_reference.py

The recipe, for a caption pair, a seed, a threshold p and a guidance scale: both prompts start
from one noise draw; each step is an Euler ancestral step (k-diffusion's sample_euler_ancestral)
whose fresh noise is one draw shared by both prompts; for the steps i with p > i / (T - 1), every
self-attention layer gives the second prompt the first prompt's attention maps, in both halves
of classifier-free guidance (batch order: unconditional 1, unconditional 2, conditional 1,
conditional 2); cross-attention is left alone. One change: the sigmas are diffusers'
EulerAncestralDiscreteScheduler's (from the model's scheduler config) rather than k-diffusion's
CompVisDenoiser's, which interpolate between trained sigmas in log space. A second kind of case
runs diffusers' own scheduler.step, whose noise is a draw per prompt (`ancestral_noise:
independent`), with no attention change.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import EulerAncestralDiscreteScheduler, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "reference"
torch.set_num_threads(2)


class RecipeAttention:
    """diffusers' attention, with the recipe's change to self-attention while `active`."""

    def __init__(self):
        self.active = False

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        is_self = encoder_hidden_states is None
        context = hidden_states if is_self else encoder_hidden_states
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(context))
        value = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(query, key, None)
        if is_self and self.active:
            batch = hidden_states.shape[0]
            assert batch == 4, "{unconditional, conditional} x {prompt 1, prompt 2}"
            maps = probs.view(batch, attn.heads, *probs.shape[1:])
            probs = torch.stack((maps[0], maps[0], maps[2], maps[2])).view_as(probs)
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        return attn.to_out[1](attn.to_out[0](out))


def encode(tokenizer, text_encoder, texts):
    ids = tokenizer(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    return text_encoder(ids).last_hidden_state


def recipe(folder: Path, prompts, seed, steps, guidance, threshold, shared_noise=True, size=64):
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32).eval()
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=torch.float32).eval()
    scheduler = EulerAncestralDiscreteScheduler.from_pretrained(folder / "scheduler")
    processor = RecipeAttention()
    unet.set_attn_processor(processor)
    scheduler.set_timesteps(steps)
    sigmas = scheduler.sigmas
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        cond = encode(tokenizer, text_encoder, prompts)
        uncond = encode(tokenizer, text_encoder, [""] * len(prompts))
        x = torch.randn((1, unet.config.in_channels, size // 8, size // 8), generator=generator) * scheduler.init_noise_sigma
        x = x.repeat(len(prompts), 1, 1, 1)
        for i, t in enumerate(scheduler.timesteps):
            processor.active = threshold > i / (len(sigmas) - 2)
            sigma = sigmas[i]
            # scale_model_input's scaling (the scheduler's own counts steps only through step()).
            x_in = torch.cat([x] * 2) / (sigma ** 2 + 1) ** 0.5 if shared_noise else scheduler.scale_model_input(torch.cat([x] * 2), t)
            eps_uncond, eps_cond = unet(x_in, t, encoder_hidden_states=torch.cat([uncond, cond])).sample.chunk(2)
            eps = eps_uncond + guidance * (eps_cond - eps_uncond)
            if shared_noise:
                # k-diffusion's Euler ancestral step, with the recipe's one noise for the batch.
                denoised = x - sigma * eps
                sigma_to = sigmas[i + 1]
                sigma_up = (sigma_to ** 2 * (sigma ** 2 - sigma_to ** 2) / sigma ** 2) ** 0.5
                sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
                d = (x - denoised) / sigma
                x = x + d * (sigma_down - sigma)
                noise = torch.randn(x[:1].shape, generator=generator)
                x = x + noise * sigma_up
            else:
                x = scheduler.step(eps, t, x, generator=generator).prev_sample
    return x


CASES = {
    # (weights, prompts, seed, steps, guidance, threshold, shared noise)
    "shared-p35": ("tiny-sd", ["a red circle on a blue background", "a red square on a blue background"], 7, 10, 7.5, 0.35, True),
    "shared-p90-refine": ("tiny-sd", ["a white circle on a blue background", "a white circle on a striped blue background"], 11, 12, 12.0, 0.9, True),
    "shared-p0": ("tiny-sd", ["a green square on a black background", "a yellow square on a black background"], 3, 8, 9.0, 0.0, True),
    "independent": ("tiny-sd", ["a red circle on a blue background", "a green circle on a blue background"], 5, 10, 7.5, 0.0, False),
}


def main() -> None:
    tensors, meta = {}, {}
    for name, (weights, prompts, seed, steps, guidance, threshold, shared) in CASES.items():
        tensors[f"{name}.latents"] = recipe(OUT / weights, prompts, seed, steps, guidance, threshold, shared).contiguous()
        meta[name] = {"weights": weights, "prompts": prompts, "seed": seed, "steps": steps, "guidance": guidance,
                      "threshold": threshold, "shared_noise": shared}
    save_file(tensors, str(OUT / "ip2p-recipe.safetensors"))
    (OUT / "ip2p-recipe.json").write_text(json.dumps(meta, indent=2))
    print("ip2p recipe:", ", ".join(CASES))


if __name__ == "__main__":
    main()
