"""The course's architecture strings (NPFL114/NPFL138 assignment ``mnist_cnn``) as a convzoo classifier.

    create_model("spec", spec="CB-16-5-2-same,M-3-2,F,H-100,D-0.5", in_chans=1, input_size=(28, 28), num_classes=10)
    create_model("spec:C-8-3-1-same,R-[C-8-3-1-same,C-8-3-1-same],F,H-50")

The grammar, one comma-separated layer after another (commas inside ``[...]`` belong to the residual block):

- ``C-filters-kernel_size-stride-padding``: convolution with bias, then ReLU; padding is ``same`` (TF semantics,
  also for strides > 1: output = ceil(input / stride), the odd pixel at the end) or ``valid``;
- ``CB-filters-kernel_size-stride-padding``: convolution without bias, BatchNorm (PyTorch's defaults), then ReLU;
- ``M-pool_size-stride``: max pooling with ``valid`` padding;
- ``R-[layer,layer,...]``: residual connection, ``input + layers(input)``, the addition after the last inner ReLU;
  the inner layers are ``C``/``CB`` only (no nesting) and must keep the shape of the input;
- ``F``: flatten, exactly once; convolutions and pooling come before it, ``H`` after it;
- ``H-hidden_layer_size``: linear layer, then ReLU;
- ``D-dropout_rate``: dropout (element-wise, also before ``F``);

followed by the final linear layer with ``num_classes`` outputs. The number of spatial axes is ``len(input_size)``,
so ``input_size=(40,)`` builds a 1D network (e.g. for MNIST-1D). A malformed string raises :class:`SpecError`,
whose message shows the string with carets under the offending part.

Parameters use PyTorch's default initialization (the course's Keras templates use Glorot-uniform kernels).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from convzoo.layers import batch_norm, conv, max_pool, output_size
from convzoo.models.base import Classifier, FeatureInfo
from convzoo.registry import register_model

DEFAULT_SPEC = "CB-16-5-2-same,M-3-2,F,H-100,D-0.5"


class SpecError(ValueError):
    """A malformed architecture string; ``position`` is the index of the offending character in ``spec``."""

    def __init__(self, spec: str, position: int, length: int, message: str) -> None:
        self.spec, self.position = spec, position
        marker = " " * position + "^" * max(length, 1)
        super().__init__(f"invalid architecture string at character {position}: {message}\n  {spec}\n  {marker}")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return int(text)


def _padding(text: str) -> str:
    if text not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid', got {text!r}")
    return text


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise ValueError(f"expected a dropout rate in [0, 1), got {text!r}") from None
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"expected a dropout rate in [0, 1), got {text!r}")
    return rate


_CONV_FIELDS = (("filters", _positive_int), ("kernel_size", _positive_int), ("stride", _positive_int),
                ("padding", _padding))
# kind -> the named fields after it, each with its parser.
_GRAMMAR: dict[str, tuple[tuple[str, Callable], ...]] = {
    "C": _CONV_FIELDS,
    "CB": _CONV_FIELDS,
    "M": (("pool_size", _positive_int), ("stride", _positive_int)),
    "F": (),
    "H": (("hidden_layer_size", _positive_int),),
    "D": (("dropout_rate", _rate),),
}


@dataclass(frozen=True)
class LayerSpec:
    """One parsed layer: ``kind`` (C, CB, M, R, F, H, D), its ``args``, where it starts in the string, its text."""

    kind: str
    args: tuple
    position: int
    text: str
    body: tuple[LayerSpec, ...] = ()

    def error(self, spec: str, message: str) -> SpecError:
        return SpecError(spec, self.position, len(self.text), f"layer {self.text!r}: {message}")


def _split(spec: str, start: int, end: int) -> list[tuple[int, int]]:
    """The (start, end) spans of the comma-separated items of ``spec[start:end]``; brackets group."""
    spans, open_brackets, item_start = [], [], start
    for i in range(start, end):
        if spec[i] == "[":
            open_brackets.append(i)
        elif spec[i] == "]":
            if not open_brackets:
                raise SpecError(spec, i, 1, "']' without a matching '['")
            open_brackets.pop()
        elif spec[i] == "," and not open_brackets:
            spans.append((item_start, i))
            item_start = i + 1
    if open_brackets:
        raise SpecError(spec, open_brackets[-1], 1, "'[' without a matching ']'")
    spans.append((item_start, end))
    return spans


def _parse_layer(spec: str, start: int, end: int, inside_residual: bool) -> LayerSpec:
    text = spec[start:end]
    if not text:
        raise SpecError(spec, start, 1, "empty layer (two commas in a row, or a comma at an end?)")
    if text.startswith("R-") or text == "R":
        if inside_residual:
            raise SpecError(spec, start, len(text), "residual blocks cannot be nested")
        if not (text.startswith("R-[") and text.endswith("]")) or len(text) == 4:
            raise SpecError(spec, start, len(text), f"a residual block is written R-[layer,layer,...], got {text!r}")
        body = tuple(_parse_layer(spec, s, e, True) for s, e in _split(spec, start + 3, end - 1))
        for layer in body:
            if layer.kind not in ("C", "CB"):
                raise layer.error(spec, "a residual block holds only convolutions (C or CB)")
        return LayerSpec("R", (), start, text, body)
    if "[" in text or "]" in text:
        where = start + min(i for i in (text.find("["), text.find("]")) if i >= 0)
        raise SpecError(spec, where, 1, f"brackets belong only to a residual block R-[...], in layer {text!r}")
    kind, *fields = text.split("-")
    if kind not in _GRAMMAR:
        raise SpecError(spec, start, len(kind), f"unknown layer kind {kind!r} in {text!r} "
                                                f"(expected one of {', '.join([*_GRAMMAR, 'R'])})")
    schema = _GRAMMAR[kind]
    if len(fields) != len(schema):
        form = "-".join([kind, *(name for name, _ in schema)])
        raise SpecError(spec, start, len(text), f"{kind} takes {len(schema)} value(s), written {form}; got {text!r}")
    args, position = [], start + len(kind) + 1
    for field, (name, parse) in zip(fields, schema):
        try:
            args.append(parse(field))
        except ValueError as error:
            raise SpecError(spec, position, len(field), f"{name} of layer {text!r}: {error}") from None
        position += len(field) + 1
    return LayerSpec(kind, tuple(args), start, text)


def parse_spec(spec: str) -> list[LayerSpec]:
    """Parse an architecture string into layers and check their order (convolutions and pooling before the one
    ``F``, hidden layers after it); raises :class:`SpecError` pointing at the offending character."""
    if not spec:
        raise SpecError(spec, 0, 1, "the architecture string is empty")
    layers = [_parse_layer(spec, s, e, False) for s, e in _split(spec, 0, len(spec))]
    flattens = [layer for layer in layers if layer.kind == "F"]
    if len(flattens) != 1:
        where = flattens[1] if flattens else None
        message = "F (flatten) must appear exactly once" + (", found it again here" if where else ", it is missing")
        raise SpecError(spec, where.position if where else len(spec), 1, message)
    after_flatten = False
    for layer in layers:
        if layer.kind == "F":
            after_flatten = True
        elif after_flatten and layer.kind in ("C", "CB", "M", "R"):
            raise layer.error(spec, "convolutions and pooling must come before F (flatten)")
        elif not after_flatten and layer.kind == "H":
            raise layer.error(spec, "a hidden dense layer H must come after F (flatten)")
    return layers


class ConvBlock(nn.Sequential):
    """``C``: conv (bias) + ReLU; ``CB``: conv (no bias) + BatchNorm + ReLU. Keys ``conv``, ``bn``, ``relu``."""

    def __init__(self, ndim: int, in_channels: int, filters: int, kernel_size: int, stride: int, padding: str,
                 batch_normalization: bool) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv"] = conv(ndim, in_channels, filters, kernel_size, stride, padding, bias=not batch_normalization)
        if batch_normalization:
            layers["bn"] = batch_norm(ndim, filters)
        layers["relu"] = nn.ReLU(inplace=True)
        super().__init__(layers)


class Residual(nn.Module):
    """``R-[...]``: ``x + body(x)``, the sum taken after the body's last ReLU (no activation after it)."""

    def __init__(self, body: nn.Sequential) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@dataclass
