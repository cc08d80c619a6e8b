"""The compiled parts of convzoo, both optional C (see src/convzoo/evaluation/reading.py and cocoeval.py):

- ``_boxjson``: a reader of COCO box and mask results straight into arrays;
- ``_cocoeval``: pycocotools' matching and accumulation;
- ``_rle``: the areas and mask IoUs of compressed RLE masks;
- ``_polygons``: polygons to compressed RLE masks.

``optional=True``: where no C compiler is at hand the install goes on without them, and convzoo reads results with
msgspec or json and evaluates with numpy instead (the same numbers, more slowly). Everything else is in
pyproject.toml.
"""

import sys

from setuptools import Extension, setup

# No fused multiply-adds: the evaluation's float64 arithmetic must round as numpy's and pycocotools' does.
STRICT = [] if sys.platform == "win32" else ["-ffp-contract=off"]

setup(ext_modules=[
    Extension("convzoo.evaluation._boxjson",
              ["src/convzoo/evaluation/_boxjson.c", "src/convzoo/evaluation/_maskjson.c"], optional=True,
              depends=["src/convzoo/evaluation/_boxjson.h", "src/convzoo/evaluation/_rlescan.h"]),
    Extension("convzoo.evaluation._cocoeval",
              ["src/convzoo/evaluation/_cocoeval.c", "src/convzoo/evaluation/_cocoorder.c"], optional=True,
              extra_compile_args=STRICT, depends=["src/convzoo/evaluation/_cocoeval.h"]),
    Extension("convzoo.evaluation._rle", ["src/convzoo/evaluation/_rle.c"], optional=True, extra_compile_args=STRICT,
              depends=["src/convzoo/evaluation/_parallel.h", "src/convzoo/evaluation/_rlescan.h"]),
    Extension("convzoo.evaluation._polygons", ["src/convzoo/evaluation/_polygons.c"], optional=True,
              extra_compile_args=STRICT, depends=["src/convzoo/evaluation/_parallel.h"]),
])
