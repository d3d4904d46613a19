"""The PyTorch side of `ptp bench unet` and `ptp bench vae`: one forward of the diffusers module
on the inputs Swift wrote, timed, with the output (as float32) and this process's peak memory
returned for comparison. With `--dtype bfloat16` the weights and inputs are torch.bfloat16
(PyTorch's own bf16 path).

    python reference/bench_pytorch.py --component unet --model DIR --inputs in.safetensors --output out.safetensors [--dtype bfloat16]

The UNet takes `sample`, `timesteps`, `context` (and SDXL's `text_embeds`, `time_ids`); the VAE's
decoder takes `latents`, already divided by the scaling factor.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import load_file, save_file


def unet_forward(directory: str, dtype: torch.dtype):
    unet = UNet2DConditionModel.from_pretrained(directory, torch_dtype=dtype).eval()

    def forward(inputs: dict) -> torch.Tensor:
        # SDXL: the pooled text embedding and the six time ids (in the run's dtype, as diffusers' pipeline makes them).
        added = {"text_embeds": inputs["text_embeds"], "time_ids": inputs["time_ids"]} if "text_embeds" in inputs else None
        return unet(inputs["sample"], inputs["timesteps"], inputs["context"], added_cond_kwargs=added).sample

    return forward


def decoder_forward(directory: str, dtype: torch.dtype):
    vae = AutoencoderKL.from_pretrained(directory, torch_dtype=dtype).eval()
    return lambda inputs: vae.decode(inputs["latents"]).sample


COMPONENTS = {"unet": unet_forward, "vae": decoder_forward}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--component", choices=sorted(COMPONENTS), default="unet")
    p.add_argument("--model", required=True, help="the component's diffusers folder (unet/ or vae/)")
    p.add_argument("--inputs", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    start = time.time()
    forward = COMPONENTS[args.component](args.model, dtype)
    load_seconds = time.time() - start
    # Timesteps stay float32, as the pipelines pass them.
    inputs = {name: (value.to(dtype) if name != "timesteps" else value) for name, value in load_file(args.inputs).items()}
    times = []
    with torch.no_grad():
        for _ in range(args.repeats + 1):  # the first run warms up
            start = time.time()
            output = forward(inputs)
            times.append(time.time() - start)
    save_file({"output": output.float().contiguous()}, args.output)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": min(times[1:]) if len(times) > 1 else times[0], "load_seconds": load_seconds,
                      "peak_mib": peak, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "dtype": args.dtype}))


if __name__ == "__main__":
    main()
