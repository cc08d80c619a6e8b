"""NASNet's search space as data: the genotype JSON form, its one-line validation errors, and any genotype built."""

from __future__ import annotations

import json

import pytest
import torch

import convzoo
from convzoo.models.nasnet_genotype import NASNET_A, OP_NAMES, CellGenotype, Genotype, load_genotype


def test_the_space_is_the_papers_operation_list():
    assert set(OP_NAMES) == {"none", "conv1x3_3x1", "conv1x7_7x1", "dil3", "avg3", "avg5", "avg7", "max3", "max5",
                             "max7", "conv1", "conv3", "sep3", "sep5", "sep7"}


def test_json_round_trip(tmp_path):
    text = NASNET_A.to_json()
    assert Genotype.from_json(text) == NASNET_A
    assert json.loads(text)["normal"]["blocks"][0] == [["sep5", 0], ["sep3", 1]]
    concat = Genotype(CellGenotype(((("conv3", 0), ("max5", 1)), (("dil3", 2), ("none", 0))), (3,), ("concat", "add")),
                      CellGenotype(((("sep7", 1), ("avg7", 0)), (("conv1x7_7x1", 2), ("conv1", 1))), (3,)))
    assert json.loads(concat.to_json())["normal"]["blocks"][0][2] == "concat"
    path = tmp_path / "g.json"
    path.write_text(concat.to_json())
    assert load_genotype(str(path)) == concat == load_genotype(concat.to_data())
    assert load_genotype("nasnet_a") is NASNET_A


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("reduction"), "genotype: expected an object with keys normal and reduction"),
    (lambda d: d["normal"]["blocks"][2][0].__setitem__(0, "sep9"), "genotype normal.blocks[2][0]: unknown operation"),
    (lambda d: d["normal"]["blocks"][0][1].__setitem__(1, 2), "genotype normal.blocks[0][1]: state 2 out of range"),
    (lambda d: d["reduction"]["blocks"][1].append("mul"), "genotype reduction.blocks[1][2]: the combination"),
    (lambda d: d["reduction"].__setitem__("concat", [3, 3]), "genotype reduction.concat: expected distinct states"),
    (lambda d: d["normal"].update(blocks=d["normal"]["blocks"][:4], concat=[5]),
     "the normal cell has 4 blocks, the reduction cell 5"),
])
def test_validation_errors_name_the_field(edit, message):
    data = NASNET_A.to_data()
    edit(data)
    with pytest.raises(ValueError) as error:
        Genotype.from_data(data)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_bad_genotype_file_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="--genotype missing.json: no such file"):
        load_genotype("missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        load_genotype(str(tmp_path / "bad.json"))


def test_any_genotype_builds_with_the_cifar_stem():
    genotype = Genotype(
        CellGenotype(((("conv1x3_3x1", 0), ("avg5", 1)), (("max7", 2), ("dil3", 0)), (("none", 3), ("conv3", 1))),
                     (4,), ("add", "concat", "add")),
        CellGenotype(((("none", 0), ("max3", 1)), (("conv1", 2), ("sep3", 0)), (("avg7", 3), ("conv1x7_7x1", 2))),
                     (4,), ("concat", "concat", "add")))
    model = convzoo.create_model("nasnet", genotype=genotype.to_json(), num_cells=1, filters=4, stem="cifar",
                                 num_classes=3, in_chans=1)
    out = model(torch.randn(2, 1, 12, 12))
    assert out.shape == (2, 3)
    out.sum().backward()
    # the first stage's cell concatenates state 4 only (block 2, added): filters channels; stages double
    assert model.cell_0.out_channels == 4 and model.reduction_cell_0.out_channels == 8
