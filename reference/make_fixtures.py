"""Writes the reference fixtures the Swift tests compare against (Tests/Fixtures/reference).

Random-weight models of small Stable-Diffusion-like configurations are built with diffusers and
transformers, saved in the diffusers layout, run on fixed inputs, and their inputs and outputs
saved as safetensors. Weights are stored in float16 and the references are computed from the
float16-rounded weights, so the files stay small and both sides use identical numbers.

    $(scripts/python-env) reference/make_fixtures.py            # everything
    $(scripts/python-env) reference/make_fixtures.py samplers   # DPM-Solver++ and Euler only

The fixtures are committed; CI needs no Python.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import math
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import (AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,
                       LatentConsistencyModelPipeline, LCMScheduler, StableDiffusionPipeline,
                       StableDiffusionXLPipeline,
                       UNet2DConditionModel)
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "reference"
sys.path.insert(0, str(ROOT / "training"))
from shapes_world.tokenizer import write_tokenizer  # noqa: E402

torch.set_num_threads(2)


# ---------------------------------------------------------------------------------------------
# Helpers

def randomize(module: torch.nn.Module, seed: int) -> None:
    """Gives every parameter a random value (norm weights near 1), so a weight that is loaded
    wrongly or not at all changes the output, then rounds everything to float16."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1:
                base = 1.0 if ("norm" in name and name.endswith("weight")) else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=generator))
            elif "embedding" in name and p.dim() == 2:
                p.copy_(0.5 * torch.randn(p.shape, generator=generator))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=generator) / math.sqrt(fan_in))
            p.copy_(p.half().float())


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().float().contiguous() for k, v in tensors.items()}, str(path))


def save_model(model, directory: Path) -> None:
    """save_pretrained in float16 safetensors (config.json + weights)."""
    model.half().save_pretrained(directory, safe_serialization=True)
    model.float()
    for extra in directory.glob("*.json"):
        data = json.loads(extra.read_text())
        extra.write_text(json.dumps(data, indent=2, sort_keys=True))


def seeded(seed: int, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# Tokenizer: the real SD 1.x vocabulary, rebuilt from the CLIP BPE merges that open_clip ships.

def bytes_to_unicode_order() -> list[str]:
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def write_sd_tokenizer(directory: Path, pad_token: str = "<|endoftext|>") -> None:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("open_clip_torch is needed for the CLIP BPE merges (pip install open_clip_torch)")
    bpe = Path(spec.submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(bpe).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    symbols = bytes_to_unicode_order()
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True,
              "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
              "pad_token": pad_token}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def tokenizer_prompts() -> list[str]:
    prompts = [
        "A painting of a squirrel eating a burger", "A painting of a squirrel eating a lasagne",
        "A neoclassical painting of a squirrel eating a burger", "pea soup with croutons", "fried potatos",
        "a photo of a house on a mountain", "a photo of a house on a mountain at fall", "soup", "potatos",
        "", " ", "a cat", "A CAT", "a  cat\twith\nnewlines", "   leading and trailing spaces   ",
        "don't stop", "it's a dog's life", "THEY'LL GO", "we've I'm you'd she'll they're", "rock'n'roll",
        "café au lait", "naïve façade", "Ünïcödé ÄÖÜ", "Straße", "東京タワーの夜景", "한국어 문장", "Ελληνικά γράμματα",
        "Русский текст", "العربية", "emoji 🐱🐶🚀", "👩‍👩‍👧 family", "math: 3.14159 + 2 = 5.14159", "$100 and 50%",
        "1234567890", "phone 555-0199", "#hashtag @mention", "C++ and C# and F#", "<|startoftext|> inside",
        "ends with <|endoftext|>", "<|ENDOFTEXT|> upper", "supercalifragilisticexpialidocious",
        "pneumonoultramicroscopicsilicovolcanoconiosis", "antidisestablishmentarianism is long",
        "HeLLo WoRLD", "camelCaseWords and snake_case_words", "kebab-case-words", "dots...and...more...",
        "quotes \"double\" and 'single'", "(parentheses) [brackets] {braces}", "slash/back\\slash",
        "a red circle on a blue background", "a big yellow triangle and a small green square on a striped white background",
        "trailing punctuation!!!", "?!?!", "--- dashes ---", "tab\there", "ZWJ\u200bzero width", "non\u00a0breaking space",
        "combining e\u0301 accent", "full-width ＡＢＣ", "ligature ﬁ", "roman numeral Ⅻ", "superscript x²", "½ cup",
        "mixed 123abc456def", "a" * 100, "word " * 80, "The quick brown fox jumps over the lazy dog.",
        "8k, ultra detailed, trending on artstation, by greg rutkowski", "masterpiece, best quality, 1girl",
    ]
    words = ["cat", "Dog", "ASTRONAUT", "riding", "horse", "on", "mars", "photo", "of", "an", "oil", "painting",
             "cyberpunk", "city", "at", "night", "neon", "lights", "watercolor", "portrait", "élan", "Zürich",
             "日本", "🌸", "x-ray", "3D", "4k", "HDR", "rock'n'roll", "it's", "o'clock", "e-mail", "U.S.A."]
    punctuation = ["", ",", ".", "!", "?", ";", ":", "...", " -", "'"]
    rng = random.Random(7)
    while len(prompts) < 260:
        n = rng.randint(1, 14)
        text = " ".join(rng.choice(words) + rng.choice(punctuation) for _ in range(n))
        if rng.random() < 0.3:
            text = text.upper() if rng.random() < 0.5 else text.title()
        prompts.append(text)
    return prompts


def make_tokenizer_fixture() -> None:
    directory = OUT / "sd-tokenizer"
    write_sd_tokenizer(directory)
    tokenizer = CLIPTokenizer.from_pretrained(directory)
    cases, decoded = [], {}
    for text in tokenizer_prompts():
        full = tokenizer(text).input_ids
        padded = tokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids
        cases.append({"text": text, "ids": padded, "untruncated_length": len(full)})
        for i in full:
            decoded[str(i)] = tokenizer.decode([i])
    (OUT / "tokenizer-cases.json").write_text(json.dumps({"cases": cases, "single_token_decoding": decoded}, ensure_ascii=False, indent=0))
    print(f"tokenizer: {len(cases)} prompts, {len(decoded)} decoded tokens")


# ---------------------------------------------------------------------------------------------
# Models

def make_text_encoder_fixture(name: str, act: str, seed: int) -> None:
    config = CLIPTextConfig(vocab_size=1000, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                            num_attention_heads=4, max_position_embeddings=77, hidden_act=act, layer_norm_eps=1e-5,
                            bos_token_id=998, eos_token_id=999, pad_token_id=999, projection_dim=64)
    model = CLIPTextModel(config).eval()
    randomize(model, seed)
    directory = OUT / name
    save_model(model, directory)
    ids = torch.randint(0, 998, (2, 77), generator=torch.Generator().manual_seed(seed))
    ids[:, 0] = 998
    ids[0, 9:] = 999
    ids[1, 40:] = 999
    with torch.no_grad():
        hidden = model(ids).last_hidden_state
    save_tensors(directory / "io.safetensors", {"input_ids": ids.float(), "last_hidden_state": hidden})
    print(f"{name}: scale {hidden.abs().max():.3f}")


def unet_configs() -> dict[str, dict]:
    return {
        # SD 1.x-like: cross-attention at three levels, conv projections, heads from attention_head_dim.
        "unet-sd1": dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(32, 32, 64, 64),
                         down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                         up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                         cross_attention_dim=32, attention_head_dim=4, norm_num_groups=32),
        # SD 2.x-like: linear projections, per-block head counts, upcast attention, v-prediction.
        "unet-sd2": dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64, 64),
                         down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                         up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                         cross_attention_dim=48, attention_head_dim=[2, 4, 8], use_linear_projection=True,
                         upcast_attention=True, norm_num_groups=16, freq_shift=1, flip_sin_to_cos=False),
        # Super-resolution-like: image concatenation and a noise-level class embedding.
        "unet-sr": dict(sample_size=16, in_channels=6, out_channels=3, layers_per_block=1, block_out_channels=(32, 64),
                        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                        cross_attention_dim=32, attention_head_dim=2, norm_num_groups=16, num_class_embeds=1000),
    }