class _Shape:
    """The running output shape while building: channels, spatial sizes, total stride from the input."""

    channels: int
    spatial: tuple[int, ...]
    stride: int


def _conv_block(spec: str, layer: LayerSpec, shape: _Shape) -> tuple[ConvBlock, _Shape]:
    filters, kernel, stride, padding = layer.args
    spatial = tuple(output_size(s, kernel, stride, padding) for s in shape.spatial)
    if min(spatial) < 1:
        raise layer.error(spec, f"a {padding} {kernel}-wide convolution does not fit the input of size {shape.spatial}")
    block = ConvBlock(len(spatial), shape.channels, filters, kernel, stride, padding, layer.kind == "CB")
    return block, _Shape(filters, spatial, shape.stride * stride)


class SpecNet(Classifier):
    """A network described by the course's architecture string (see the module docstring for the grammar).

    ``features`` holds the layers before ``F`` (keys ``features.<i>``), ``head`` the flatten, hidden and dropout
    layers after it, ``fc`` the final linear layer. Input Tensor[N, in_chans, *input_size] -> logits
    Tensor[N, num_classes]; the input size is fixed because ``F`` flattens it.
    """

    classifier_name = "fc"

    def __init__(self, spec: str = DEFAULT_SPEC, *, num_classes: int = 10, in_chans: int = 1,
                 input_size: tuple[int, ...] = (28, 28), ndim: int | None = None) -> None:
        super().__init__()
        if isinstance(input_size, int):  # one side: a square (a cube with ndim=3, a length with ndim=1)
            input_size = (input_size,) * (ndim or 2)
        input_size = tuple(int(s) for s in input_size)
        if ndim is not None and ndim != len(input_size):
            raise ValueError(f"ndim={ndim} disagrees with input_size={input_size} ({len(input_size)} spatial axes)")
        self.spec, self.input_size = spec, input_size
        self.ndim, self.in_chans, self.num_classes = len(input_size), in_chans, num_classes
        self.default_input_size = (in_chans, *input_size)
        layers = parse_spec(spec)
        split = next(i for i, layer in enumerate(layers) if layer.kind == "F")
        self.features, shape, self.feature_info = self._build_features(layers[:split], in_chans, input_size)
        # the first convolution in module order is the one nearest the input (None for a net without one)
        self.first_conv = next((f"features.{name}" for name, m in self.features.named_modules()
                                if isinstance(m, nn.modules.conv._ConvNd)), None)
        self.head, self.num_features = self._build_head(layers[split:], shape)
        self.fc = nn.Linear(self.num_features, num_classes)

    def _build_features(self, layers: list[LayerSpec], in_chans: int, input_size: tuple[int, ...]
                        ) -> tuple[nn.Sequential, _Shape, list[FeatureInfo]]:
        modules: OrderedDict[str, nn.Module] = OrderedDict()
        info: list[FeatureInfo] = []
        shape = _Shape(in_chans, input_size, 1)
        for i, layer in enumerate(layers):
            if layer.kind in ("C", "CB"):
                module, shape = _conv_block(self.spec, layer, shape)
            elif layer.kind == "M":
                pool, stride = layer.args
                spatial = tuple(output_size(s, pool, stride, "valid") for s in shape.spatial)
                if min(spatial) < 1:
                    raise layer.error(self.spec, f"a {pool}-wide pooling does not fit the input of size "
                                                 f"{shape.spatial}")
                module = max_pool(self.ndim, pool, stride)
                shape = _Shape(shape.channels, spatial, shape.stride * stride)
            elif layer.kind == "R":
                body, inner = [], shape
                for inner_layer in layer.body:
                    block, inner = _conv_block(self.spec, inner_layer, inner)
                    body.append(block)
                if (inner.channels, inner.spatial) != (shape.channels, shape.spatial):
                    raise layer.error(self.spec, f"the residual block maps shape {(shape.channels, *shape.spatial)} "
                                                 f"to {(inner.channels, *inner.spatial)}; they must be equal to add")
                module = Residual(nn.Sequential(*body))
            else:  # "D" before F: element-wise dropout of the feature maps
                module = nn.Dropout(layer.args[0])
            modules[str(i)] = module
            if layer.kind != "D":
                info.append(FeatureInfo(f"features.{i}", shape.channels, shape.stride))
        return nn.Sequential(modules), shape, info

    @staticmethod
    def _build_head(layers: list[LayerSpec], shape: _Shape) -> tuple[nn.Sequential, int]:
        width = shape.channels * math.prod(shape.spatial)
        modules: list[nn.Module] = []
        for layer in layers:
            if layer.kind == "F":
                modules.append(nn.Flatten())  # Tensor[N, C, *spatial] -> Tensor[N, C * prod(spatial)]
            elif layer.kind == "H":
                modules += [nn.Linear(width, layer.args[0]), nn.ReLU(inplace=True)]
                width = layer.args[0]
            else:
                modules.append(nn.Dropout(layer.args[0]))
        return nn.Sequential(*modules), width

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        if tuple(x.shape[2:]) != self.input_size:
            raise ValueError(f"SpecNet was built for inputs of spatial size {self.input_size} (F flattens them), "
                             f"got input shape {list(x.shape)}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Tensor[N, in_chans, *input_size] -> the feature maps before F, Tensor[N, C, *spatial]."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature maps -> flatten, hidden and dropout layers (``pre_logits``) -> Tensor[N, num_classes]."""
        x = self.head(x)
        return x if pre_logits else self.fc(x)

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}, input_size={self.input_size}"


@register_model
def spec(spec: str = DEFAULT_SPEC, **kwargs) -> SpecNet:
    """The course's architecture string; defaults to MNIST (1x28x28, 10 classes) and the assignment's example."""
    return SpecNet(spec, **kwargs)
