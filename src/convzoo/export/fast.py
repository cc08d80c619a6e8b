"""``convzoo.optimize``: a model made faster for CPU inference, same outputs within fp32 rounding.

    fast = convzoo.optimize(model)                                  # BatchNorm folded, channels_last
    fast = convzoo.optimize(model, torch.rand(8, 3, 224, 224))      # + traced, frozen, oneDNN-fused (TorchScript)
    fast = convzoo.optimize(model, torch.rand(1, 3, 224, 224), backend="onnxruntime")  # a classifier in ORT

Steps: (1) every BatchNorm whose only input is the output of a convolution used by nothing else is folded into
that convolution (``W' = W gamma / sqrt(var + eps)``, ``b' = (b - mean) gamma / sqrt(var + eps) + beta``; the
BatchNorm becomes ``nn.Identity``). Which convolution feeds which BatchNorm is read from one forward pass on the
example (or a default input): the tensors each module produces and consumes and every other torch call that
reads them, so a convolution whose output also goes elsewhere (a shortcut) is left alone. (2) 4D weights and
inputs channels_last (oneDNN's preferred layout on CPUs). (3) With ``jit=True`` (the default when an example is
given) the classifier is traced, ``torch.jit.freeze``-d and ``torch.jit.optimize_for_inference``-d: convolution +
add + ReLU fusions and prepacked oneDNN weights; any batch size, and the example's image size for networks that
pad as TF "same" (BN-Inception, NASNet: the trace keeps that size's padding). The model is copied; the original
is untouched.

``backend="onnxruntime"`` (classifiers; needs ``convzoo[export]``): the model is exported to ONNX with a dynamic
batch at the example's image size (``convzoo.export``, through a temporary file) and run by an ONNX Runtime CPU
session with all graph optimizations (which fold BatchNorm and fuse convolutions themselves) and torch's number
of threads; the returned module takes and returns torch tensors (docs/deployment.md has the measured speeds).

``backend="auto"`` (a classifier with an example): builds each candidate, the frozen graph (``"torch"``), the
folded channels_last model without it (``"torch-eager"``: Inception-v3's pooling branches run slower frozen) and,
when onnxruntime is installed, ``"onnxruntime"``; times each on the example (two warm-up calls, then the best of
``trials`` wall-clock calls) and returns the fastest, with ``backend`` (its name) and ``timings`` (seconds a call,
by name) set on it. Which one wins depends on the model, the batch and the machine: it is measured, not guessed.
"""

from __future__ import annotations

import copy
import importlib.util
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from convzoo.layers.norm import FrozenBatchNorm

NORMS = (nn.modules.batchnorm._BatchNorm, FrozenBatchNorm)


class _Uses(TorchFunctionMode):
    """Counts how often each watched tensor (by id; the watched ones are kept alive, so ids are not reused) is read
    by a torch function called outside a BatchNorm's forward."""

    def __init__(self, watched: dict) -> None:
        super().__init__()
        self.uses: Counter = Counter()
        self.watched = watched
        self.inside_norm = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self.inside_norm:
            for value in tree_flatten((args, kwargs))[0]:
                if isinstance(value, torch.Tensor) and id(value) in self.watched:
                    self.uses[id(value)] += 1
        return func(*args, **kwargs)


def conv_norm_pairs(model: nn.Module, run) -> list[tuple[nn.Module, nn.Module]]:
    """The (convolution, BatchNorm) pairs of ``model`` where the norm reads only that convolution's output and
    nothing else reads it, found by calling ``run()`` (one forward pass) once."""
    produced, keep, consumed, calls = {}, [], {}, Counter()
    mode = _Uses(produced)
    handles = []

    def conv_hook(module, inputs, output):
        calls[module] += 1
        produced[id(output)] = module
        keep.append(output)  # alive until the end, so that ids are not reused

    def norm_pre(module, inputs):
        calls[module] += 1
        consumed.setdefault(id(inputs[0]), []).append(module)
        mode.inside_norm += 1

    def norm_post(module, inputs, output):
        mode.inside_norm -= 1

    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, NORMS):
            handles += [module.register_forward_pre_hook(norm_pre), module.register_forward_hook(norm_post)]
    try:
        with torch.no_grad(), mode:
            run()
    finally:
        for handle in handles:
            handle.remove()
    pairs = []
    for tensor_id, norms in consumed.items():
        conv = produced.get(tensor_id)
        if conv is not None and len(norms) == 1 and mode.uses[tensor_id] == 0 and calls[conv] == 1 \
                and calls[norms[0]] == 1:
            pairs.append((conv, norms[0]))
    return pairs