def make_unet_fixture(name: str, config: dict, seed: int) -> None:
    model = UNet2DConditionModel(**config).eval()
    randomize(model, seed)
    directory = OUT / name
    save_model(model, directory)
    tensors = {}
    # A power-of-two input and one whose sizes force the up-sampling to follow the skips.
    for tag, (h, w) in (("even", (16, 16)), ("odd", (12, 10))):
        sample = seeded(seed + 1, 2, config["in_channels"], h, w)
        context = seeded(seed + 2, 2, 77, config["cross_attention_dim"])
        timestep = torch.tensor([523, 17])
        extra = {"class_labels": torch.tensor([20, 250])} if config.get("num_class_embeds") else {}
        with torch.no_grad():
            out = model(sample, timestep, context, **extra).sample
        tensors |= {f"{tag}.sample": sample, f"{tag}.context": context, f"{tag}.timestep": timestep.float(), f"{tag}.output": out}
        if extra:
            tensors[f"{tag}.class_labels"] = extra["class_labels"].float()
        print(f"{name} {tag}: scale {out.abs().max():.3f}")
    save_tensors(directory / "io.safetensors", tensors)


def make_vae_fixture(seed: int) -> None:
    model = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                          up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(32, 32, 64), layers_per_block=2,
                          latent_channels=4, norm_num_groups=16, sample_size=32, scaling_factor=0.18215).eval()
    randomize(model, seed)
    directory = OUT / "vae"
    save_model(model, directory)
    image = seeded(seed + 1, 2, 3, 32, 24).clamp(-1, 1)
    latents = seeded(seed + 2, 2, 4, 8, 6)
    with torch.no_grad():
        posterior = model.encode(image).latent_dist
        decoded = model.decode(latents).sample
    save_tensors(directory / "io.safetensors", {"image": image, "mean": posterior.mean, "std": posterior.std,
                                                 "latents": latents, "decoded": decoded})
    # The same weights under the legacy attention names of older checkpoints.
    from safetensors.torch import load_file
    weights = load_file(str(directory / "diffusion_pytorch_model.safetensors"))
    legacy = {}
    for key, value in weights.items():
        for new, old in (("to_q.", "query."), ("to_k.", "key."), ("to_v.", "value."), ("to_out.0.", "proj_attn.")):
            key = key.replace("attentions.0." + new, "attentions.0." + old)
        legacy[key] = value
    legacy_dir = OUT / "vae-legacy"
    legacy_dir.mkdir(exist_ok=True)
    shutil.copy(directory / "config.json", legacy_dir / "config.json")
    save_file(legacy, str(legacy_dir / "diffusion_pytorch_model.safetensors"))
    print(f"vae: decoded scale {decoded.abs().max():.3f}, mean scale {posterior.mean.abs().max():.3f}")


# ---------------------------------------------------------------------------------------------
# DDIM and noise

SCHEDULER_CASES = {
    "sd15": dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, set_alpha_to_one=False, steps_offset=1,
                 timestep_spacing="leading", prediction_type="epsilon", clip_sample=False),
    "linear-trailing-v": dict(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, set_alpha_to_one=True, steps_offset=0,
                              timestep_spacing="trailing", prediction_type="v_prediction", clip_sample=False),
    "cosine-linspace-sample-clip": dict(beta_schedule="squaredcos_cap_v2", set_alpha_to_one=True, steps_offset=0,
                                        timestep_spacing="linspace", prediction_type="sample", clip_sample=True,
                                        clip_sample_range=1.0),
    # Stable Diffusion 2.x's 768 px (v-prediction) scheduler configuration.
    "sd2-v": dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, set_alpha_to_one=False, steps_offset=1,
                  timestep_spacing="leading", prediction_type="v_prediction", clip_sample=False),
    "scaled-trailing-eps": dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, set_alpha_to_one=False,
                                steps_offset=1, timestep_spacing="trailing", prediction_type="epsilon", clip_sample=False),
}


def fixed_model(x: torch.Tensor, t: int, direction: torch.Tensor) -> torch.Tensor:
    """A deterministic stand-in for a UNet: depends on the sample and the timestep."""
    return 0.1 * x + math.sin(0.01 * t) * direction


