"""Writes a Stable Diffusion 1.5-architecture model with random weights, in the diffusers layout,
for benchmarks and memory measurements (not committed: 2 GB in float16).

    $(scripts/python-env) reference/make_sd15.py .cache/sd15-random
    $(scripts/python-env) reference/make_sd15.py .cache/sd15-lcm --lcm

With --lcm, the UNet takes the guidance scale's embedding (time_cond_proj_dim 256) and the
scheduler is LCMScheduler, as LCM-distilled SD 1.5 checkpoints (LCM_Dreamshaper_v7) are saved.

Every architecture value is SD 1.5's (runwayml/stable-diffusion-v1-5 configs); the weights are
torch's default initialisation with seed 0, stored in float16. The tokenizer is the real CLIP
vocabulary (rebuilt as in make_fixtures.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, LCMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import SCHEDULER_CASES, write_sd_tokenizer  # noqa: E402


def sd15_unet(**extra) -> UNet2DConditionModel:
    return UNet2DConditionModel(**extra,
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0)


def main() -> None:
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    lcm = "--lcm" in sys.argv
    out = Path(arguments[0] if arguments else ".cache/sd15-random")
    torch.manual_seed(0)
    tokenizer_dir = out / "tokenizer"
    write_sd_tokenizer(tokenizer_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768, bos_token_id=49406, eos_token_id=49407,
        pad_token_id=49407))
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                        latent_channels=4, norm_num_groups=32, sample_size=512, scaling_factor=0.18215)
    unet = sd15_unet(time_cond_proj_dim=256) if lcm else sd15_unet()
    scheduler = DDIMScheduler(num_train_timesteps=1000, **SCHEDULER_CASES["sd15"])
    if lcm:
        scheduler = LCMScheduler.from_config(scheduler.config)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.to(torch.float16)
    pipe.save_pretrained(out, safe_serialization=True)
    print(f"wrote {out}: unet {sum(p.numel() for p in unet.parameters()) / 1e6:.0f}M parameters")


if __name__ == "__main__":
    main()
