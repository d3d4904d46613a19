"""Architectures of the embedded model, as diffusers / transformers classes (so the exported
folders load with the same code as Stable Diffusion)."""
from __future__ import annotations

from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

BASE_SIZE = 32
SR_SIZE = 128
TEXT_WIDTH = 128

# Shared by training (DDPM) and sampling (DDIM): a cosine schedule suits small pixel-space
# images (no signal left at t = T) and v-prediction keeps the loss well scaled at both ends.
SCHEDULE = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                clip_sample=False)


def text_encoder(vocab_size: int, bos: int, eos: int) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=TEXT_WIDTH, intermediate_size=4 * TEXT_WIDTH, num_hidden_layers=3,
        num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=TEXT_WIDTH,
        bos_token_id=bos, eos_token_id=eos, pad_token_id=eos)
    return CLIPTextModel(config)


def base_unet() -> UNet2DConditionModel:
    """Text-to-image at 32x32: cross-attention at 16x16 and 8x8 (and the middle)."""
    return UNet2DConditionModel(
        sample_size=BASE_SIZE, in_channels=3, out_channels=3, layers_per_block=1,
        block_out_channels=(32, 64, 128),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_WIDTH, attention_head_dim=4, norm_num_groups=16)


def sr_unet() -> UNet2DConditionModel:
    """32 -> 128 super-resolution: the noisy 128x128 image concatenated with the bilinearly
    upsampled low-resolution image, the low-resolution noise level as a class embedding, and
    cross-attention to the text at 16x16 only."""
    return UNet2DConditionModel(
        sample_size=SR_SIZE, in_channels=6, out_channels=3, layers_per_block=1,
        block_out_channels=(32, 64, 64, 128),
        down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_WIDTH, attention_head_dim=4, norm_num_groups=16, num_class_embeds=1000)


def training_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**SCHEDULE)


def sampling_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SCHEDULE, set_alpha_to_one=True, steps_offset=0, timestep_spacing="trailing")