def make_scheduler_fixture() -> None:
    directory = OUT / "ddim"
    directory.mkdir(parents=True, exist_ok=True)
    tensors, meta = {}, {}
    start = seeded(11, 1, 4, 8, 8)
    direction = seeded(12, 1, 4, 8, 8)
    for name, config in SCHEDULER_CASES.items():
        scheduler = DDIMScheduler(num_train_timesteps=1000, **config)
        (directory / f"{name}.json").write_text(json.dumps(dict(scheduler.config), indent=2, sort_keys=True, default=str))
        scheduler.set_timesteps(50)
        x = start.clone()
        for i, t in enumerate(scheduler.timesteps):
            x = scheduler.step(fixed_model(x, int(t), direction), t, x).prev_sample
            if i == 24:
                tensors[f"{name}.step25"] = x
        tensors[f"{name}.final"] = x
        tensors[f"{name}.alphas_cumprod"] = scheduler.alphas_cumprod
        meta[name] = {"timesteps": [int(t) for t in scheduler.timesteps]}
        # Inversion x_t -> x_{t+1} as Prompt-to-Prompt's null-text notebook does (epsilon models).
        if config["prediction_type"] == "epsilon":
            y = start.clone()
            final = scheduler.final_alpha_cumprod
            for t in reversed(scheduler.timesteps):
                current, following = min(int(t) - 1000 // 50, 999), int(t)
                alpha = scheduler.alphas_cumprod[current] if current >= 0 else final
                alpha_next = scheduler.alphas_cumprod[following]
                eps = fixed_model(y, following, direction)
                original = (y - (1 - alpha) ** 0.5 * eps) / alpha ** 0.5
                y = alpha_next ** 0.5 * original + (1 - alpha_next) ** 0.5 * eps
            tensors[f"{name}.inverted"] = y
    tensors["start"], tensors["direction"] = start, direction
    save_tensors(directory / "trajectories.safetensors", tensors)
    (directory / "timesteps.json").write_text(json.dumps(meta, indent=1))
    print("ddim:", ", ".join(SCHEDULER_CASES))


def make_noise_fixture() -> None:
    tensors = {}
    for seed in (0, 1, 42, 8888, 2**32 + 7):
        for shape in ((1, 4, 64, 64), (2, 4, 9, 9), (17,), (16,), (5,), (3, 7), (1,), (1, 3, 32, 32)):
            torch.manual_seed(seed)
            tensors[f"{seed}/{'x'.join(map(str, shape))}"] = torch.randn(*shape)
        generator = torch.Generator().manual_seed(seed)
        first = torch.randn(2, 3, generator=generator)
        tensors[f"{seed}/consecutive"] = torch.cat([first.flatten(), torch.randn(20, generator=generator)])
    save_tensors(OUT / "randn.safetensors", tensors)
    print(f"randn: {len(tensors)} tensors")


# ---------------------------------------------------------------------------------------------
# A whole tiny Stable Diffusion directory and diffusers' pipeline output on it

def tiny_text_encoder(vocab_size: int, tokenizer, act: str = "quick_gelu") -> CLIPTextModel:
    """The small CLIP text encoder of the whole-pipeline fixtures."""
    return CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, hidden_act=act, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, projection_dim=32)).eval()


def tiny_vae(sample_size: int) -> AutoencoderKL:
    """A four-level VAE (8x smaller latents), small enough for fixtures."""
    return AutoencoderKL(block_out_channels=(16, 16, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1, latent_channels=4, norm_num_groups=8,
                         sample_size=sample_size).eval()


PIPELINE_RUNS = {
    # The shapes-world vocabulary (a small embedding table; the cluster tests use this model too).
    "tiny-sd": {"a": ("a red circle on a blue background", 7, 10, 7.5),
                "b": ("a big yellow triangle on a striped white background", 8888, 12, 5.0)},
    # SD 1.x's own CLIP vocabulary and tokenizer files (vocab.json + merges.txt, as SD 1.5 ships them).
    "tiny-sd-clip": {"a": ("A painting of a squirrel eating a burger", 8888, 10, 7.5),
                     "b": ("an astronaut riding a horse on Mars, 4k, highly-detailed (trending)!", 42, 12, 5.0)},
    # SD 2.x-like: v-prediction with trailing spacing, a UNet with linear projections, per-level
    # head counts and upcast attention, a GELU text encoder, and a tokenizer that pads with "!".
    "tiny-sd2": {"a": ("A painting of a squirrel eating a burger", 8888, 10, 7.5),
                 "b": ("a photo of a cat, sitting on a red sofa", 3, 12, 5.0)},
}


def make_pipeline_fixture(name: str = "tiny-sd") -> None:
    directory = OUT / name
    if directory.exists():
        shutil.rmtree(directory)
    clip_vocabulary = name in ("tiny-sd-clip", "tiny-sd2")
    sd2 = name == "tiny-sd2"
    if clip_vocabulary:
        write_sd_tokenizer(directory / "tokenizer", pad_token="!" if sd2 else "<|endoftext|>")
    else:
        write_tokenizer(directory / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(directory / "tokenizer")
    text_encoder = tiny_text_encoder(len(tokenizer), tokenizer, act="gelu" if sd2 else "quick_gelu")
    if sd2:
        unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                                    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                    attention_head_dim=[2, 4], use_linear_projection=True, upcast_attention=True,
                                    norm_num_groups=16).eval()
    else:
        unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                    attention_head_dim=2, norm_num_groups=16).eval()
    vae = tiny_vae(sample_size=64)
    for i, model in enumerate((text_encoder, unet, vae)):
        randomize(model, 100 + i)
    # Keep the random UNet's output near unit scale, as a trained one is.
    with torch.no_grad():
        unet.conv_out.weight.mul_(0.3)
    scheduler = DDIMScheduler(num_train_timesteps=1000, **SCHEDULER_CASES["sd2-v" if sd2 else "sd15"])
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(directory, safe_serialization=True, variant=None)
    if clip_vocabulary:
        # SD 1.5's tokenizer folder has no tokenizer.json: the engine reads vocab.json + merges.txt.
        (directory / "tokenizer" / "tokenizer.json").unlink(missing_ok=True)
    for component in ("text_encoder", "unet", "vae"):
        getattr(pipe, component).half()
        getattr(pipe, component).save_pretrained(directory / component, safe_serialization=True)
        getattr(pipe, component).float()
    pipe.set_progress_bar_config(disable=True)
    tensors = {}
    runs = PIPELINE_RUNS[name]
    for tag, (prompt, seed, steps, guidance) in runs.items():
        with torch.no_grad():
            image = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance, height=64, width=64,
                         generator=torch.Generator().manual_seed(seed), output_type="pt").images
        tensors[f"{tag}.image"] = image * 2 - 1  # back to [-1, 1]
    save_tensors(OUT / f"{name}-pipeline.safetensors", tensors)
    (OUT / f"{name}-pipeline.json").write_text(json.dumps({k: {"prompt": p, "seed": s, "steps": n, "guidance": g}
                                                          for k, (p, s, n, g) in runs.items()}, indent=2))
    print(f"pipeline {name}:", ", ".join(runs))


# ---------------------------------------------------------------------------------------------
# DPM-Solver++ and Euler: plans and trajectories, and whole pipelines saved with them

