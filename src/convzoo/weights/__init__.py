"""Weights from files: convzoo's own checkpoints and torchvision's and timm's, without downloads or unpickling.

    import convzoo
    model = convzoo.create_model("resnet50", num_classes=10)
    report = convzoo.load_weights(model, "resnet50-11ad3fa6.pth", source="torchvision", ignore_mismatched_head=True)
    print(report)                      # loaded 318 tensors; reinitialized 2 (fc.weight, fc.bias)
    convzoo.save_weights(model, "finetuned.safetensors")
"""

from convzoo.weights.files import read_state_dict, save_weights, unwrap_state_dict
from convzoo.weights.load import LoadReport, WeightsMismatchError, first_fitting_source, head_keys, load_weights
from convzoo.weights.mapping import SOURCES, map_names

__all__ = [
    "SOURCES", "LoadReport", "WeightsMismatchError", "first_fitting_source", "head_keys", "load_weights", "map_names",
    "read_state_dict", "save_weights", "unwrap_state_dict",
]
