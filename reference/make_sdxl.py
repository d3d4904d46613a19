"""Writes a Stable Diffusion XL-architecture pipeline with random weights, in the diffusers
layout StableDiffusionXLPipeline saves, for benchmarks and memory measurements (not committed:
7 GB in float16).

    $(scripts/python-env) reference/make_sdxl.py .cache/sdxl-random

Every architecture value is SDXL base 1.0's (stabilityai/stable-diffusion-xl-base-1.0 configs:
a 2.6B-parameter UNet with text_time added embeddings, CLIP ViT-L and OpenCLIP ViT-bigG text
encoders, the second with its projection, SDXL's VAE scaling factor and Euler scheduler); the
weights are torch's default initialisation with seed 0, stored in float16. The tokenizers are
the real CLIP vocabulary (rebuilt as in make_fixtures.py), the second padding with "!".
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import write_sd_tokenizer  # noqa: E402


def sdxl_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(5, 10, 20), transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048,
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816, norm_num_groups=32, norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/sdxl-random")
    unet_only = "--unet-only" in sys.argv
    torch.manual_seed(0)
    unet = sdxl_unet()
    print(f"unet {sum(p.numel() for p in unet.parameters()) / 1e6:.0f}M parameters", flush=True)
    if unet_only:
        unet.half().save_pretrained(out / "unet", safe_serialization=True)
        return
    write_sd_tokenizer(out / "tokenizer")
    write_sd_tokenizer(out / "tokenizer_2", pad_token="!")
    tokenizer = CLIPTokenizer.from_pretrained(out / "tokenizer")
    tokenizer_2 = CLIPTokenizer.from_pretrained(out / "tokenizer_2")
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768, bos_token_id=49406, eos_token_id=49407,
        pad_token_id=1))
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
        max_position_embeddings=77, hidden_act="gelu", projection_dim=1280, bos_token_id=49406, eos_token_id=49407,
        pad_token_id=1))
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                        latent_channels=4, norm_num_groups=32, sample_size=1024, scaling_factor=0.13025, force_upcast=True)
    scheduler = EulerDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading", interpolation_type="linear",
                                       use_karras_sigmas=False, prediction_type="epsilon")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
                                     tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler, force_zeros_for_empty_prompt=True,
                                     add_watermarker=False)
    pipe.to(torch.float16)
    pipe.save_pretrained(out, safe_serialization=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