# (class, train config, overrides, steps): each scheduler built as diffusers users build it,
# `Class.from_config(base_config, **overrides)`, then saved with save_config (so the files hold
# what diffusers writes, -Infinity included).
SAMPLER_CASES = {
    "dpm2m-leading": (DPMSolverMultistepScheduler, "sd15", {}, 20),
    "dpm2m-karras": (DPMSolverMultistepScheduler, "sd15", {"use_karras_sigmas": True}, 20),
    "dpm3m-trailing-v": (DPMSolverMultistepScheduler, "sd2-v", {"solver_order": 3, "timestep_spacing": "trailing"}, 25),
    "dpm3m-karras-short": (DPMSolverMultistepScheduler, "sd15", {"solver_order": 3, "use_karras_sigmas": True}, 8),
    "dpm1-linspace": (DPMSolverMultistepScheduler, "sd15", {"solver_order": 1, "timestep_spacing": "linspace"}, 12),
    "dpm2m-heun-sigma-min": (DPMSolverMultistepScheduler, "sd15", {"solver_type": "heun", "final_sigmas_type": "sigma_min",
                                                                  "lower_order_final": False}, 18),
    "dpm2m-cosine-clipped-sample": (DPMSolverMultistepScheduler, "cosine-linspace-sample-clip",
                                    {"lambda_min_clipped": -5.1, "timestep_spacing": "linspace"}, 15),
    "dpm2m-euler-final": (DPMSolverMultistepScheduler, "sd15", {"euler_at_final": True, "final_sigmas_type": "sigma_min"}, 16),
    "euler-leading": (EulerDiscreteScheduler, "sd15", {}, 20),
    "euler-linspace": (EulerDiscreteScheduler, "sd15", {"timestep_spacing": "linspace"}, 17),
    "euler-trailing-v": (EulerDiscreteScheduler, "sd2-v", {"timestep_spacing": "trailing"}, 25),
    "euler-karras": (EulerDiscreteScheduler, "sd15", {"use_karras_sigmas": True}, 20),
    "euler-karras-bounds-sigma-min": (EulerDiscreteScheduler, "sd15", {"use_karras_sigmas": True, "sigma_min": 0.05, "sigma_max": 10.0,
                                                                      "final_sigmas_type": "sigma_min", "timestep_spacing": "linspace"}, 14),
}


def sampler(case: str):
    cls, base, overrides, _ = SAMPLER_CASES[case]
    config = dict(DDIMScheduler(num_train_timesteps=1000, **SCHEDULER_CASES[base]).config)
    return cls.from_config(config, **overrides)


def make_sampler_fixture() -> None:
    """Each case's plan (timesteps, sigmas) and a trajectory under the fixed stand-in model."""
    directory = OUT / "samplers"
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    tensors, meta = {}, {}
    start = seeded(13, 1, 4, 8, 8)
    direction = seeded(14, 1, 4, 8, 8)
    for name, (_, _, _, steps) in SAMPLER_CASES.items():
        scheduler = sampler(name)
        scheduler.save_config(directory / name)
        scheduler.set_timesteps(steps)
        x = start * scheduler.init_noise_sigma
        for i, t in enumerate(scheduler.timesteps):
            x = scheduler.step(fixed_model(scheduler.scale_model_input(x, t), float(t), direction), t, x).prev_sample
            if i == steps // 2:
                tensors[f"{name}.middle"] = x
        tensors[f"{name}.final"] = x
        tensors[f"{name}.sigmas"] = scheduler.sigmas.float()
        meta[name] = {"steps": steps, "timesteps": [float(t) for t in scheduler.timesteps],
                      "init_noise_sigma": float(scheduler.init_noise_sigma)}
    tensors["start"], tensors["direction"] = start, direction
    save_tensors(directory / "trajectories.safetensors", tensors)
    (directory / "cases.json").write_text(json.dumps(meta, indent=1))
    print("samplers:", ", ".join(SAMPLER_CASES))


# Whole pipelines: (weights, scheduler class, overrides, prompt, seed, steps, guidance).
SAMPLER_PIPELINE_RUNS = {
    "tiny-sd-dpm2m-karras": ("tiny-sd", DPMSolverMultistepScheduler, {"use_karras_sigmas": True},
                             "a red circle on a blue background", 7, 12, 7.5),
    "tiny-sd-dpm2m": ("tiny-sd", DPMSolverMultistepScheduler, {}, "a big yellow triangle on a striped white background", 8888, 15, 5.0),
    "tiny-sd-euler": ("tiny-sd", EulerDiscreteScheduler, {}, "a red circle on a blue background", 7, 12, 7.5),
    "tiny-sd-euler-karras": ("tiny-sd", EulerDiscreteScheduler, {"use_karras_sigmas": True}, "a green square on a dotted black background", 3, 10, 6.0),
    "tiny-sd2-dpm3m-trailing": ("tiny-sd2", DPMSolverMultistepScheduler, {"solver_order": 3, "timestep_spacing": "trailing"},
                                "A painting of a squirrel eating a burger", 8888, 10, 7.5),
    "tiny-sd2-euler-karras": ("tiny-sd2", EulerDiscreteScheduler, {"use_karras_sigmas": True},
                              "a photo of a cat, sitting on a red sofa", 3, 12, 5.0),
}


def make_sampler_pipeline_fixture() -> None:
    """diffusers' StableDiffusionPipeline on the tiny-sd and tiny-sd2 weights with other schedulers: the
    scheduler folder and model_index.json each pipeline saves, and the image it generates."""
    directory = OUT / "sampler-pipelines"
    if directory.exists():
        shutil.rmtree(directory)
    tensors, meta = {}, {}
    for name, (weights, cls, overrides, prompt, seed, steps, guidance) in SAMPLER_PIPELINE_RUNS.items():
        pipe = StableDiffusionPipeline.from_pretrained(OUT / weights, torch_dtype=torch.float32, safety_checker=None,
                                                       requires_safety_checker=False)
        pipe.scheduler = cls.from_config(pipe.scheduler.config, **overrides)
        pipe.set_progress_bar_config(disable=True)
        saved = directory / name
        pipe.scheduler.save_pretrained(saved / "scheduler")
        pipe.save_config(saved)
        with torch.no_grad():
            image = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance, height=64, width=64,
                         generator=torch.Generator().manual_seed(seed), output_type="pt").images
        tensors[f"{name}.image"] = image * 2 - 1
        meta[name] = {"weights": weights, "prompt": prompt, "seed": seed, "steps": steps, "guidance": guidance}
    save_tensors(directory / "images.safetensors", tensors)
    (directory / "runs.json").write_text(json.dumps(meta, indent=2))
    print("sampler pipelines:", ", ".join(SAMPLER_PIPELINE_RUNS))


