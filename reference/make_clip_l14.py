"""Writes a CLIP ViT-L/14 with random weights as transformers' CLIPModel saves it (every
architecture value openai/clip-vit-large-patch14's, the scorer of the InstructPix2Pix recipe),
with the real CLIP tokenizer, for `ptp bench variants` (not committed: 1.7 GB in float32).

    $(scripts/python-env) reference/make_clip_l14.py .cache/clip-l14-random
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import write_sd_tokenizer  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/clip-l14-random")
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                     "max_position_embeddings": 77, "hidden_act": "quick_gelu", "bos_token_id": 49406, "eos_token_id": 49407,
                     "pad_token_id": 1, "projection_dim": 768},
        vision_config={"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
                       "image_size": 224, "patch_size": 14, "hidden_act": "quick_gelu", "projection_dim": 768},
        projection_dim=768)
    model = CLIPModel(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    write_sd_tokenizer(out)
    print(f"wrote {out}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters")


if __name__ == "__main__":
    main()
