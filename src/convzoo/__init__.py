"""convzoo: the classic convolutional networks and the R-CNN family, faithful to the papers and verified.

    import convzoo
    model = convzoo.create_model("resnet50", num_classes=10)
    print(convzoo.summary(model, input_size=(3, 224, 224)))
"""

from convzoo.registry import create_model, get_model_builder, list_models, register_model
from convzoo.summary import Summary, SummaryRow, count_params, summary
from convzoo.weights import load_weights, save_weights

__version__ = "0.1.0"

__all__ = [
    "Summary", "SummaryRow", "count_params", "create_model", "get_model_builder", "list_models", "load_weights",
    "register_model", "save_weights", "summary",
]