# Euler ancestral: plans and trajectories (the fresh noise of each step from a seeded torch
# generator, as diffusers' pipelines pass theirs to step), and whole pipelines.
ANCESTRAL_CASES = {
    "euler-a-linspace": ("sd15", {"timestep_spacing": "linspace"}, 20),
    "euler-a-leading": ("sd15", {}, 15),
    "euler-a-trailing-v": ("sd2-v", {"timestep_spacing": "trailing"}, 12),
}
ANCESTRAL_PIPELINE_RUNS = {
    "tiny-sd-euler-a": ("tiny-sd", "a red circle on a blue background", 7, 12, 7.5),
    "tiny-sd2-euler-a": ("tiny-sd2", "a photo of a cat, sitting on a red sofa", 3, 10, 5.0),
}


def stochastic_trajectories(directory: Path, scheduler_class, cases: dict, tensors: dict, meta: dict) -> None:
    """Each (train config, overrides, steps) case of a scheduler that draws noise between steps:
    saved with save_config, run under the fixed stand-in model with its noise from a generator
    seeded 21 (as diffusers' pipelines pass theirs to step), its plan and final sample kept."""
    start = seeded(13, 1, 4, 8, 8)
    direction = seeded(14, 1, 4, 8, 8)
    for name, (base, overrides, steps) in cases.items():
        config = dict(DDIMScheduler(num_train_timesteps=1000, **SCHEDULER_CASES[base]).config)
        scheduler = scheduler_class.from_config(config, **overrides)
        scheduler.save_config(directory / name)
        scheduler.set_timesteps(steps)
        generator = torch.Generator().manual_seed(21)
        x = start * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            x = scheduler.step(fixed_model(scheduler.scale_model_input(x, t), float(t), direction), t, x, generator=generator).prev_sample
        tensors[f"{name}.final"] = x
        meta[name] = {"steps": steps, "timesteps": [float(t) for t in scheduler.timesteps],
                      "init_noise_sigma": float(scheduler.init_noise_sigma), "noise_seed": 21}
    tensors["start"], tensors["direction"] = start, direction


def make_ancestral_fixture() -> None:
    directory = OUT / "samplers-ancestral"
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    tensors, meta = {}, {}
    stochastic_trajectories(directory, EulerAncestralDiscreteScheduler, ANCESTRAL_CASES, tensors, meta)
    for name, (weights, prompt, seed, steps, guidance) in ANCESTRAL_PIPELINE_RUNS.items():
        pipe = StableDiffusionPipeline.from_pretrained(OUT / weights, torch_dtype=torch.float32, safety_checker=None,
                                                       requires_safety_checker=False)
        pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        with torch.no_grad():
            image = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance, height=64, width=64,
                         generator=torch.Generator().manual_seed(seed), output_type="pt").images
        tensors[f"{name}.image"] = image * 2 - 1
        meta[name] = {"weights": weights, "prompt": prompt, "seed": seed, "steps": steps, "guidance": guidance}
    save_tensors(directory / "ancestral.safetensors", tensors)
    (directory / "cases.json").write_text(json.dumps(meta, indent=1))
    print("ancestral:", ", ".join(list(ANCESTRAL_CASES) + list(ANCESTRAL_PIPELINE_RUNS)))


# Few-step checkpoints: LCMScheduler's plans and trajectories; a tiny LCM-distilled model (a UNet
# with time_cond_proj_dim, the guidance scale embedded instead of a second row) run by diffusers'
# LatentConsistencyModelPipeline; and SD-Turbo's way, guidance 0 (one row per prompt) with Euler
# ancestral at trailing spacing.
LCM_CASES = {
    # (train config, overrides, steps)
    "lcm-4": ("sd15", {}, 4),
    "lcm-1": ("sd15", {}, 1),
    "lcm-8-original-25": ("sd15", {"original_inference_steps": 25}, 8),
    "lcm-6-v-clipped": ("sd2-v", {"clip_sample": True, "clip_sample_range": 1.5, "timestep_scaling": 5.0}, 6),
}
FEW_STEP_RUNS = {
    # (weights, scheduler class, overrides, prompt, seed, steps, guidance)
    "tiny-lcm-4": ("tiny-lcm", LCMScheduler, {}, "a red circle on a blue background", 7, 4, 8.0),
    "tiny-lcm-2": ("tiny-lcm", LCMScheduler, {}, "a big yellow triangle on a striped white background", 8888, 2, 1.5),
    "tiny-sd-turbo-1": ("tiny-sd", EulerAncestralDiscreteScheduler, {"timestep_spacing": "trailing"},
                        "a red circle on a blue background", 7, 1, 0.0),
    "tiny-sd-turbo-4": ("tiny-sd", EulerAncestralDiscreteScheduler, {"timestep_spacing": "trailing"},
                        "a green square on a dotted black background", 3, 4, 1.0),
}


def make_lcm_model(name: str = "tiny-lcm") -> None:
    """tiny-sd's tokenizer, text encoder and VAE with a UNet that takes the guidance scale's
    embedding (time_cond_proj_dim), saved as diffusers saves an LCM-distilled pipeline."""
    directory = OUT / name
    if directory.exists():
        shutil.rmtree(directory)
    base = StableDiffusionPipeline.from_pretrained(OUT / "tiny-sd", torch_dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                                cross_attention_dim=32, attention_head_dim=2, norm_num_groups=16, time_cond_proj_dim=16).eval()
    randomize(unet, 130)
    with torch.no_grad():
        unet.conv_out.weight.mul_(0.3)
    scheduler = LCMScheduler.from_config(base.scheduler.config)
    pipe = LatentConsistencyModelPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=unet,
                                          scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(directory, safe_serialization=True)
    for component in ("text_encoder", "unet", "vae"):
        getattr(pipe, component).half().save_pretrained(directory / component, safe_serialization=True)
        getattr(pipe, component).float()


