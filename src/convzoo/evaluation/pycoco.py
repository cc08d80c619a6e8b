"""``COCO``: pycocotools' ground-truth and result API (same constructor, methods and attributes), written anew.

``COCO(path)`` reads a COCO JSON file and indexes it (``dataset``, ``anns``, ``imgs``, ``cats``, ``imgToAnns``,
``catToImgs``); ``getAnnIds``/``getCatIds``/``getImgIds`` filter, ``loadAnns``/``loadCats``/``loadImgs`` look up,
``loadRes`` turns detections into a second ``COCO`` object the way pycocotools does (ids 1..N, ``area`` from the box,
the mask or the keypoints' extent, ``iscrowd`` 0, a box's rectangle as its ``segmentation``).

Where convzoo differs (the :class:`PycocotoolsCOCO` class, which ``init_as_pycocotools`` installs, does not):
``loadRes`` works on copies of the result dicts instead of writing into the caller's, and accepts an empty list.
"""

from __future__ import annotations

import copy
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from convzoo.evaluation.coco import to_rle
from convzoo.evaluation.reading import plain_box_columns, read_json


def _many(value: Any) -> list:
    """pycocotools' filters take one id or an iterable of them."""
    return list(value) if hasattr(value, "__iter__") and hasattr(value, "__len__") and not isinstance(
        value, (str, dict)) else [value]


def _built(name: str) -> property:
    """An attribute of box results that ``loadRes`` keeps as columns until it is first read (then all are built)."""

    def get(self):
        if self.pending_boxes is not None:
            self._build_box_results()
        state = self.__dict__
        return state[f"_{name}"] if f"_{name}" in state else state[name]  # the plain name: an older pickle

    def set(self, value) -> None:
        self.__dict__[f"_{name}"] = value

    return property(get, set)


