"""The figures that ``convzoo models`` prints (the table in ``convzoo/_model_figures.py``) against real builds.

Each registered model is built shape-only (``convzoo.model_table.measure``) and its kind, parameters, MACs and
default input size must equal its stored row; a model added, removed or changed without regenerating the table
(``python -m convzoo.model_table``) fails here.
"""

from __future__ import annotations

import pytest

from convzoo.model_table import ModelFigures, measure, model_table
from convzoo.registry import KINDS, list_models

# Shape-only builds that take over 2 s on a 2-core CPU (resnet1202: 8.7 s, nasnet_a_large: 2.4 s; every other
# model 0.01-1.7 s, about 20 s in all); `python -m pytest -m slow` checks them.
SLOW = {"resnet1202", "nasnet_a_large"}
STORED = {row.name: row for row in model_table()}
REGENERATE = "the stored figures are stale; regenerate them with `python -m convzoo.model_table`"


def _params(names):
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in names]


def test_every_registered_model_is_in_the_table():
    registered = set(list_models())
    assert registered - STORED.keys() == set(), f"models missing from the table; {REGENERATE}"
    assert STORED.keys() - registered == set(), f"the table lists models that are not registered; {REGENERATE}"


def test_slow_names_are_registered():
    assert SLOW <= set(list_models())  # a renamed model would otherwise silently lose its check


def test_table_filters_by_glob_and_kind():
    assert [row.name for row in model_table("resnet1?")] == ["resnet18"]
    detectors = model_table(kind="detector")
    assert detectors and all(row.kind == "detector" and row.macs is None for row in detectors)
    segmenters = model_table(kind="segmenter")
    assert segmenters and all(row.macs and row.input_size for row in segmenters)  # MACs at the default input size
    assert sum(len(model_table(kind=kind)) for kind in KINDS) == len(STORED)  # every row has a kind


@pytest.mark.parametrize("name", _params(list_models()))
def test_stored_figures_match_a_build(name):
    measured = measure(name)
    assert isinstance(measured, ModelFigures)
    assert measured == STORED.get(name), f"{name}: built {measured}, stored {STORED.get(name)}; {REGENERATE}"