def make_few_step_fixture() -> None:
    directory = OUT / "few-step"
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    tensors, meta = {}, {}
    stochastic_trajectories(directory, LCMScheduler, LCM_CASES, tensors, meta)
    # The guidance embedding as diffusers computes it, at widths even and odd.
    for width in (16, 15):
        w = torch.tensor([7.0, 0.5, 0.0])
        tensors[f"guidance-embedding-{width}"] = LatentConsistencyModelPipeline.get_guidance_scale_embedding(None, w, embedding_dim=width)
    make_lcm_model()
    for name, (weights, cls, overrides, prompt, seed, steps, guidance) in FEW_STEP_RUNS.items():
        pipeline = LatentConsistencyModelPipeline if weights == "tiny-lcm" else StableDiffusionPipeline
        pipe = pipeline.from_pretrained(OUT / weights, torch_dtype=torch.float32, safety_checker=None, requires_safety_checker=False)
        pipe.scheduler = cls.from_config(pipe.scheduler.config, **overrides)
        pipe.set_progress_bar_config(disable=True)
        saved = directory / name
        pipe.scheduler.save_pretrained(saved / "scheduler")
        with torch.no_grad():
            image = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance, height=64, width=64,
                         generator=torch.Generator().manual_seed(seed), output_type="pt").images
        tensors[f"{name}.image"] = image * 2 - 1
        meta[name] = {"weights": weights, "prompt": prompt, "seed": seed, "steps": steps, "guidance": guidance}
    save_tensors(directory / "few-step.safetensors", tensors)
    (directory / "cases.json").write_text(json.dumps(meta, indent=1))
    print("few-step:", ", ".join(list(LCM_CASES) + list(FEW_STEP_RUNS)))


# LoRA: random low-rank updates of tiny-sd's UNet (attention, feed-forward, projections,
# ResNet convolutions and time projections) and text encoder, saved by diffusers in its PEFT
# layout (with the adapter metadata that carries alpha) and rewritten in kohya's layout (the
# same updates as lora_down / lora_up / alpha under underscored module names); each loaded by
# diffusers' load_lora_weights and fused at a scale with fuse_lora, then run.
LORA_RUNS = {
    # (file, fuse scale, prompt, seed, steps, guidance)
    "peft": ("lora-peft.safetensors", 0.7, "a red circle on a blue background", 7, 8, 7.5),
    "kohya": ("lora-kohya.safetensors", 1.0, "a big yellow triangle on a striped white background", 8888, 8, 5.0),
}