def _norm_affine(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of an eval-mode BatchNorm: ``y = x * scale + shift`` per channel."""
    weight = norm.weight if norm.weight is not None else torch.ones_like(norm.running_mean)
    bias = norm.bias if norm.bias is not None else torch.zeros_like(norm.running_mean)
    scale = weight * (norm.running_var + norm.eps).rsqrt()
    return scale, bias - norm.running_mean * scale


@torch.no_grad()
def fold_conv_norm(conv: nn.Module, norm: nn.Module) -> None:
    """Fold ``norm`` (eval statistics) into ``conv`` in place."""
    scale, shift = _norm_affine(norm)
    conv.weight.mul_(scale.reshape(-1, *([1] * (conv.weight.dim() - 1))).to(conv.weight))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
    new_bias = (bias * scale + shift).to(conv.weight)
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)


def fold_batch_norms(model: nn.Module, run) -> int:
    """Fold every foldable BatchNorm of ``model`` (eval mode, in place; see module doc); returns how many."""
    pairs = conv_norm_pairs(model, run)
    folded = {id(norm) for _, norm in pairs}
    for conv, norm in pairs:
        fold_conv_norm(conv, norm)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if id(child) in folded:
                setattr(parent, name, nn.Identity())
    return len(pairs)


class ChannelsLast(nn.Module):
    """Feeds 4D inputs to ``model`` in the channels_last layout."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x)


BACKENDS = ("torch", "onnxruntime", "auto")


class OnnxRuntimeClassifier(nn.Module):
    """A classifier run by an ``onnxruntime.InferenceSession`` ``ort_session``: ``forward(x Tensor[N, C, H, W]
    float32) -> logits Tensor[N, K]`` on the CPU (``x`` is moved there)."""

    def __init__(self, ort_session) -> None:
        super().__init__()
        self.session = ort_session
        self.input_name = ort_session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feed = {self.input_name: x.detach().to("cpu", torch.float32).contiguous().numpy()}
        return torch.from_numpy(self.session.run(None, feed)[0])


def _onnxruntime(model: nn.Module, example: torch.Tensor) -> OnnxRuntimeClassifier:
    from convzoo.export.api import export
    from convzoo.export.deps import require
    from convzoo.export.runtime import session

    require("onnx", "onnxruntime")
    with tempfile.TemporaryDirectory(prefix="convzoo_optimize_") as work:  # the session holds the model itself
        path = Path(work) / "model.onnx"
        export(model.cpu(), example.cpu(), path, format="onnx", dynamic_batch=True, dynamic_size=False)
        return OnnxRuntimeClassifier(session(path, threads=torch.get_num_threads()))


def _seconds(module: nn.Module, example) -> float:
    """Wall seconds of one call on ``example`` (a tensor or a detector's list of images; on CUDA the queued
    kernels included)."""
    sync = (lambda: None) if _on_cpu(example) else torch.cuda.synchronize
    sync()
    start = time.perf_counter()
    module(example)
    sync()
    return time.perf_counter() - start


def fastest(candidates: dict, example: torch.Tensor, trials: int = 3) -> nn.Module:
    """The fastest of ``candidates`` (name -> a function building the module) on ``example``: two warm-up calls
    (TorchScript optimizes on its first runs), then the best of ``trials`` timed calls each. The winner carries
    ``backend`` (its name) and ``timings`` (name -> seconds a call)."""
    built, timings = {}, {}
    with torch.no_grad():
        for name, build in candidates.items():
            module = build()
            for _ in range(2):
                module(example)
            timings[name] = min(_seconds(module, example) for _ in range(trials))
            built[name] = module
    name = min(timings, key=timings.get)
    winner = built[name]
    winner.backend, winner.timings = name, timings
    return winner


def _on_cpu(example) -> bool:
    return all(x.device.type == "cpu" for x in ([example] if isinstance(example, torch.Tensor) else example))


def optimize(model: nn.Module, example_inputs=None, *, jit: bool | None = None, channels_last: bool = True,
             backend: str = "torch", trials: int = 3, tune_kernels: bool = False) -> nn.Module:
    """A copy of ``model`` for inference (see module doc). ``example_inputs``: a Tensor (a classifier's batch) or a
    list of images (a detector); None: the model's default input. ``jit`` (classifiers only): trace + freeze +
    optimize_for_inference, default True when ``example_inputs`` is given. ``backend``: "torch", (classifiers)
    "onnxruntime", or "auto": the fastest of those on the example, timed ``trials`` times each (no example:
    "torch"). ``tune_kernels`` (eager, CPU): each 3x3 stride-1 and 1x1 convolution runs the kernel that measures
    fastest at the example's sizes (Winograd's, oneDNN's or PyTorch's: :mod:`convzoo.export.kernels`)."""
    from convzoo.export.api import is_detector

    if backend not in BACKENDS:
        raise ValueError(f"optimize: backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"optimize: trials must be a positive integer, got {trials!r}")
    model = copy.deepcopy(model).eval()
    detector = is_detector(model)
    if backend == "auto":
        if not isinstance(example_inputs, (torch.Tensor, list)):  # nothing to choose from
            chosen = optimize(model, example_inputs, jit=jit, channels_last=channels_last)
            chosen.backend, chosen.timings = "torch", {}
            return chosen
        eager = {"torch-eager": lambda: optimize(model, example_inputs, jit=False, channels_last=channels_last)}
        if _on_cpu(example_inputs):
            eager["torch-tuned"] = lambda: optimize(model, example_inputs, jit=False, channels_last=channels_last,
                                                    tune_kernels=True, trials=trials)
        if detector:
            return fastest(eager, example_inputs, trials)
        candidates = {"torch": lambda: optimize(model, example_inputs, jit=True, channels_last=channels_last),
                      **eager}
        if _on_cpu(example_inputs) and all(
                importlib.util.find_spec(name) is not None for name in ("onnx", "onnxscript", "onnxruntime")):
            candidates["onnxruntime"] = lambda: optimize(model, example_inputs, backend="onnxruntime")
        return fastest(candidates, example_inputs, trials)
    if backend == "onnxruntime":
        if detector:
            raise ValueError("optimize: backend 'onnxruntime' runs classifiers; run a detector's ONNX file with "
                             "convzoo export and convzoo.export.DetectorGraph")
        if example_inputs is None:
            example_inputs = torch.rand(1, *getattr(model, "default_input_size", (3, 224, 224)))
        return _onnxruntime(model, example_inputs)
    if jit is None:
        jit = example_inputs is not None and not detector and not tune_kernels
    if tune_kernels and jit:
        raise ValueError("optimize: tune_kernels=True runs the eager model; pass jit=False")
    if example_inputs is None:
        device = next(model.parameters()).device
        if detector:
            side = model.transform.min_size[-1]
            example_inputs = [torch.rand(3, side, side, device=device)]
        else:
            example_inputs = torch.rand(1, *getattr(model, "default_input_size", (3, 224, 224)), device=device)
    model.folded_norms = fold_batch_norms(model, lambda: model(example_inputs))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        if not detector:
            model = ChannelsLast(model)
    if tune_kernels:
        from convzoo.export.kernels import tune_kernels as tune

        model.requires_grad_(False)  # an inference copy: the tuned kernels have no autograd
        model.kernel_plans = tune(model, lambda: model(example_inputs), trials=trials)
    if jit and not detector:
        with torch.no_grad():
            traced = torch.jit.trace(model, example_inputs, check_trace=False)
            model = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    return model
