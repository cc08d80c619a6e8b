"""The per-layer summary: hand-computed rows, totals, depth grouping, 1D/3D, several outputs, the CLI."""

from torch import nn

import convzoo
from convzoo.cli import main
from convzoo.layers import conv


def test_rows_are_hand_computable():
    model = nn.Sequential(conv(2, 3, 8, 3, 2, "same"), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 5 * 5, 10))
    table = convzoo.summary(model, (3, 10, 10))
    first = table.rows[0]
    assert (first.kind, first.kernel, first.stride, first.output_shape) == ("Conv2dSame", (3, 3), (2, 2), (8, 5, 5))
    assert first.params == 8 * 3 * 9 + 8
    assert first.macs == 8 * 5 * 5 * (3 * 9)  # outputs x (in_channels x kernel)
    assert table.rows[1].params == 16  # BN scale and shift; running statistics are not parameters
    assert table.rows[-1].macs == 200 * 10
    assert table.total_macs == 8 * 5 * 5 * 27 + 2000
    assert table.total_params == convzoo.count_params(model) == 224 + 16 + 2010
    assert table.total_flops == 2 * table.total_macs
    text = str(table)
    assert "3x3/2x2" in text and "8x5x5" in text and "FLOPs (= 2 x MACs)" in text


def test_grouped_rows_add_up():
    model = convzoo.create_model("resnet18")
    leaves = convzoo.summary(model)
    stages = convzoo.summary(model, depth=1)
    assert [r.name for r in stages.rows] == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                                             "avgpool", "fc"]
    assert sum(r.macs for r in stages.rows) == leaves.total_macs
    assert sum(r.params for r in stages.rows) == leaves.total_params
    assert stages.rows[4].output_shape == (64, 56, 56) and stages.rows[7].output_shape == (512, 7, 7)


def test_grouped_conv_and_transposed_conv_macs():
    grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False)
    assert convzoo.summary(grouped, (8, 4, 4)).total_macs == 8 * 16 * (2 * 9)
    up = nn.ConvTranspose2d(4, 2, 2, stride=2)
    assert convzoo.summary(up, (4, 3, 3)).total_macs == 4 * 9 * 2 * 4  # each input scatters kernel x out


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Conv1d(2, 4, 3)
        self.a, self.b = nn.Linear(4 * 6, 3), nn.Linear(4 * 6, 5)

    def forward(self, x):
        h = self.body(x).flatten(1)
        return self.a(h), {"b": self.b(h)}


def test_1d_3d_and_several_outputs():
    table = convzoo.summary(TwoHeads(), (2, 8))
    assert table.total_macs == 4 * 6 * 6 + 24 * 3 + 24 * 5
    model3d = convzoo.create_model("resnet18", ndim=3)
    assert convzoo.summary(model3d, (3, 8, 32, 32)).rows[0].output_shape == (64, 4, 16, 16)


def test_cli_models_and_summary(capsys):
    assert main(["models", "resnet1?"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "11.69M" in out and "1.814" in out
    assert main(["summary", "resnet20", "--input-size", "3,32,32", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "layer3" in out and "269,722 parameters" in out
    assert main(["summary", "resnet5"]) == 2
    assert "did you mean" in capsys.readouterr().err
