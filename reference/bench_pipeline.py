"""The PyTorch side of `ptp bench pipeline`: diffusers' StableDiffusionPipeline text to image, as a
user runs it (weights in float32 or torch.bfloat16), writing the PNG; the caller times the whole
process, so loading cancels out between a short and a long run.

    python reference/bench_pipeline.py --model DIR --prompt TEXT --seed 1 --steps 5 --dtype bfloat16 --output x.png
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import torch
from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler, StableDiffusionPipeline


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--scheduler", choices=["model", "dpm++-karras", "euler"], default="model")
    p.add_argument("--output", required=True)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    pipe = StableDiffusionPipeline.from_pretrained(args.model, torch_dtype=getattr(torch, args.dtype), safety_checker=None,
                                                   requires_safety_checker=False)
    if args.scheduler == "dpm++-karras":
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, use_karras_sigmas=True)
    elif args.scheduler == "euler":
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    loaded = time.time() - start
    with torch.no_grad():
        image = pipe(args.prompt, num_inference_steps=args.steps, guidance_scale=args.guidance, height=args.height, width=args.width,
                     generator=torch.Generator().manual_seed(args.seed)).images[0]
    image.save(args.output)
    print(json.dumps({"load_seconds": loaded, "run_seconds": time.time() - start - loaded,
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
