"""``init_as_pycocotools()``: code that imports ``pycocotools.coco`` and ``pycocotools.cocoeval`` runs on convzoo.

After the call, ``from pycocotools.coco import COCO`` and ``from pycocotools.cocoeval import COCOeval, Params`` give
:class:`~convzoo.evaluation.pycoco.PycocotoolsCOCO` and :class:`~convzoo.evaluation.pycocoeval.PycocotoolsCOCOeval`,
which reproduce pycocotools 2.0.11's quirks (listed in :mod:`convzoo.evaluation.pycocoeval`). ``pycocotools.mask``
stays pycocotools' own: convzoo measures mask IoUs with it.
"""

from __future__ import annotations

import sys
import types


def init_as_pycocotools() -> None:
    """Install convzoo's ``COCO``/``COCOeval`` as the modules ``pycocotools.coco`` and ``pycocotools.cocoeval``."""
    import pycocotools

    from convzoo.evaluation.pycoco import PycocotoolsCOCO
    from convzoo.evaluation.pycocoeval import Params, PycocotoolsCOCOeval

    coco = types.ModuleType("pycocotools.coco", "convzoo's COCO in pycocotools' place")
    coco.COCO = PycocotoolsCOCO
    cocoeval = types.ModuleType("pycocotools.cocoeval", "convzoo's COCOeval in pycocotools' place")
    cocoeval.COCOeval, cocoeval.Params = PycocotoolsCOCOeval, Params
    for name, module in (("coco", coco), ("cocoeval", cocoeval)):
        sys.modules[f"pycocotools.{name}"] = module
        setattr(pycocotools, name, module)
