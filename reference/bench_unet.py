"""The PyTorch side of `ptp bench unet`: one UNet forward on the inputs Swift wrote, timed, with
the output and this process's peak memory returned for comparison.

    python reference/bench_unet.py --unet DIR --inputs in.safetensors --output out.safetensors
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file, save_file


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--unet", required=True)
    p.add_argument("--inputs", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    unet = UNet2DConditionModel.from_pretrained(args.unet, torch_dtype=torch.float32).eval()
    load_seconds = time.time() - start
    inputs = load_file(args.inputs)
    timesteps = inputs["timesteps"]
    times = []
    with torch.no_grad():
        for _ in range(args.repeats + 1):  # the first run warms up
            start = time.time()
            output = unet(inputs["sample"], timesteps, inputs["context"]).sample
            times.append(time.time() - start)
    save_file({"output": output.contiguous()}, args.output)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": min(times[1:]) if len(times) > 1 else times[0], "load_seconds": load_seconds,
                      "peak_mib": peak, "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