def make_lora_fixture() -> None:
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file as save_safetensors

    directory = OUT / "lora"
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)

    def pipeline():
        pipe = StableDiffusionPipeline.from_pretrained(OUT / "tiny-sd", torch_dtype=torch.float32, safety_checker=None,
                                                       requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    pipe = pipeline()
    unet_config = LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                             target_modules=["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                                             "conv1", "conv2", "conv_shortcut", "time_emb_proj", "conv"])
    text_config = LoraConfig(r=2, lora_alpha=2, init_lora_weights=False, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"])
    pipe.unet.add_adapter(unet_config)
    pipe.text_encoder.add_adapter(text_config)
    generator = torch.Generator().manual_seed(60)
    with torch.no_grad():
        for model in (pipe.unet, pipe.text_encoder):
            for name, p in model.named_parameters():
                if "lora_" in name:
                    p.copy_((torch.randn(p.shape, generator=generator) / math.sqrt(p[0].numel())).half().float())
    unet_state = get_peft_model_state_dict(pipe.unet)
    text_state = get_peft_model_state_dict(pipe.text_encoder)
    StableDiffusionPipeline.save_lora_weights(
        directory, unet_lora_layers=unet_state, text_encoder_lora_layers=text_state,
        unet_lora_adapter_metadata=unet_config.to_dict(), text_encoder_lora_adapter_metadata=text_config.to_dict(),
        weight_name="lora-peft.safetensors", safe_serialization=True)
    # kohya: lora_unet_<module>.lora_down.weight / lora_up.weight / alpha; alpha 2 here (not r).
    kohya = {}
    for prefix, state, alpha in (("lora_unet_", unet_state, 2.0), ("lora_te_", text_state, 1.0)):
        for key, value in state.items():
            module, part = key.rsplit(".lora_", 1)
            name = prefix + module.replace(".", "_")
            kohya[f"{name}.lora_down.weight" if part.startswith("A") else f"{name}.lora_up.weight"] = value.contiguous()
            kohya[f"{name}.alpha"] = torch.tensor(alpha)
    save_safetensors(kohya, str(directory / "lora-kohya.safetensors"))

    tensors, meta = {}, {}
    for name, (file, scale, prompt, seed, steps, guidance) in LORA_RUNS.items():
        pipe = pipeline()
        pipe.load_lora_weights(directory, weight_name=file)
        pipe.fuse_lora(lora_scale=scale, components=["unet", "text_encoder"])
        pipe.unload_lora_weights()  # the fused weights stay
        with torch.no_grad():
            image = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance, height=64, width=64,
                         generator=torch.Generator().manual_seed(seed), output_type="pt").images
        tensors[f"{name}.image"] = image * 2 - 1
        meta[name] = {"file": file, "scale": scale, "prompt": prompt, "seed": seed, "steps": steps, "guidance": guidance}
    # Without the LoRA, for a test that the updates change the image.
    with torch.no_grad():
        image = pipeline()(LORA_RUNS["peft"][2], num_inference_steps=8, guidance_scale=7.5, height=64, width=64,
                           generator=torch.Generator().manual_seed(7), output_type="pt").images
    tensors["plain.image"] = image * 2 - 1
    save_tensors(directory / "images.safetensors", tensors)
    (directory / "runs.json").write_text(json.dumps(meta, indent=1))
    print("lora:", ", ".join(LORA_RUNS))


# CLIP, as the InstructPix2Pix recipe scores pairs with it (its metrics/clip_similarity.py): a
# tiny random transformers CLIPModel with the tiny-sd tokenizer, two pictures resized as the
# recipe resizes them (bicubic to the model's size, no antialiasing, CLIP's mean and std), their
# features and the four similarities.
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def clip_pixels(image: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.interpolate(x, size=size, mode="bicubic", align_corners=False)
    return (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)


def make_clip_fixture(seed: int = 50) -> None:
    directory = OUT / "tiny-clip"
    if directory.exists():
        shutil.rmtree(directory)
    tokenizer = CLIPTokenizer.from_pretrained(OUT / "tiny-sd" / "tokenizer")
    config = CLIPConfig(
        text_config=dict(vocab_size=tokenizer.vocab_size + 2, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=3, image_size=40,
                           patch_size=8, num_channels=3, hidden_act="quick_gelu"),
        projection_dim=24)
    model = CLIPModel(config).eval()
    for part in (model.text_model, model.vision_model, model.text_projection, model.visual_projection):
        randomize(part, seed)
        seed += 1
    save_model(model, directory)
    tokenizer.save_pretrained(directory)
    # Two pictures, one not square (the recipe squashes to the model's square size).
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:72, 0:56]
    first = np.stack([(xx * 4) % 256, (yy * 3) % 256, ((xx + yy) * 2) % 256], axis=-1).astype(np.uint8)
    second = rng.integers(0, 256, size=(72, 56, 3), dtype=np.uint8)
    from PIL import Image
    for name, image in (("image-0", first), ("image-1", second)):
        Image.fromarray(image).save(directory / f"{name}.png")
    texts = ["a red circle on a blue background", "a red circle on a striped blue background"]
    size = config.vision_config.image_size
    with torch.no_grad():
        pixels = torch.cat([clip_pixels(first, size), clip_pixels(second, size)])
        images = model.get_image_features(pixel_values=pixels).pooler_output
        ids = tokenizer(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        words = model.get_text_features(input_ids=ids).pooler_output
    images = images / images.norm(dim=1, keepdim=True)
    words = words / words.norm(dim=1, keepdim=True)
    cos = torch.nn.functional.cosine_similarity
    similarities = torch.stack([cos(images[:1], words[:1])[0], cos(images[1:], words[1:])[0],
                                cos(images[1:] - images[:1], words[1:] - words[:1])[0], cos(images[:1], images[1:])[0]])
    save_tensors(directory / "io.safetensors", {"pixel_values": pixels, "image_features": images, "text_features": words,
                                                 "similarities": similarities})
    (directory / "io.json").write_text(json.dumps({"texts": texts, "images": ["image-0.png", "image-1.png"],
                                                   "similarities": ["text_0", "text_1", "direction", "image"]}, indent=2))
    print("tiny clip: similarities", [round(float(s), 4) for s in similarities])


# JPEG as phones and cameras write it: one picture stored in each EXIF orientation (1-8), and
# how Pillow's exif_transpose shows it upright.
def make_jpeg_fixture() -> None:
    from PIL import Image, ImageOps
    directory = OUT / "jpeg"
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    yy, xx = np.mgrid[0:24, 0:40]
    upright = np.stack([xx * 6, yy * 10, np.where((xx < 20) ^ (yy < 12), 220, 30)], axis=-1).astype(np.uint8)
    # What a camera stores for each orientation: the upright picture turned the other way.
    undo = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}
    for orientation, transform in undo.items():
        stored = Image.fromarray(upright)
        if transform is not None:
            stored = stored.transpose(transform)
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = directory / f"orientation-{orientation}.jpg"
        stored.save(path, quality=95, subsampling=0, exif=exif.tobytes())
        shown = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        shown.save(directory / f"orientation-{orientation}-upright.png")
    print("jpeg: orientations 1-8")


# Negative prompts: diffusers' `negative_prompt` takes the place of the empty prompt in the
# unconditional half of classifier-free guidance.
NEGATIVE_PROMPT_RUNS = {
    "tiny-sd-negative": ("tiny-sd", "a red circle on a blue background", "a striped background", 7, 10, 7.5),
    "tiny-sd2-negative": ("tiny-sd2", "A painting of a squirrel eating a burger", "blurry, low quality", 8888, 10, 7.5),
}


def make_negative_prompt_fixture() -> None:
    """StableDiffusionPipeline with `negative_prompt`, on the committed tiny-sd and tiny-sd2 weights."""
    tensors, meta = {}, {}
    for name, (weights, prompt, negative, seed, steps, guidance) in NEGATIVE_PROMPT_RUNS.items():
        pipe = StableDiffusionPipeline.from_pretrained(OUT / weights, torch_dtype=torch.float32, safety_checker=None,
                                                       requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        with torch.no_grad():
            image = pipe(prompt, negative_prompt=negative, num_inference_steps=steps, guidance_scale=guidance, height=64, width=64,
                         generator=torch.Generator().manual_seed(seed), output_type="pt").images
        tensors[f"{name}.image"] = image * 2 - 1
        meta[name] = {"weights": weights, "prompt": prompt, "negative_prompt": negative, "seed": seed, "steps": steps, "guidance": guidance}
    save_tensors(OUT / "negative-prompt.safetensors", tensors)
    (OUT / "negative-prompt.json").write_text(json.dumps(meta, indent=2))
    print("negative prompts:", ", ".join(NEGATIVE_PROMPT_RUNS))


# SDXL's components

SDXL_UNET = dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                 cross_attention_dim=64, attention_head_dim=(2, 4), use_linear_projection=True,
                 transformer_layers_per_block=(1, 2), norm_num_groups=16,
                 addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=32 + 6 * 8)


def make_sdxl_unet_fixture(seed: int = 40) -> None:
    """A tiny UNet of SDXL's architecture: text_time added embeddings (the pooled text
    embedding and six size/crop time ids), two transformer layers per block at its deepest
    cross-attention level, per-level head counts, linear projections."""
    config = SDXL_UNET
    model = UNet2DConditionModel(**config).eval()
    randomize(model, seed)
    directory = OUT / "unet-sdxl"
    save_model(model, directory)
    tensors = {}
    for tag, (h, w) in (("even", (16, 16)), ("odd", (12, 10))):
        sample = seeded(seed + 1, 2, config["in_channels"], h, w)
        context = seeded(seed + 2, 2, 77, config["cross_attention_dim"])
        timestep = torch.tensor([523, 17])
        text_embeds = seeded(seed + 3, 2, 32)
        time_ids = torch.tensor([[1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0], [768.0, 1344.0, 16.0, 32.0, 1024.0, 1024.0]])
        with torch.no_grad():
            out = model(sample, timestep, context, added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids}).sample
        tensors |= {f"{tag}.sample": sample, f"{tag}.context": context, f"{tag}.timestep": timestep.float(), f"{tag}.output": out,
                    f"{tag}.text_embeds": text_embeds, f"{tag}.time_ids": time_ids}
        print(f"unet-sdxl {tag}: scale {out.abs().max():.3f}")
    save_tensors(directory / "io.safetensors", tensors)


def make_text_encoder_with_projection_fixture(seed: int = 41) -> None:
    """SDXL's second text encoder (CLIPTextModelWithProjection): the penultimate hidden state
    (SDXL's conditioning, before the final norm), the last one, and the projected pooled
    output (text_embeds), pooled at the first end-of-text token."""
    config = CLIPTextConfig(vocab_size=1000, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                            num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5,
                            bos_token_id=998, eos_token_id=999, pad_token_id=0, projection_dim=48)
    model = CLIPTextModelWithProjection(config).eval()
    randomize(model, seed)
    directory = OUT / "text-encoder-projection"
    save_model(model, directory)
    ids = torch.randint(1, 998, (2, 77), generator=torch.Generator().manual_seed(seed))
    ids[:, 0] = 998
    # Ends of text, then the pad token ("!" in SDXL's second tokenizer, id 0 here).
    ids[0, 9] = 999
    ids[0, 10:] = 0
    ids[1, 40] = 999
    ids[1, 41:] = 0
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
    save_tensors(directory / "io.safetensors", {"input_ids": ids.float(), "last_hidden_state": out.last_hidden_state,
                                                "penultimate_hidden_state": out.hidden_states[-2], "text_embeds": out.text_embeds})
    print(f"text-encoder-projection: scale {out.text_embeds.abs().max():.3f}")


# The runs of the tiny SDXL pipeline: prompt, negative prompt (None: SDXL's zeroed negative
# embeddings), seed, steps, guidance, original size and crop corner (None: diffusers' defaults).
SDXL_RUNS = {
    "a": ("A painting of a squirrel eating a burger", None, 8888, 10, 5.0, None, None),
    "b": ("a photo of a cat, sitting on a red sofa", "blurry, low quality", 3, 12, 7.0, None, None),
    "c": ("an astronaut riding a horse on Mars", None, 42, 10, 6.0, (128, 96), (8, 4)),
}


def make_sdxl_pipeline_fixture(name: str = "tiny-sdxl") -> None:
    """A tiny pipeline of SDXL's architecture saved as StableDiffusionXLPipeline saves it: two
    text encoders of different widths (the second with a projection, its tokenizer padding
    with "!"), a text_time UNet, a VAE with SDXL's scaling factor, SDXL's Euler scheduler."""
    directory = OUT / name
    if directory.exists():
        shutil.rmtree(directory)
    write_sd_tokenizer(directory / "tokenizer")
    write_sd_tokenizer(directory / "tokenizer_2", pad_token="!")
    tokenizer = CLIPTokenizer.from_pretrained(directory / "tokenizer")
    tokenizer_2 = CLIPTokenizer.from_pretrained(directory / "tokenizer_2")
    text_encoder = tiny_text_encoder(len(tokenizer), tokenizer)
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=len(tokenizer_2), hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
        max_position_embeddings=77, hidden_act="gelu", bos_token_id=tokenizer_2.bos_token_id,
        eos_token_id=tokenizer_2.eos_token_id, pad_token_id=tokenizer_2.pad_token_id, projection_dim=40)).eval()
    # SDXL's layout at a small scale: no attention at the first level, cross-attention at the
    # other two, more transformer layers at the deepest (the Prompt-to-Prompt reference edits
    # this model at 128 px: 8x8 and 4x4 attention maps).
    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64, 64),
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32 + 48,
                                attention_head_dim=(2, 4, 4), use_linear_projection=True, transformer_layers_per_block=(1, 1, 2),
                                norm_num_groups=16, addition_embed_type="text_time", addition_time_embed_dim=8,
                                projection_class_embeddings_input_dim=40 + 6 * 8).eval()
    vae = AutoencoderKL(block_out_channels=(16, 16, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1, latent_channels=4, norm_num_groups=8,
                        sample_size=64, scaling_factor=0.13025, force_upcast=True).eval()
    for i, model in enumerate((text_encoder, text_encoder_2, unet, vae)):
        randomize(model, 140 + i)
    with torch.no_grad():
        unet.conv_out.weight.mul_(0.3)
    scheduler = EulerDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading", interpolation_type="linear",
                                       use_karras_sigmas=False, prediction_type="epsilon")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
                                     tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler, force_zeros_for_empty_prompt=True,
                                     add_watermarker=False)
    pipe.save_pretrained(directory, safe_serialization=True, variant=None)
    for folder in ("tokenizer", "tokenizer_2"):
        (directory / folder / "tokenizer.json").unlink(missing_ok=True)
    for component in ("text_encoder", "text_encoder_2", "unet", "vae"):
        getattr(pipe, component).half()
        getattr(pipe, component).save_pretrained(directory / component, safe_serialization=True)
        getattr(pipe, component).float()
    pipe.set_progress_bar_config(disable=True)
    tensors = {}
    for tag, (prompt, negative, seed, steps, guidance, original, crop) in SDXL_RUNS.items():
        extra = {}
        if original:
            extra |= {"original_size": original, "crops_coords_top_left": crop}
        with torch.no_grad():
            image = pipe(prompt, negative_prompt=negative, num_inference_steps=steps, guidance_scale=guidance, height=64, width=64,
                         generator=torch.Generator().manual_seed(seed), output_type="pt", **extra).images
        tensors[f"{tag}.image"] = image * 2 - 1
    save_tensors(OUT / f"{name}-pipeline.safetensors", tensors)
    (OUT / f"{name}-pipeline.json").write_text(json.dumps(
        {k: {"prompt": p, "negative_prompt": n, "seed": s, "steps": st, "guidance": g, "original_size": o, "crops_coords_top_left": c}
         for k, (p, n, s, st, g, o, c) in SDXL_RUNS.items()}, indent=2))
    print(f"pipeline {name}:", ", ".join(SDXL_RUNS))


