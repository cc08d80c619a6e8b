"""CPU inference, side by side in one process: convzoo.optimize (its torch, eager and onnxruntime forms) vs torchvision
eager (channels_last) vs ONNX Runtime on convzoo's exported graph, plus the machine's fp32 GEMM rate measured in
the same run.

    OMP_NUM_THREADS=1 python benchmarks/bench_inference.py --threads 1 --repeats 3
    python benchmarks/bench_inference.py --models resnet50 --batches 8 --profile

Times are CPU seconds of this process (time.process_time: with one thread, the compute time, not distorted by
other processes on a shared machine), the best of ``--repeats`` after one warm-up, the variants alternating in
order within each repeat. Every variant runs the same weights (torchvision's random initialization, loaded into
convzoo with the torchvision key mapping), so the outputs are checked to agree (max abs difference printed).
NASNet-A Mobile has no torchvision model: its baseline is convzoo's own eager model in channels_last.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
import torchvision

import convzoo
from convzoo.export import DetectorGraph, export, optimize
from convzoo.export.runtime import session
from convzoo.summary import summary

# convzoo name -> (torchvision builder or None, input size)
CLASSIFIERS = {
    "resnet50": ("resnet50", 224),
    "resnext50_32x4d": ("resnext50_32x4d", 224),
    "inception_v3": ("inception_v3", 299),
    "nasnet_a_mobile": (None, 224),
    "vgg16": ("vgg16", 224),
}


def gemm_rate(n: int = 2048, repeats: int = 5) -> float:
    """The best fp32 GFLOP/s of an n x n matrix product (2 n^3 flops)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_cpu_time(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _cpu_time(function) -> float:
    start = time.process_time()
    function()
    return time.process_time() - start


def best_times(variants: dict, repeats: int) -> dict[str, float]:
    """Best CPU seconds of each variant (name -> callable), one warm-up each, order alternating per repeat."""
    for function in variants.values():
        function()
    times = {name: float("inf") for name in variants}
    names = list(variants)
    for repeat in range(repeats):
        for name in (names if repeat % 2 == 0 else names[::-1]):
            times[name] = min(times[name], _cpu_time(variants[name]))
    return times


def classifier_variants(name: str, batch: int, work: Path, use_onnx: bool):
    tv_name, side = CLASSIFIERS[name]
    torch.manual_seed(0)
    kwargs = {"aux_logits": False, "init_weights": False} if tv_name == "inception_v3" else {}
    reference = getattr(torchvision.models, tv_name)(**kwargs).eval() if tv_name else None
    model = convzoo.create_model(name).eval()
    if reference is not None:
        convzoo.load_weights(model, reference.state_dict(), source="torchvision", strict=False)
    else:
        reference = model
    images = torch.randn(batch, 3, side, side)
    baseline = reference.to(memory_format=torch.channels_last)
    images_cl = images.contiguous(memory_format=torch.channels_last)
    fast = optimize(model, images)
    folded = optimize(model, images, jit=False)  # the "torch-eager" candidate of optimize(backend="auto")
    tuned = optimize(model, images, jit=False, tune_kernels=True)  # "torch-tuned": kernels measured per layer here
    variants = {"torchvision eager (channels_last)" if tv_name else "convzoo eager (channels_last)":
                lambda: baseline(images_cl), "convzoo optimized": lambda: fast(images),
                "convzoo optimized (eager, folded)": lambda: folded(images),
                "convzoo optimized (tuned kernels)": lambda: tuned(images)}
    outputs = {"baseline": baseline(images_cl), "optimized": fast(images), "folded": folded(images),
               "tuned": tuned(images)}
    print(f"{name}, batch {batch}: kernel plans {_plans(tuned.kernel_plans)}", flush=True)
    if use_onnx:
        path = work / f"{name}.onnx"
        if not path.is_file():
            export(model, torch.randn(2, 3, side, side), path)
        ort = session(path, threads=torch.get_num_threads())
        feed = {"images": images.numpy()}
        variants["ONNX Runtime (same graph)"] = lambda: ort.run(None, feed)
        outputs["onnx"] = torch.from_numpy(ort.run(None, feed)[0])
        fast_ort = optimize(model, images, backend="onnxruntime")
        variants["convzoo optimized (onnxruntime)"] = lambda: fast_ort(images)
        outputs["optimized onnxruntime"] = fast_ort(images)
    macs = summary(model, (3, side, side)).total_macs
    return variants, outputs, macs, fast, images


def detector_variants(work: Path, use_onnx: bool, side: int = 512):
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    reference = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=side, max_size=side).eval()
    model = convzoo.create_model("mask_rcnn_r50_fpn", min_size=side, max_size=side).eval()
    convzoo.load_weights(model, reference.state_dict(), source="torchvision")
    image = torch.rand(3, side, side)
    baseline = reference.to(memory_format=torch.channels_last)
    fast = optimize(model, [image])
    tuned = optimize(model, [image], tune_kernels=True)
    print(f"mask_rcnn_r50_fpn: kernel plans {_plans(tuned.kernel_plans)}", flush=True)
    variants = {"torchvision eager (channels_last)": lambda: baseline([image]),
                "convzoo optimized": lambda: fast([image]), "convzoo optimized (tuned kernels)": lambda: tuned([image])}
    counts = {"baseline": len(baseline([image])[0]["boxes"]), "optimized": len(fast([image])[0]["boxes"]),
              "tuned": len(tuned([image])[0]["boxes"])}
    if use_onnx:
        path = work / "mask_rcnn_r50_fpn.onnx"
        if not path.is_file():
            export(model, image[None], path, dynamic_batch=False)
        ort = session(path, threads=torch.get_num_threads())
        feed = {"images": image[None].numpy()}
        variants["ONNX Runtime (same graph)"] = lambda: ort.run(None, feed)
        counts["onnx"] = len(ort.run(None, feed)[0])
    return variants, counts, fast, image, DetectorGraph