class COCO:
    """A COCO data set (ground truth or results) and its indexes, with pycocotools' ``COCO`` interface.

    Box results that ``loadRes`` reads from a file (plain records: ``image_id``, ``category_id``, ``score``,
    ``bbox``, nothing else; the compiled reader) are kept as columns in ``pending_boxes``; ``dataset``, ``anns``,
    ``imgToAnns`` and ``catToImgs`` are built from them when first read, as pycocotools builds them, with two
    differences: the keys come in the order ``image_id, category_id, bbox, score``, then ``segmentation, area, id,
    iscrowd`` (pycocotools keeps the file's order), and the numbers of ``bbox``, ``score`` and ``area`` are floats
    (``1.0`` where the file says ``1``; equal as numbers, not as JSON text). Not thread-safe while being built.
    :class:`convzoo.evaluation.COCOeval` evaluates the columns without building the dicts.
    """

    mutates_results = False  # pycocotools' loadRes writes ids and areas into the caller's dicts
    pending_boxes: tuple | None = None  # (image_ids, category_ids, score, boxes [D, 4]) not yet made into dicts
    dataset, anns, imgToAnns, catToImgs = (_built(n) for n in ("dataset", "anns", "imgToAnns", "catToImgs"))

    def __init__(self, annotation_file: str | Path | None = None) -> None:
        self.dataset: dict = {}
        self.anns: dict = {}
        self.cats: dict = {}
        self.imgs: dict = {}
        self.imgToAnns: defaultdict = defaultdict(list)
        self.catToImgs: defaultdict = defaultdict(list)
        if annotation_file is not None:
            print("loading annotations into memory...")
            tic = time.time()
            dataset = read_json(annotation_file)
            if not isinstance(dataset, dict):
                raise ValueError(f"{annotation_file}: expected a COCO dict, got {type(dataset).__name__}")  # noqa: TRY004
            print(f"Done (t={time.time() - tic:0.2f}s)")
            self.dataset = dataset
            self.createIndex()

    def createIndex(self) -> None:  # noqa: N802 (pycocotools' name)
        """Build ``anns``, ``imgs``, ``cats``, ``imgToAnns`` and ``catToImgs`` from ``dataset``."""
        print("creating index...")
        self._index()
        print("index created!")

    def _index(self) -> None:
        self.anns, self.imgs, self.cats = {}, {}, {}
        self.imgToAnns, self.catToImgs = defaultdict(list), defaultdict(list)
        with_categories = "categories" in self.dataset
        for ann in self.dataset.get("annotations", []):
            self.imgToAnns[ann["image_id"]].append(ann)
            self.anns[ann["id"]] = ann
            if with_categories:
                self.catToImgs[ann["category_id"]].append(ann["image_id"])
        for img in self.dataset.get("images", []):
            self.imgs[img["id"]] = img
        for cat in self.dataset.get("categories", []):
            self.cats[cat["id"]] = cat

    def _build_box_results(self) -> None:
        """``loadRes``' dicts of the pending box columns: ids 1..D, ``area`` w h, ``iscrowd`` 0, the box's corners
        clockwise from the top left as its polygon."""
        image_ids, category_ids, score, boxes = self.pending_boxes
        anns = []
        for i, (image, category, (x, y, w, h), value) in enumerate(zip(
                image_ids.tolist(), category_ids.tolist(), boxes.tolist(), score.tolist())):
            anns.append({"image_id": image, "category_id": category, "bbox": [x, y, w, h], "score": value,
                         "segmentation": [[x, y, x, y + h, x + w, y + h, x + w, y]], "area": w * h, "id": i + 1,
                         "iscrowd": 0})
        self.pending_boxes = None
        self.dataset["annotations"] = anns
        self._index()

    def info(self) -> None:
        """Print the data set's ``info`` block."""
        for key, value in self.dataset["info"].items():
            print(f"{key}: {value}")

    def getAnnIds(self, imgIds=(), catIds=(), areaRng=(), iscrowd=None) -> list:  # noqa: N802, N803
        """Ids of the annotations in these images and categories, with area strictly inside ``areaRng``."""
        img_ids, cat_ids, area_rng = _many(imgIds), _many(catIds), list(areaRng)
        if img_ids:
            anns = [a for i in img_ids if i in self.imgToAnns for a in self.imgToAnns[i]]
        else:
            anns = self.dataset["annotations"]
        if cat_ids:
            wanted = set(cat_ids)
            anns = [a for a in anns if a["category_id"] in wanted]
        if area_rng:
            anns = [a for a in anns if area_rng[0] < a["area"] < area_rng[1]]
        return [a["id"] for a in anns if iscrowd is None or a["iscrowd"] == iscrowd]

    def getCatIds(self, catNms=(), supNms=(), catIds=()) -> list:  # noqa: N802, N803
        """Ids of the categories with these names, supercategories and ids (every filter optional)."""
        names, supers, ids = _many(catNms), _many(supNms), _many(catIds)
        cats = self.dataset["categories"]
        cats = [c for c in cats if not names or c["name"] in names]
        cats = [c for c in cats if not supers or c["supercategory"] in supers]
        return [c["id"] for c in cats if not ids or c["id"] in ids]

    def getImgIds(self, imgIds=(), catIds=()) -> list:  # noqa: N802, N803
        """Ids of these images that hold every one of these categories (all images without filters)."""
        img_ids, cat_ids = _many(imgIds), _many(catIds)
        if not img_ids and not cat_ids:
            return list(self.imgs)
        ids = set(img_ids)
        for i, cat_id in enumerate(cat_ids):
            ids = set(self.catToImgs[cat_id]) if i == 0 and not ids else ids & set(self.catToImgs[cat_id])
        return list(ids)

    def loadAnns(self, ids=()) -> list:  # noqa: N802
        return [self.anns[i] for i in _many(ids)]

    def loadCats(self, ids=()) -> list:  # noqa: N802
        return [self.cats[i] for i in _many(ids)]

    def loadImgs(self, ids=()) -> list:  # noqa: N802
        return [self.imgs[i] for i in _many(ids)]

    def loadRes(self, resFile) -> COCO:  # noqa: N802, N803
        """Results (a JSON file, a list of result dicts or an ``[N, 7]`` array) as a ``COCO`` object over this
        set's images and categories. Every result's ``image_id`` must be one of this set's images."""
        res = type(self)()
        res.dataset["info"] = copy.deepcopy(self.dataset.get("info", {}))
        res.dataset["images"] = list(self.dataset["images"])
        print("Loading and preparing results...")
        tic = time.time()
        lazy = isinstance(resFile, (str, Path)) and type(self).createIndex is COCO.createIndex  # no own index
        columns = plain_box_columns(resFile) if lazy else None
        if columns is not None:
            if not np.isin(columns[0], list(self.imgs)).all():
                raise ValueError("Results do not correspond to current coco set")
            res.dataset["categories"] = copy.deepcopy(self.dataset["categories"])
            res.imgs = {img["id"]: img for img in res.dataset["images"]}
            res.cats = {cat["id"]: cat for cat in res.dataset["categories"]}
            res.pending_boxes = columns
            print(f"DONE (t={time.time() - tic:0.2f}s)")
            print("creating index...")
            print("index created!")
            return res
        if isinstance(resFile, (str, Path)):
            anns = read_json(resFile)
        elif isinstance(resFile, np.ndarray):
            anns = self.loadNumpyAnnotations(resFile)
        else:
            anns = resFile
        if not isinstance(anns, list):
            raise ValueError("results in not an array of objects")  # noqa: TRY004 (pycocotools' message)
        if not {a["image_id"] for a in anns} <= set(self.getImgIds()):
            raise ValueError("Results do not correspond to current coco set")
        first = anns[0] if anns or self.mutates_results else {}
        boxes = "caption" not in first and first.get("bbox", []) != [] and "bbox" in first
        if not self.mutates_results:  # box results get new dicts below, the others copies here
            anns = list(anns) if boxes else [dict(a) for a in anns]
        if "caption" in first:
            ids = {a["image_id"] for a in anns}
            res.dataset["images"] = [img for img in res.dataset["images"] if img["id"] in ids]
            for i, ann in enumerate(anns):
                ann["id"] = i + 1
        elif boxes:
            res.dataset["categories"] = copy.deepcopy(self.dataset["categories"])
            for i, ann in enumerate(anns):
                x, y, w, h = ann["bbox"]
                extra = {"area": w * h, "id": i + 1, "iscrowd": 0}
                if "segmentation" not in ann:  # the box as a polygon, corners clockwise from the top left
                    extra = {"segmentation": [[x, y, x, y + h, x + w, y + h, x + w, y]], **extra}
                if self.mutates_results:
                    ann.update(extra)
                else:
                    anns[i] = {**ann, **extra}
        elif "segmentation" in first:
            res.dataset["categories"] = copy.deepcopy(self.dataset["categories"])
            for i, ann in enumerate(anns):
                ann["area"] = mask_utils.area(ann["segmentation"])
                if "bbox" not in ann:
                    ann["bbox"] = mask_utils.toBbox(ann["segmentation"])
                ann["id"], ann["iscrowd"] = i + 1, 0
        elif "keypoints" in first:
            res.dataset["categories"] = copy.deepcopy(self.dataset["categories"])
            for i, ann in enumerate(anns):
                xs, ys = np.asarray(ann["keypoints"][0::3]), np.asarray(ann["keypoints"][1::3])
                x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
                ann["area"], ann["id"], ann["bbox"] = (x1 - x0) * (y1 - y0), i + 1, [x0, y0, x1 - x0, y1 - y0]
        else:
            res.dataset["categories"] = copy.deepcopy(self.dataset.get("categories", []))
        print(f"DONE (t={time.time() - tic:0.2f}s)")
        res.dataset["annotations"] = anns
        res.createIndex()
        return res

    def loadNumpyAnnotations(self, data: np.ndarray) -> list:  # noqa: N802
        """``float[N, 7]`` rows ``(image_id, x, y, w, h, score, category_id)`` -> result dicts."""
        if data.ndim != 2 or data.shape[1] != 7:
            raise ValueError(f"expected an array [N, 7], got shape {list(data.shape)}")
        return [{"image_id": int(row[0]), "bbox": [row[1], row[2], row[3], row[4]], "score": row[5],
                 "category_id": int(row[6])} for row in data]

    def annToRLE(self, ann: dict) -> dict:  # noqa: N802
        """The annotation's segmentation as one compressed RLE (polygons merged)."""
        image = self.imgs[ann["image_id"]]
        return to_rle(ann["segmentation"], image["height"], image["width"])

    def annToMask(self, ann: dict) -> np.ndarray:  # noqa: N802
        """The annotation's segmentation as a ``uint8[H, W]`` mask."""
        return mask_utils.decode(self.annToRLE(ann))

    def showAnns(self, anns, draw_bbox=False):  # noqa: N802
        raise NotImplementedError("convzoo's COCO does not draw; use pycocotools or matplotlib for showAnns")

    def download(self, tarDir=None, imgIds=()):  # noqa: N802, N803
        raise NotImplementedError("convzoo's COCO does not download images")


class PycocotoolsCOCO(COCO):
    """:class:`COCO` exactly as pycocotools 2.0.11 behaves: ``loadRes`` writes ``id``, ``area``, ``iscrowd`` (and a
    box's ``segmentation``) into the caller's result dicts, and fails on an empty list."""

    mutates_results = True
