"""The per-layer summary: hand-computed rows, totals and their units, depth grouping, 1D/3D, several outputs, modules
that did not run (auxiliary heads), the CLI."""

import pytest
from torch import nn

import convzoo
from convzoo.cli import main
from convzoo.layers import conv
from convzoo.summary import scaled


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


def test_totals_are_printed_in_the_unit_that_fits():
    assert [scaled(n, "MACs") for n in (12, 7_400, 3_200_000, 1_814_000_000)] == [
        "12 MACs", "7.400 kMACs", "3.200 MMACs", "1.814 GMACs"]
    model = nn.Sequential(conv(2, 3, 8, 3, 2, "same"), nn.Flatten(), nn.Linear(8 * 5 * 5, 10))
    total = str(convzoo.summary(model, (3, 10, 10))).splitlines()[-1]
    assert "7.400 kMACs" in total and "14.800 kFLOPs" in total  # 8 x 5 x 5 x 27 + 200 x 10 = 7,400


def test_cli_summary_of_a_small_spec_model_has_no_zero_gmacs(capsys):
    assert main(["summary", "spec:C-4-3-1-same,F,H-10", "--input-size", "1,8,8"]) == 0
    out = capsys.readouterr().out
    assert "0.000 GMACs" not in out and "kMACs" in out  # 8 x 8 x 4 x 9 + 256 x 10 + 10 x 10 = 4,964


@pytest.mark.parametrize("name,input_size,heads", [("googlenet", (3, 64, 64), "aux1, aux2"),
                                                    ("inception_v3", (3, 75, 75), "AuxLogits")])
def test_auxiliary_heads_get_a_footnote(name, input_size, heads):
    model = convzoo.create_model(name, num_classes=10)
    table = convzoo.summary(model, input_size, depth=1)
    aux_params = sum(convzoo.count_params(model.get_submodule(n)) for n in model.aux_heads)
    assert table.aux_heads == list(model.aux_heads) and sum(table.not_run.values()) == aux_params
    assert all(r.macs == 0 for r in table.rows if r.name in model.aux_heads)
    text = str(table)
    assert f"* {heads}: auxiliary classifiers, which run only in training mode" in text.splitlines()[-1]
    assert any(line.startswith(model.aux_heads[0] + " *") for line in text.splitlines())
    plain = convzoo.summary(convzoo.create_model(name, num_classes=10, aux_logits=False), input_size)
    assert not plain.not_run and "*" not in str(plain).splitlines()[-1]


class Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.spare = nn.Linear(4, 2), nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))

    def forward(self, x):
        return self.used(x)


def test_modules_that_did_not_run_are_named():
    table = convzoo.summary(Unused(), (4,))
    assert table.not_run == {"spare": 15 + 8} and table.aux_heads == [] and table.total_params == 10 + 23
    assert str(table).splitlines()[-1] == "* spare: did not run for this input: 0 MACs; their 23 parameters are counted"


def test_cli_summary_input_size_sets_channels_and_axes(capsys):
    assert main(["summary", "resnet18", "--input-size", "1,1000", "--depth", "1"]) == 0
    assert "input 1x1000:" in capsys.readouterr().out  # in_chans=1, ndim=1 follow from the size
    assert main(["summary", "resnet18", "--input-size", "3,64,64", "--in-chans", "2"]) == 2
    assert "--in-chans 2 disagrees with --input-size 3,64,64 (3 channels)" in capsys.readouterr().err
