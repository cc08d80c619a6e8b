"""The auxiliary-output contract: AuxOutput in training, logits in eval, and the weighted loss computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import convzoo
from convzoo.models.aux import AuxOutput, classification_loss, main_logits

LN3 = math.log(3.0)
# logits [ln 3, 0] -> softmax [0.75, 0.25]; [0, 0] -> [0.5, 0.5]; [0, ln 3] -> [0.25, 0.75]; the target is class 0
MAIN, AUX1, AUX2 = torch.tensor([[LN3, 0.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, LN3]])
TARGET = torch.tensor([0])


def test_plain_logits_are_cross_entropy():
    assert classification_loss(MAIN, TARGET).item() == pytest.approx(-math.log(0.75), abs=1e-6)  # 0.287682
    # label smoothing 0.2 over C=2 classes: q = (1 - 0.2) * onehot + 0.2 / 2 = [0.9, 0.1]
    expected = -(0.9 * math.log(0.75) + 0.1 * math.log(0.25))  # 0.258914 + 0.138629 = 0.397543
    assert classification_loss(MAIN, TARGET, label_smoothing=0.2).item() == pytest.approx(expected, abs=1e-6)
    assert classification_loss(MAIN, TARGET, aux_weight=0.5).item() == pytest.approx(-math.log(0.75), abs=1e-6)


def test_aux_output_weighted_total():
    out = AuxOutput(MAIN, (AUX1, AUX2), (0.3, 0.3))
    # -ln 0.75 + 0.3 * (-ln 0.5 - ln 0.25) = 0.287682 + 0.3 * (0.693147 + 1.386294) = 0.911515
    assert classification_loss(out, TARGET).item() == pytest.approx(0.911515, abs=1e-6)
    assert main_logits(out) is MAIN and main_logits(MAIN) is MAIN


def test_aux_weight_overrides_the_models_weights():
    out = AuxOutput(MAIN, (AUX1, AUX2), (0.3, 0.3))
    assert classification_loss(out, TARGET, aux_weight=0.0).item() == pytest.approx(0.287682, abs=1e-6)
    # 0.287682 + 1.0 * 0.693147 + 0.5 * 1.386294 = 1.673976
    assert classification_loss(out, TARGET, aux_weight=(1.0, 0.5)).item() == pytest.approx(1.673976, abs=1e-6)
    with pytest.raises(ValueError, match="3 auxiliary loss weights"):
        classification_loss(out, TARGET, aux_weight=(1.0, 0.5, 0.1))


def test_label_smoothing_applies_to_every_head():
    out = AuxOutput(MAIN, (AUX1, AUX2), (0.3, 0.3))
    # q = [0.9, 0.1]: main 0.397543; aux1 ln 2 = 0.693147; aux2 -(0.9 ln 0.25 + 0.1 ln 0.75) = 1.276433
    expected = 0.397543 + 0.3 * (0.693147 + 1.276433)  # 0.988417
    assert classification_loss(out, TARGET, label_smoothing=0.2).item() == pytest.approx(expected, abs=1e-6)


def test_batch_mean_matches_torch():
    logits = torch.randn(4, 2, 7)
    target = torch.randint(0, 7, (4,))
    out = AuxOutput(logits[:, 0], (logits[:, 1],), (0.4,))
    expected = F.cross_entropy(logits[:, 0], target, label_smoothing=0.1) + 0.4 * F.cross_entropy(
        logits[:, 1], target, label_smoothing=0.1)
    torch.testing.assert_close(classification_loss(out, target, label_smoothing=0.1), expected)


@pytest.mark.parametrize("name, input_size, weights", [
    ("googlenet", 64, (0.3, 0.3)),
    ("inception_v3", 75, (0.4,)),
])
def test_models_follow_the_contract(name, input_size, weights):
    model = convzoo.create_model(name, num_classes=5)
    x = torch.randn(2, 3, input_size, input_size)
    model.train()
    out = model(x)
    assert isinstance(out, AuxOutput) and out.aux_weights == weights
    assert out.logits.shape == (2, 5) and all(a.shape == (2, 5) for a in out.aux_logits)
    loss = classification_loss(out, torch.tensor([1, 3]), label_smoothing=0.1)
    loss.backward()
    aux_head = model.aux1 if name == "googlenet" else model.AuxLogits
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in aux_head.parameters())
    model.eval()
    with torch.no_grad():
        assert isinstance(model(x), torch.Tensor)
    plain = convzoo.create_model(name, num_classes=5, aux_logits=False).train()
    assert isinstance(plain(x), torch.Tensor)


def test_reset_classifier_resets_the_aux_heads_too():
    model = convzoo.create_model("googlenet", num_classes=10)
    model.reset_classifier(3)
    out = model.train()(torch.randn(2, 3, 64, 64))
    assert out.logits.shape == (2, 3) and all(a.shape == (2, 3) for a in out.aux_logits)
    with torch.device("meta"):
        inception = convzoo.create_model("inception_v3")
    inception.reset_classifier(4)
    assert inception.fc.out_features == inception.AuxLogits.fc.out_features == 4