def _plans(plans: dict) -> str:
    """How many convolution sizes took each kernel: 'torch x1, oneDNN x5, F2 x3, F4 x9'."""
    tally: dict = {}
    for plan in plans.values():
        for m in plan.values():
            tally[m] = tally.get(m, 0) + 1
    names = {0: "torch", 1: "oneDNN 1x1", 2: "Winograd F2", 4: "Winograd F4"}
    return ", ".join(f"{names[m]} x{n}" for m, n in sorted(tally.items())) or "none"


def profile(function, label: str, rows: int = 8) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        function()
    print(f"\nprofile: {label}", flush=True)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[*CLASSIFIERS, "mask_rcnn_r50_fpn"],
                        help="default: the five classifiers and mask_rcnn_r50_fpn")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8], help="default: 1 8")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant, best kept (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads (default: 1)")
    parser.add_argument("--no-onnx", action="store_true", help="skip ONNX Runtime (default: include it)")
    parser.add_argument("--work", default=None, help="folder for the ONNX files (default: a temporary folder)")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler tables (default: off)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_inference_"))
    work.mkdir(parents=True, exist_ok=True)
    rate = gemm_rate()
    print(f"torch {torch.__version__}, {args.threads} thread(s); fp32 GEMM n=2048: {rate:.1f} GFLOP/s "
          f"(CPU time, best of 5)", flush=True)
    with torch.no_grad():
        for name in args.models:
            if name == "mask_rcnn_r50_fpn":
                variants, counts, fast, image, _ = detector_variants(work, not args.no_onnx)
                times = best_times(variants, args.repeats)
                base = next(iter(times.values()))
                print(f"\n{name}, one 512x512 image; detections {counts}", flush=True)
                for label, seconds in times.items():
                    print(f"  {label:36s} {seconds * 1e3:9.1f} ms   {base / seconds:5.2f}x", flush=True)
                if args.profile:
                    profile(partial(fast, [image]), f"{name} convzoo optimized")
                continue
            for batch in args.batches:
                variants, outputs, macs, fast, images = classifier_variants(name, batch, work, not args.no_onnx)
                times = best_times(variants, args.repeats)
                base = next(iter(times.values()))
                agree = {key: f"{(value - outputs['baseline']).abs().max().item():.1e}"
                         for key, value in outputs.items() if key != "baseline"}
                print(f"\n{name}, batch {batch} ({2 * macs * batch / 1e9:.1f} GFLOP); max |diff| vs baseline "
                      f"{agree}", flush=True)
                for label, seconds in times.items():
                    gflops = 2 * macs * batch / seconds / 1e9
                    print(f"  {label:36s} {seconds * 1e3:9.1f} ms {batch / seconds:7.2f} img/s   "
                          f"{base / seconds:5.2f}x   {gflops:6.1f} GFLOP/s = {gflops / rate:4.0%} of GEMM", flush=True)
                convzoo_times = {k: v for k, v in times.items() if k.startswith("convzoo optimized")}
                chosen = min(convzoo_times, key=convzoo_times.get)
                print(f"  backend=\"auto\" keeps the fastest convzoo variant, {chosen}: "
                      f"{base / convzoo_times[chosen]:.2f}x", flush=True)
                if args.profile and batch == max(args.batches):
                    profile(partial(fast, images), f"{name} batch {batch} convzoo optimized")


if __name__ == "__main__":
    main()
