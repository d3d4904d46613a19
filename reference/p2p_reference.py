"""A Prompt-to-Prompt reference on top of diffusers, written from ../shared/spec/prompt-to-prompt.md
(our own code: attention processors that expose the probabilities, and controllers that edit
them), producing the golden fixtures the Swift implementation must reproduce:
Tests/Fixtures/reference/p2p-*.

    $(scripts/python-env) reference/p2p_reference.py            # everything
    $(scripts/python-env) reference/p2p_reference.py samplers   # the DPM-Solver++ and Euler edits only
    $(scripts/python-env) reference/p2p_reference.py sdxl       # edits of the tiny SDXL pipeline only

For each case it stores the final latents, the stored cross-attention maps (averaged over steps
and heads, per layer) and the last LocalBlend mask.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "reference"
sys.path.insert(0, str(ROOT / "reference"))
sys.path.insert(0, str(ROOT / "training"))
from make_fixtures import SCHEDULER_CASES, randomize, tiny_text_encoder, tiny_vae  # noqa: E402
from shapes_world.tokenizer import write_tokenizer  # noqa: E402

MAX_TOKENS = 77
torch.set_num_threads(2)


# ---------------------------------------------------------------------------------------------
# Words, alignment, replacement matrices, schedules (spec sections 3-6)

def word_tokens(prompt: str, tokenizer, word=None, index=None) -> list[int]:
    """Token positions (BOS = 0) of a word (case-insensitive, trailing punctuation ignored) or a word index."""
    words = prompt.split(" ")
    key = lambda w: w.lower().rstrip(".,!?;:'\"")
    wanted = [i for i, w in enumerate(words) if word is not None and key(w) == key(word)] if index is None else [index]
    decoded = [tokenizer.decode([t]).strip() for t in tokenizer.encode(prompt)[1:-1]]
    out, position, consumed = [], 0, 0
    for i, text in enumerate(decoded):
        while position < len(words) and len(words[position]) == 0:
            position += 1
        if position >= len(words):
            break
        if position in wanted:
            out.append(i + 1)
        consumed += len(text)
        if consumed >= len(words[position]):
            position, consumed = position + 1, 0
    return out


def alignment(source_ids: list[int], target_ids: list[int]) -> tuple[list[int], list[float]]:
    """Needleman-Wunsch, gap 0, match 1, mismatch -1, ties: left, up, diagonal."""
    n, m = len(source_ids), len(target_ids)
    score = np.zeros((n + 1, m + 1), dtype=np.int64)
    trace = np.zeros((n + 1, m + 1), dtype=np.int64)
    trace[0, 1:], trace[1:, 0], trace[0, 0] = 1, 2, 4
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            left, up = score[i, j - 1], score[i - 1, j]
            diagonal = score[i - 1, j - 1] + (1 if source_ids[i - 1] == target_ids[j - 1] else -1)
            score[i, j] = max(left, up, diagonal)
            trace[i, j] = 1 if score[i, j] == left else 2 if score[i, j] == up else 3
    pairs, i, j = [], n, m
    while i > 0 or j > 0:
        if trace[i, j] == 3:
            i, j = i - 1, j - 1
            pairs.append((j, i))
        elif trace[i, j] == 1:
            j -= 1
            pairs.append((j, -1))
        elif trace[i, j] == 2:
            i -= 1
        else:
            break
    mapping, weights = list(range(MAX_TOKENS)), [1.0] * MAX_TOKENS
    for target_index, source_index in pairs:
        mapping[target_index] = source_index
        weights[target_index] = 1.0 if source_index >= 0 else 0.0
    return mapping, weights


def replacement_matrix(source: str, target: str, tokenizer) -> torch.Tensor:
    sw, tw = source.split(" "), target.split(" ")
    assert len(sw) == len(tw)
    changed = [i for i in range(len(sw)) if sw[i] != tw[i]]
    src = [word_tokens(source, tokenizer, index=i) for i in changed]
    tgt = [word_tokens(target, tokenizer, index=i) for i in changed]
    matrix = torch.zeros(MAX_TOKENS, MAX_TOKENS)
    i = j = current = 0
    while i < MAX_TOKENS and j < MAX_TOKENS:
        if current < len(changed) and src[current][0] == i:
            if len(src[current]) == len(tgt[current]):
                for a, b in zip(src[current], tgt[current]):
                    matrix[a, b] = 1
            else:
                for a in src[current]:
                    for b in tgt[current]:
                        matrix[a, b] = 1 / len(tgt[current])
            i, j = i + len(src[current]), j + len(tgt[current])
            current += 1
        else:
            matrix[i, j] = 1  # the corrected M[i][j]
            i, j = i + 1, j + 1
    return matrix


def cross_alpha(steps: int, targets: list[str], default, words: dict, tokenizer) -> torch.Tensor:
    rows = steps + 1
    table = torch.zeros(rows, len(targets), MAX_TOKENS)

    def apply(bounds, prompt, columns):
        start, end = (0.0, bounds) if isinstance(bounds, (int, float)) else bounds
        first, last = int(start * rows), int(end * rows)
        for c in columns:
            table[:, prompt, c] = 0
            table[first:last, prompt, c] = 1

    for p in range(len(targets)):
        apply(default, p, range(MAX_TOKENS))
    for word in sorted(words):
        for p, target in enumerate(targets):
            columns = word_tokens(target, tokenizer, word=word)
            if columns:
                apply(words[word], p, columns)
    return table


# ---------------------------------------------------------------------------------------------
# Controller and attention processors

class Controller:
    def __init__(self, prompts, tokenizer, steps, mode, cross_default=0.8, cross_words=None, self_range=0.4,
                 reweight=None, blend=None, start_blend=0.2, threshold=0.3, subtract=None, subtract_threshold=0.3,
                 latent_side=16):
        self.prompts, self.count, self.steps = prompts, len(prompts), steps
        self.tokenizer = tokenizer
        ids = [tokenizer(p).input_ids for p in prompts]
        self.mode = mode
        targets = prompts[1:]
        if mode == "replace":
            self.matrices = torch.stack([replacement_matrix(prompts[0], t, tokenizer) for t in targets])
        elif mode == "refine":
            aligned = [alignment(ids[0], i) for i in ids[1:]]
            self.mapping = torch.tensor([a[0] for a in aligned])
            self.weights = torch.tensor([a[1] for a in aligned])
        self.equalizer = None
        if reweight:
            eq = torch.ones(len(targets), MAX_TOKENS)
            for p, t in enumerate(targets):
                for word, value in reweight.items():
                    for c in word_tokens(t, tokenizer, word=word):
                        eq[p, c] = value
            self.equalizer = eq
        self.alpha = cross_alpha(steps, targets, cross_default, cross_words or {}, tokenizer)
        start, end = (0.0, self_range) if isinstance(self_range, (int, float)) else self_range
        self.self_steps = (int(start * steps), int(end * steps))
        self.store_limit = (latent_side // 2) ** 2
        self.self_limit = (latent_side // 4) ** 2
        self.blend_side = latent_side // 4
        def tokens(lists):
            return [[c for w in words for c in word_tokens(p, tokenizer, word=w)] for p, words in zip(prompts, lists)] if lists else None
        self.blend, self.subtract = tokens(blend), tokens(subtract)
        self.start_blend, self.threshold, self.subtract_threshold = int(start_blend * steps), threshold, subtract_threshold
        self.step, self.layer = 0, 0
        self.sums = {}  # layer index -> (place, side, heads, sum [B, H, P, N])
        self.masks = []

    def mapped(self, source, own, target):
        """source, own: [H, P, N] -> the mapped map of edited prompt `target`."""
        if self.mode == "replace":
            base = torch.einsum("hpw,wn->hpn", source, self.matrices[target])
        elif self.mode == "refine":
            picked = source[:, :, self.mapping[target]]
            base = picked * self.weights[target] + own * (1 - self.weights[target])
        else:
            base = source
        if self.equalizer is not None:
            base = base * self.equalizer[target]
        return base

    def __call__(self, probs, heads, is_cross, place):
        index = self.layer
        self.layer += 1
        total, queries, keys = probs.shape
        batch = total // heads
        cond = probs.view(batch, heads, queries, keys)[batch - self.count:]  # the conditional rows, a view
        edits = self.mode != "none"
        if is_cross and edits:
            alpha = self.alpha[self.step]
            for t in range(1, self.count):
                new = self.mapped(cond[0], cond[t], t - 1)
                cond[t] = alpha[t - 1] * new + (1 - alpha[t - 1]) * cond[t]
        elif not is_cross and edits and self.self_steps[0] <= self.step < self.self_steps[1] and queries <= self.self_limit:
            for t in range(1, self.count):
                cond[t] = cond[0]
        if is_cross and queries <= self.store_limit:
            side = int(queries ** 0.5)
            if index not in self.sums:
                self.sums[index] = (place, side, heads, torch.zeros_like(cond))
            self.sums[index][3].add_(cond)
        return probs

    def end_pass(self):
        self.layer = 0

    def end_step(self, latents):
        if self.blend is None or self.step + 1 <= self.start_blend:
            return latents
        layers = [v for k, v in sorted(self.sums.items()) if v[1] == self.blend_side and v[0] in ("down", "up")]

        def word_mask(token_lists, pooled, threshold):
            """The null-text notebook's get_mask: per prompt, its words' maps summed, averaged over
            layers and heads, (pooled,) resized, divided by the maximum, thresholded, OR the source's."""
            maps = []
            for b in range(self.count):
                total = sum(s[b][:, :, token_lists[b]].sum(-1).sum(0) for (_, _, _, s) in layers)
                heads = sum(h for (_, _, h, _) in layers)
                maps.append((total / heads).view(1, 1, self.blend_side, self.blend_side))
            maps = torch.cat(maps)
            if pooled:
                maps = F.max_pool2d(maps, 3, 1, 1)
            resized = F.interpolate(maps, size=latents.shape[2:], mode="nearest")
            peak = resized.amax(dim=(2, 3), keepdim=True)
            mask = resized / peak > threshold
            return mask[:1] | mask

        mask = word_mask(self.blend, True, self.threshold)
        if self.subtract is not None:
            mask = mask & ~word_mask(self.subtract, False, self.subtract_threshold)
        mask = mask.float()
        self.masks.append(mask[:, 0])
        return latents[:1] + mask * (latents - latents[:1])


