"""The OpenVINO side of `ptp bench unet --openvino` and `ptp bench vae --openvino`: the same
diffusers module converted with `openvino.convert_model`, run by OpenVINO's CPU plugin on the
inputs Swift wrote, timed, with the output (float32) and this process's peak memory returned.

Two steps, each in a process of its own, so that a run's peak memory is OpenVINO's alone:

    python reference/bench_openvino.py convert --component unet --model DIR --inputs in.safetensors --ir model.xml
    python reference/bench_openvino.py run --ir model.xml --inputs in.safetensors --output out.safetensors \
        [--precision bf16] [--threads 2] [--repeats 2] [--profile counters.json]

`convert` traces the module in float32 and saves the IR with float32 weights (no float16
compression, which `save_model` would otherwise apply). `run` compiles it with
`INFERENCE_PRECISION_HINT` (f32 or bf16) and `INFERENCE_NUM_THREADS`, latency mode.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
from safetensors.numpy import load_file, save_file


class UNetForward:
    """The UNet as a module of plain tensor arguments (convert_model takes no dicts of outputs)."""

    @staticmethod
    def module(directory: str):
        import torch
        from diffusers import UNet2DConditionModel

        unet = UNet2DConditionModel.from_pretrained(directory, torch_dtype=torch.float32).eval()

        class Wrapped(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.unet = unet

            def forward(self, sample, timesteps, context, text_embeds=None, time_ids=None):
                added = {"text_embeds": text_embeds, "time_ids": time_ids} if text_embeds is not None else None
                return self.unet(sample, timesteps, context, added_cond_kwargs=added, return_dict=False)[0]

        return Wrapped().eval()

    names = ["sample", "timesteps", "context", "text_embeds", "time_ids"]


class DecoderForward:
    """The VAE's decoder: latents (already divided by the scaling factor) to pixels."""

    @staticmethod
    def module(directory: str):
        import torch
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(directory, torch_dtype=torch.float32).eval()

        class Wrapped(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.vae = vae

            def forward(self, latents):
                return self.vae.decode(latents, return_dict=False)[0]

        return Wrapped().eval()

    names = ["latents"]


COMPONENTS = {"unet": UNetForward, "vae": DecoderForward}


def convert(args: argparse.Namespace) -> None:
    import openvino as ov
    import torch

    component = COMPONENTS[args.component]
    start = time.time()
    module = component.module(args.model)
    arrays = load_file(args.inputs)
    example = tuple(torch.from_numpy(arrays[name]) for name in component.names if name in arrays)
    with torch.no_grad():
        model = ov.convert_model(module, example_input=example)
    ov.save_model(model, args.ir, compress_to_fp16=False)
    print(json.dumps({"convert_seconds": time.time() - start, "openvino": ov.__version__}))


def run(args: argparse.Namespace) -> None:
    import openvino as ov

    core = ov.Core()
    start = time.time()
    hint = {"fp32": "f32", "bf16": "bf16"}[args.precision]
    config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"}
    if args.profile:
        config["PERF_COUNT"] = True
    compiled = core.compile_model(core.read_model(args.ir), "CPU", config)
    load_seconds = time.time() - start
    arrays = load_file(args.inputs)
    feed = {}
    for port in compiled.inputs:
        name = port.get_any_name()
        if name not in arrays:
            raise SystemExit(f"the converted model asks for input {name!r}, which {args.inputs} does not hold")
        feed[name] = arrays[name]
    request = compiled.create_infer_request()
    times = []
    for _ in range(args.repeats + 1):  # the first run warms up
        start = time.time()
        request.infer(feed)
        times.append(time.time() - start)
    output = np.asarray(request.get_output_tensor(0).data, dtype=np.float32).copy()
    if args.profile:
        write_profile(request.get_profiling_info(), args.profile)
    save_file({"output": output}, args.output)
    actual = compiled.get_property("INFERENCE_PRECISION_HINT")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": min(times[1:]) if len(times) > 1 else times[0], "load_seconds": load_seconds,
                      "peak_mib": peak, "openvino": ov.__version__, "threads": args.threads,
                      "precision": actual.to_string() if hasattr(actual, "to_string") else str(actual)}))


def write_profile(nodes, path: str) -> None:
    """OpenVINO's performance counters of the last run, summed by layer type and kernel, as
    JSON: [{"type", "kernel", "count", "ms"}...], largest first."""
    totals: dict[tuple[str, str], list[float]] = {}
    for node in nodes:
        key = (node.node_type, node.exec_type)
        entry = totals.setdefault(key, [0, 0.0])
        entry[0] += 1
        entry[1] += node.real_time.total_seconds() * 1000
    rows = [{"type": t, "kernel": k, "count": c, "ms": ms} for (t, k), (c, ms) in totals.items()]
    rows.sort(key=lambda row: -row["ms"])
    with open(path, "w") as f:
        json.dump(rows, f, indent=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    steps = parser.add_subparsers(dest="step", required=True)
    c = steps.add_parser("convert")
    c.add_argument("--component", choices=sorted(COMPONENTS), required=True)
    c.add_argument("--model", required=True, help="the component's diffusers folder (unet/ or vae/)")
    c.add_argument("--inputs", required=True)
    c.add_argument("--ir", required=True)
    r = steps.add_parser("run")
    r.add_argument("--ir", required=True)
    r.add_argument("--inputs", required=True)
    r.add_argument("--output", required=True)
    r.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--repeats", type=int, default=2)
    r.add_argument("--profile", help="write OpenVINO's per-layer counters of the last run here, summed by type and kernel (JSON)")
    args = parser.parse_args()
    convert(args) if args.step == "convert" else run(args)


if __name__ == "__main__":
    main()
