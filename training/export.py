"""Exports trained shapes-world checkpoints as a diffusers-format cascade (float16 safetensors).

    python export.py --base runs/base --sr runs/sr --out ../models/shapes-world

--base and --sr may also name an exported model folder, whose stage is kept as it is (when only
the other stage was trained again).

The folder holds text_encoder/, tokenizer/, unet/ and scheduler/ (the base stage) and
super_resolution_unet/ and super_resolution_scheduler/, with model_index.json naming them and
carrying the recommended settings the ptp CLI uses when flags are absent.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from transformers import CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shapes_world import models  # noqa: E402
from shapes_world.tokenizer import write_tokenizer  # noqa: E402

DEFAULTS = {"steps": 50, "guidance": 5.0, "height": models.BASE_SIZE, "width": models.BASE_SIZE,
            "super_resolution_steps": 20, "super_resolution_guidance": 1.0, "super_resolution_noise_level": 20}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base", type=Path, required=True)
    p.add_argument("--sr", type=Path)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer(args.out / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(args.out / "tokenizer")
    index = {
        "_class_name": "ShapesWorldCascadePipeline", "_diffusers_version": "0.42.1",
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "scheduler": ["diffusers", "DDIMScheduler"],
        "_ptp_defaults": DEFAULTS,
    }
    if (args.base / "checkpoint.pt").exists():
        index["_ptp_training"] = export_base_run(args.base, args.out, vocab, tokenizer)
    else:
        # An exported cascade: keep its first stage (when only stage 2 was trained again).
        previous = json.loads((args.base / "model_index.json").read_text())
        for name in ("text_encoder", "unet", "scheduler"):
            if (args.base / name).resolve() != (args.out / name).resolve():
                shutil.copytree(args.base / name, args.out / name, dirs_exist_ok=True)
        index["_ptp_training"] = {k: v for k, v in previous.get("_ptp_training", {}).items() if not k.startswith("super_resolution")}
    if args.sr and (args.sr / "checkpoint.pt").exists():
        sr = torch.load(args.sr / "checkpoint.pt", map_location="cpu", weights_only=False)
        sr_unet = models.sr_unet()
        sr_unet.load_state_dict(sr["ema_unet"])
        sr_unet.half().save_pretrained(args.out / "super_resolution_unet", safe_serialization=True)
        models.sampling_scheduler().save_pretrained(args.out / "super_resolution_scheduler")
        # Steps and minutes in all, over the phases (each run started from the one before).
        phases = super_resolution_phases(args.sr)
        sr_training = {"super_resolution_steps": sum(p["steps"] for p in phases),
                       "super_resolution_minutes": round(sum(p["minutes"] for p in phases), 1)}
        if len(phases) > 1:
            sr_training["super_resolution_phases"] = phases
    elif args.sr:
        # An exported cascade: keep its second stage.
        previous = json.loads((args.sr / "model_index.json").read_text())
        for name in ("super_resolution_unet", "super_resolution_scheduler"):
            if (args.sr / name).resolve() != (args.out / name).resolve():
                shutil.copytree(args.sr / name, args.out / name, dirs_exist_ok=True)
        sr_training = {k: v for k, v in previous.get("_ptp_training", {}).items() if k.startswith("super_resolution")}
    if args.sr:
        index |= {"super_resolution_unet": ["diffusers", "UNet2DConditionModel"],
                  "super_resolution_scheduler": ["diffusers", "DDIMScheduler"],
                  "_ptp_super_resolution_factor": models.SR_SIZE // models.BASE_SIZE}
        index["_ptp_training"] |= sr_training
    (args.out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"exported to {args.out} ({size / 1e6:.1f} MB)")


def initialised_from(run: Path) -> Path | None:
    """The run or exported model a training run started from (its --init-from), if any."""
    config = run / "config.json"
    source = json.loads(config.read_text()).get("init_from", "None") if config.exists() else "None"
    return None if source == "None" else Path(source)


def super_resolution_phases(run: Path) -> list[dict]:
    """Stage 2's training phases, oldest first: the run, the runs it was initialised from, and the
    phases an exported model it started from records (paths as given in training/)."""
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    phase = {"run": str(run), "steps": state["step"], "minutes": round(state["elapsed"] / 60, 1)}
    source = initialised_from(run)
    if source is None:
        return [phase]
    if (source / "checkpoint.pt").exists():
        return super_resolution_phases(source) + [phase]
    recorded = json.loads((source / "model_index.json").read_text()).get("_ptp_training", {})
    earlier = recorded.get("super_resolution_phases") or [
        {"run": str(source), "steps": recorded.get("super_resolution_steps"), "minutes": recorded.get("super_resolution_minutes")}]
    return earlier + [phase]


def export_base_run(run: Path, out: Path, vocab: int, tokenizer) -> dict:
    """Writes the first stage of a training run (its EMA weights) to out; returns its training record."""
    base = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    text_encoder = models.text_encoder(vocab, tokenizer.bos_token_id, tokenizer.eos_token_id)
    text_encoder.load_state_dict(base["ema_text_encoder"])
    unet = models.base_unet()
    unet.load_state_dict(base["ema_unet"])
    text_encoder.half().save_pretrained(out / "text_encoder", safe_serialization=True)
    unet.half().save_pretrained(out / "unet", safe_serialization=True)
    models.sampling_scheduler().save_pretrained(out / "scheduler")
    training = {"base_steps": base["step"], "base_minutes": round(base["elapsed"] / 60, 1)}
    source = initialised_from(run)
    if source is not None:
        training["base_initialised_from"] = str(source)
        # The first phase's record, from its run or its exported model (paths as given in training/).
        if (source / "checkpoint.pt").exists():
            first = torch.load(source / "checkpoint.pt", map_location="cpu", weights_only=False)
            training |= {"base_first_phase_steps": first["step"], "base_first_phase_minutes": round(first["elapsed"] / 60, 1)}
        elif (source / "model_index.json").exists():
            first = json.loads((source / "model_index.json").read_text()).get("_ptp_training", {})
            training |= {"base_first_phase_" + k.removeprefix("base_"): v for k, v in first.items()
                         if k in ("base_steps", "base_minutes")}
    return training


if __name__ == "__main__":
    main()