PARTS = {
    "sdxl-pipeline": make_sdxl_pipeline_fixture,
    "sdxl-components": lambda: (make_sdxl_unet_fixture(), make_text_encoder_with_projection_fixture()),
    "samplers": lambda: (make_sampler_fixture(), make_sampler_pipeline_fixture()),
    "negative-prompt": make_negative_prompt_fixture,
    "ancestral": make_ancestral_fixture,
    "few-step": make_few_step_fixture,
    "lora": make_lora_fixture,
    "clip": make_clip_fixture,
    "jpeg": make_jpeg_fixture,
}


def main() -> None:
    if len(sys.argv) > 1:
        for part in sys.argv[1:]:
            PARTS[part]()
        return
    OUT.mkdir(parents=True, exist_ok=True)
    make_tokenizer_fixture()
    make_text_encoder_fixture("text-encoder-quick-gelu", "quick_gelu", 1)
    make_text_encoder_fixture("text-encoder-gelu", "gelu", 2)
    for i, (name, config) in enumerate(unet_configs().items()):
        make_unet_fixture(name, config, 10 + i)
    make_vae_fixture(20)
    make_scheduler_fixture()
    make_noise_fixture()
    for name in PIPELINE_RUNS:
        make_pipeline_fixture(name)
    make_sampler_fixture()
    make_sampler_pipeline_fixture()
    make_negative_prompt_fixture()
    make_ancestral_fixture()
    make_few_step_fixture()
    make_lora_fixture()
    make_clip_fixture()
    make_jpeg_fixture()


if __name__ == "__main__":
    main()
