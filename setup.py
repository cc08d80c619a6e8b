"""The one compiled part of convzoo: an optional C reader of COCO box results (see src/convzoo/evaluation/reading.py).

``optional=True``: where no C compiler is at hand the install goes on without it, and convzoo reads results with
msgspec or json instead (the same arrays, more slowly). Everything else is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("convzoo.evaluation._boxjson", ["src/convzoo/evaluation/_boxjson.c"], optional=True)])