class Processor:
    def __init__(self, controller, place):
        self.controller, self.place = controller, place

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        is_cross = encoder_hidden_states is not None
        context = encoder_hidden_states if is_cross else hidden_states
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(context))
        value = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(query, key, None)
        probs = self.controller(probs, attn.heads, is_cross, self.place)
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        return attn.to_out[1](attn.to_out[0](out))


# ---------------------------------------------------------------------------------------------
# The sampling loop (spec section 1)

def sd_encoder(text_encoder, tokenizer):
    """SD 1.x/2.x conditioning: the last hidden state, and the empty prompt's for guidance."""
    def encode(texts):
        ids = tokenizer(texts, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt").input_ids
        return text_encoder(ids).last_hidden_state
    return lambda prompts: (encode(prompts), encode([""] * len(prompts)), None)


def sdxl_encoder(pipe, height: int, width: int):
    """SDXL conditioning as StableDiffusionXLPipeline builds it (its own encode_prompt: both
    encoders' penultimate states, the pooled projection, zeros for no negative prompt), with
    the default size time ids."""
    def encode(prompts):
        cond, uncond, pooled, negative_pooled = pipe.encode_prompt(prompts, device="cpu", num_images_per_prompt=1,
                                                                   do_classifier_free_guidance=True, negative_prompt=None)
        time_ids = torch.tensor([[height, width, 0, 0, height, width]] * len(prompts), dtype=torch.float32)
        return cond, uncond, {"text_embeds": torch.cat([negative_pooled, pooled]), "time_ids": torch.cat([time_ids, time_ids])}
    return encode


@torch.no_grad()
def edit(unet, encoder, scheduler, prompts, seed, steps, guidance, latent_side, controller):
    unet.set_attn_processor({name: Processor(controller, name.split("_")[0] if not name.startswith("mid") else "mid")
                             for name in unet.attn_processors})
    cond, uncond, added = encoder(prompts)
    extra = {"added_cond_kwargs": added} if added else {}
    latents = torch.randn(1, unet.config.in_channels, latent_side, latent_side, generator=torch.Generator().manual_seed(seed))
    scheduler.set_timesteps(steps)
    # As diffusers' pipelines: noise scaled to the scheduler's first sigma, inputs scaled per step
    # (both the identity for DDIM and DPM-Solver++).
    latents = latents.expand(len(prompts), -1, -1, -1).clone() * scheduler.init_noise_sigma
    for step, t in enumerate(scheduler.timesteps):
        controller.step = step
        model_input = scheduler.scale_model_input(torch.cat([latents, latents]), t)
        out = unet(model_input, t, torch.cat([uncond, cond]), **extra).sample
        controller.end_pass()
        u, c = out.chunk(2)
        latents = scheduler.step(u + guidance * (c - u), t, latents).prev_sample
        latents = controller.end_step(latents)
    return latents


CASES = {
    "replace": dict(prompts=["a red circle on a blue background", "a green circle on a blue background"], mode="replace"),
    "refine": dict(prompts=["a red circle on a blue background", "a red circle on a striped blue background"], mode="refine"),
    "reweight-refine": dict(prompts=["a red circle on a blue background", "a red circle on a striped blue background"],
                            mode="refine", reweight={"striped": 3.0}, cross_words={"striped": 0.5}),
    "blend": dict(prompts=["a red circle on a blue background", "a red square on a blue background",
                           "a red triangle on a blue background"], mode="replace",
                  blend=[["circle"], ["square"], ["triangle"]], self_range=(0.1, 0.6), threshold=0.85),
    # Token counts differ (circle 1 token, hexagon 6; red 1, crimson 5): weights 1/len, and the
    # trailing tokens mapped M[i][j], shifted.
    "replace-tokens": dict(prompts=["a red circle on a blue background", "a red hexagon on a blue background",
                                    "a crimson square on a blue background"], mode="replace"),
    "reweight-replace": dict(prompts=["a red circle on a blue background", "a green circle on a blue background"],
                             mode="replace", reweight={"green": -1.5, "circle": 2.0}),
    "blend-subtract": dict(prompts=["a red circle on a dotted blue background", "a green circle on a dotted blue background"],
                           mode="replace", blend=[["circle", "background"], ["circle", "background"]],
                           subtract=[["background"], ["background"]], threshold=0.6, subtract_threshold=0.5, start_blend=0.4),
}


# Edits under other schedulers (one UNet call per step, so the step fractions mean the same):
# (base case, scheduler class, overrides, steps).
SAMPLER_CASES = {
    "replace-dpm2m-karras": ("replace", DPMSolverMultistepScheduler, {"use_karras_sigmas": True}, 20),
    "refine-dpm2m-karras": ("refine", DPMSolverMultistepScheduler, {"use_karras_sigmas": True}, 20),
    "blend-dpm2m": ("blend", DPMSolverMultistepScheduler, {}, 15),
    "reweight-refine-euler": ("reweight-refine", EulerDiscreteScheduler, {}, 20),
    "replace-euler-karras": ("replace", EulerDiscreteScheduler, {"use_karras_sigmas": True}, 12),
}


def make_sampler_cases() -> None:
    """The golden edits of SAMPLER_CASES on the p2p-sd model as written by main()."""
    directory = OUT / "p2p-sd"
    tokenizer = CLIPTokenizer.from_pretrained(directory / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(directory / "text_encoder", torch_dtype=torch.float32).eval()
    unet = UNet2DConditionModel.from_pretrained(directory / "unet", torch_dtype=torch.float32).eval()
    base = DDIMScheduler.from_pretrained(directory / "scheduler").config
    seed, guidance = 8888, 7.5
    tensors, meta = {}, {}
    for name, (case_name, cls, overrides, steps) in SAMPLER_CASES.items():
        case = CASES[case_name]
        options = {k: v for k, v in case.items() if k not in ("prompts", "mode")}
        controller = Controller(case["prompts"], tokenizer, steps, case["mode"], **options)
        scheduler = cls.from_config(base, **overrides)
        tensors[f"{name}.latents"] = edit(unet, sd_encoder(text_encoder, tokenizer), scheduler, case["prompts"], seed, steps, guidance, 16, controller)
        baseline = Controller(case["prompts"], tokenizer, steps, "none")
        tensors[f"{name}.baseline"] = edit(unet, sd_encoder(text_encoder, tokenizer), cls.from_config(base, **overrides), case["prompts"], seed,
                                           steps, guidance, 16, baseline)
        meta[name] = {"case": case_name, "scheduler": cls.__name__, "overrides": overrides, "steps": steps, "seed": seed,
                      "guidance": guidance}
        change = (tensors[f"{name}.latents"][1:] - tensors[f"{name}.baseline"][1:]).abs().max().item()
        print(f"{name}: edited vs baseline {change:.3f}")
    save_file({k: v.contiguous().float() for k, v in tensors.items()}, str(OUT / "p2p-samplers.safetensors"))
    (OUT / "p2p-samplers.json").write_text(json.dumps(meta, indent=2))


# Edits of the tiny SDXL pipeline (reference/make_fixtures.py sdxl-pipeline) at 128 px, with its
# own Euler scheduler: 16x16 latents, cross-attention at 8x8 and 4x4 (LocalBlend and the
# self-attention injection at 4x4), words counted by the first tokenizer.
SDXL_CASES = {
    "sdxl-replace": dict(prompts=["a cat sitting on a red sofa", "a dog sitting on a red sofa"], mode="replace"),
    "sdxl-refine": dict(prompts=["a cat sitting on a red sofa", "a cat sitting on a red leather sofa"], mode="refine"),
    "sdxl-blend": dict(prompts=["a cat sitting on a red sofa", "a dog sitting on a red sofa"], mode="replace",
                       blend=[["cat"], ["dog"]], threshold=0.9, reweight={"dog": 2.0}),
}


def make_sdxl_cases() -> None:
    from diffusers import StableDiffusionXLPipeline
    pipe = StableDiffusionXLPipeline.from_pretrained(OUT / "tiny-sdxl", torch_dtype=torch.float32)
    pipe.unet.eval()
    steps, seed, guidance, side = 12, 8888, 6.0, 128
    tensors, meta = {}, {}
    for name, case in SDXL_CASES.items():
        options = {k: v for k, v in case.items() if k not in ("prompts", "mode")}
        controller = Controller(case["prompts"], pipe.tokenizer, steps, case["mode"], **options)
        encoder = sdxl_encoder(pipe, side, side)
        latents = edit(pipe.unet, encoder, EulerDiscreteScheduler.from_config(pipe.scheduler.config), case["prompts"], seed, steps,
                       guidance, side // 8, controller)
        tensors[f"{name}.latents"] = latents
        for index, (place, layer_side, heads, sums) in controller.sums.items():
            tensors[f"{name}.maps.{index}"] = sums.mean(dim=1) / steps
        if controller.masks:
            tensors[f"{name}.mask"] = controller.masks[-1]
        baseline = Controller(case["prompts"], pipe.tokenizer, steps, "none")
        tensors[f"{name}.baseline"] = edit(pipe.unet, encoder, EulerDiscreteScheduler.from_config(pipe.scheduler.config),
                                           case["prompts"], seed, steps, guidance, side // 8, baseline)
        meta[name] = {"prompts": case["prompts"], "mode": case["mode"], "steps": steps, "seed": seed, "guidance": guidance,
                      "height": side, "width": side, **options}
        change = (latents[1:] - tensors[f"{name}.baseline"][1:]).abs().max().item()
        coverage = [float(m.mean()) for m in controller.masks[-1]] if controller.masks else None
        print(f"{name}: latent scale {latents.abs().max():.3f}, edited vs baseline {change:.3f}, layers stored {len(controller.sums)}, mask coverage {coverage}")
    save_file({k: v.contiguous().float() for k, v in tensors.items()}, str(OUT / "p2p-sdxl.safetensors"))
    (OUT / "p2p-sdxl.json").write_text(json.dumps(meta, indent=2))


def main() -> None:
    if sys.argv[1:] == ["samplers"]:
        make_sampler_cases()
        return
    if sys.argv[1:] == ["sdxl"]:
        make_sdxl_cases()
        return
    directory = OUT / "p2p-sd"
    if directory.exists():
        shutil.rmtree(directory)
    vocab_size = write_tokenizer(directory / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(directory / "tokenizer")
    text_encoder = tiny_text_encoder(vocab_size, tokenizer)
    # Cross-attention at every level: 16x16, 8x8 and 4x4 latents (LocalBlend reads 4x4).
    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 32, 64),
                                down_block_types=("CrossAttnDownBlock2D",) * 3, up_block_types=("CrossAttnUpBlock2D",) * 3,
                                cross_attention_dim=32, attention_head_dim=2, norm_num_groups=16).eval()
    vae = tiny_vae(sample_size=128)
    for i, model in enumerate((text_encoder, unet, vae)):
        randomize(model, 200 + i)
    with torch.no_grad():
        # Sharper attention than random weights give, so the edits and masks are distinct.
        for name, p in unet.named_parameters():
            if name.endswith("to_q.weight") or name.endswith("to_k.weight"):
                p.mul_(1.0)
                p.copy_(p.half().float())
        unet.conv_out.weight.mul_(0.3)
        unet.conv_out.weight.copy_(unet.conv_out.weight.half().float())
    scheduler = DDIMScheduler(num_train_timesteps=1000, **SCHEDULER_CASES["sd15"])
    for name, component in (("text_encoder", text_encoder), ("unet", unet), ("vae", vae)):
        component.half().save_pretrained(directory / name, safe_serialization=True)
        component.float()
    scheduler.save_pretrained(directory / "scheduler")
    (directory / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
        "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]}, indent=2))

    steps, seed, guidance = 20, 8888, 7.5
    tensors, meta = {}, {}
    for name, case in CASES.items():
        options = {k: v for k, v in case.items() if k not in ("prompts", "mode")}
        controller = Controller(case["prompts"], tokenizer, steps, case["mode"], **options)
        latents = edit(unet, sd_encoder(text_encoder, tokenizer), DDIMScheduler.from_config(scheduler.config), case["prompts"], seed, steps,
                       guidance, 16, controller)
        tensors[f"{name}.latents"] = latents
        for index, (place, side, heads, sums) in controller.sums.items():
            tensors[f"{name}.maps.{index}"] = sums.mean(dim=1) / steps  # [B, P, N], averaged over heads and steps
        if controller.masks:
            tensors[f"{name}.mask"] = controller.masks[-1]
        baseline = Controller(case["prompts"], tokenizer, steps, "none")
        tensors[f"{name}.baseline"] = edit(unet, sd_encoder(text_encoder, tokenizer), DDIMScheduler.from_config(scheduler.config),
                                           case["prompts"], seed, steps, guidance, 16, baseline)
        meta[name] = {"prompts": case["prompts"], "mode": case["mode"], "steps": steps, "seed": seed, "guidance": guidance,
                      **{k: v for k, v in options.items()}}
        change = (latents[1:] - tensors[f"{name}.baseline"][1:]).abs().max().item()
        coverage = [float(m.mean()) for m in controller.masks[-1]] if controller.masks else None
        print(f"{name}: latent scale {latents.abs().max():.3f}, edited vs baseline {change:.3f}, layers stored {len(controller.sums)}, mask coverage {coverage}")
    save_file({k: v.contiguous().float() for k, v in tensors.items()}, str(OUT / "p2p-golden.safetensors"))
    (OUT / "p2p-golden.json").write_text(json.dumps(meta, indent=2))
    make_sampler_cases()


if __name__ == "__main__":
    main()
