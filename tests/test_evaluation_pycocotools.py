"""convzoo's COCO/COCOeval against pycocotools 2.0.11, bit for bit: stats, eval arrays, evalImgs, ious, printout."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pycocotools.coco
import pycocotools.cocoeval
import pytest
from test_evaluation_coco import random_set

from convzoo.evaluation import COCO, COCOeval, PycocotoolsCOCO, PycocotoolsCOCOeval

SRC = Path(__file__).resolve().parents[1] / "src"


def run(classes, gt: dict, dets: list, iou_type: str, **params):
    """One evaluation on private copies, quietly -> (COCOeval, printed text)."""
    coco_cls, eval_cls = classes
    with contextlib.redirect_stdout(io.StringIO()) as out:
        coco_gt = coco_cls()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        evaluation = eval_cls(coco_gt, coco_gt.loadRes(copy.deepcopy(dets)), iou_type)
        for key, value in params.items():
            setattr(evaluation.params, key, value)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation, out.getvalue()


REFERENCE = (pycocotools.coco.COCO, pycocotools.cocoeval.COCOeval)
QUIRKS = (PycocotoolsCOCO, PycocotoolsCOCOeval)
CONVZOO = (COCO, COCOeval)


def assert_equal_values(ours, reference, where: str) -> None:
    if isinstance(reference, np.ndarray):
        assert isinstance(ours, np.ndarray) and ours.dtype == reference.dtype, where
        np.testing.assert_array_equal(ours, reference, err_msg=where)
    else:
        assert ours == reference, where


def assert_same(gt: dict, dets: list, iou_type: str, classes=QUIRKS, per_image: bool = True, summary: bool = True,
                **params) -> None:
    reference, ref_text = run(REFERENCE, gt, dets, iou_type, **params)
    ours, text = run(classes, gt, dets, iou_type, **copy.deepcopy(params))
    for key in ("precision", "recall", "scores"):
        np.testing.assert_array_equal(ours.eval[key], reference.eval[key], err_msg=key)
    assert ours.eval["counts"] == reference.eval["counts"]
    if summary:
        np.testing.assert_array_equal(ours.stats, reference.stats)
        lines = [line for line in text.splitlines() if "Average" in line]
        assert lines == [line for line in ref_text.splitlines() if "Average" in line]
    if not per_image:
        return
    assert len(ours.evalImgs) == len(reference.evalImgs)
    for n, (mine, theirs) in enumerate(zip(ours.evalImgs, reference.evalImgs)):
        assert (mine is None) == (theirs is None), n
        if theirs is not None:
            assert mine.keys() == theirs.keys()
            for key in theirs:
                assert_equal_values(mine[key], theirs[key], f"evalImgs[{n}][{key!r}]")
    assert ours.ious.keys() == reference.ious.keys()
    for key, value in reference.ious.items():
        assert_equal_values(ours.ious[key], value, f"ious[{key}]")


@pytest.fixture(scope="module")
def cocoapi(shared_data):
    folder = shared_data / "coco-eval" / "cocoapi_val2014_100"
    gt = json.loads((folder / "instances_val2014_100.json").read_text())
    return {t: (gt, json.loads((folder / f"instances_val2014_fake{t}100_results.json").read_text()))
            for t in ("bbox", "segm")}


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_cocoapi_fixtures(cocoapi, iou_type):
    assert_same(*cocoapi[iou_type], iou_type)
    assert_same(*cocoapi[iou_type], iou_type, classes=CONVZOO)  # the same answers without the quirks here


def test_keypoint_and_mmpose_fixtures(shared_data):
    folder = shared_data / "coco-eval"
    gt = json.loads((folder / "keypoints_1img" / "gt_dataset.json").read_text())
    dets = json.loads((folder / "keypoints_1img" / "dt_dataset.json").read_text())
    assert_same(gt, dets, "keypoints")
    gt = json.loads((folder / "mmpose_coco4" / "test_coco.json").read_text())
    boxes = json.loads((folder / "mmpose_coco4" / "test_coco_det_AP_H_56.json").read_text())
    assert_same(gt, boxes, "bbox")
    as_dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": a["keypoints"],
                "score": 1.0} for a in gt["annotations"]]
    assert_same(gt, as_dets, "keypoints")


@pytest.mark.parametrize("seed", range(4))
def test_random_bbox(seed):
    assert_same(*random_set(seed), "bbox")


@pytest.mark.parametrize("seed", range(2))
def test_random_segm(seed):
    assert_same(*random_set(seed, segm=True), "segm")


@pytest.mark.parametrize("seed", range(2))
def test_random_keypoints(seed):
    gt, dets = random_set(seed, keypoints=5)
    assert_same(gt, dets, "keypoints", kpt_oks_sigmas=np.full(5, 0.07))


@pytest.mark.parametrize("params", [
    {"iouThrs": np.array([0.3, 0.5, 0.75])},
    {"recThrs": np.linspace(0.05, 1.0, 20)},  # recThrs[0] > 0
    {"recThrs": np.array([0.0, 0.5, 1.0]), "iouThrs": np.array([0.5])},
    {"areaRng": [[0, 1e10], [0, 400], [400, 1e10]], "areaRngLbl": ["all", "small", "large"]},
    {"maxDets": [1, 10, 100, 300]},
    {"maxDets": [2, 5, 100]},
    {"imgIds": [100, 101, 102, 103, 106]},
    {"catIds": [3, 20]},
    {"useCats": 0},
    {"useCats": 0, "imgIds": [101, 104, 105]},
])
def test_every_parameter(params):
    assert_same(*random_set(3), "bbox", **params)
    # convzoo's own summary reads AP at the largest maxDets: other lines than pycocotools' for those settings
    assert_same(*random_set(3), "bbox", classes=CONVZOO, summary="maxDets" not in params, **params)


def test_quirk_summary_reads_at_max_dets_100():
    gt, dets = random_set(1)
    assert_same(gt, dets, "bbox", maxDets=[1, 10, 50])
    quirky, _ = run(QUIRKS, gt, dets, "bbox", maxDets=[1, 10, 50])
    ours, _ = run(CONVZOO, gt, dets, "bbox", maxDets=[1, 10, 50])
    assert quirky.stats[0] == -1 and ours.stats[0] > 0  # convzoo reads AP at the largest maxDets, 50
    np.testing.assert_array_equal(quirky.eval["precision"], ours.eval["precision"])
    with pytest.raises(IndexError):  # pycocotools' summarize needs three maxDets
        run(REFERENCE, gt, dets, "bbox", maxDets=[1, 10])
    with pytest.raises(IndexError):
        run(QUIRKS, gt, dets, "bbox", maxDets=[1, 10])
    two, _ = run(CONVZOO, gt, dets, "bbox", maxDets=[1, 10])
    assert two.stats[0] > 0 and two.stats[7] == ours.stats[7]  # AR at 10 is AR at 10
    assert two.stats[8] == two.stats[7]  # the third AR row falls back to the largest maxDets, 10


def test_quirk_keypoints_without_categories_never_match():
    gt, dets = random_set(0, keypoints=5)
    params = {"useCats": 0, "kpt_oks_sigmas": np.full(5, 0.07)}
    assert_same(gt, dets, "keypoints", **params)
    quirky, _ = run(QUIRKS, gt, dets, "keypoints", **params)
    ours, _ = run(CONVZOO, gt, dets, "keypoints", **params)
    assert quirky.stats[0] == 0 and ours.stats[0] > 0


def test_quirk_accumulate_rewrites_cat_ids_and_prepare_mutates():
    gt, dets = random_set(2)
    quirky, _ = run(QUIRKS, gt, dets, "bbox", useCats=0)
    ours, _ = run(CONVZOO, gt, dets, "bbox", useCats=0)
    assert quirky.params.catIds == [-1] and ours.params.catIds == [3, 7, 11, 20]
    assert all("ignore" in a for a in quirky.cocoGt.dataset["annotations"])
    assert not any("ignore" in a for a in ours.cocoGt.dataset["annotations"])


def test_quirk_unsorted_recall_thresholds():
    gt, dets = random_set(4)
    thresholds = np.array([0.0, 0.99, 0.2, 0.5])  # 0.99 is out of reach: pycocotools stops reading there
    assert_same(gt, dets, "bbox", per_image=False, recThrs=thresholds)
    quirky, _ = run(QUIRKS, gt, dets, "bbox", recThrs=thresholds)
    ours, _ = run(CONVZOO, gt, dets, "bbox", recThrs=thresholds)
    assert (quirky.eval["precision"][:, 2:] <= ours.eval["precision"][:, 2:]).all()
    assert (quirky.eval["precision"][:, 2:] < ours.eval["precision"][:, 2:]).any()
    in_order, _ = run(CONVZOO, gt, dets, "bbox", recThrs=np.sort(thresholds))
    np.testing.assert_array_equal(ours.eval["precision"][:, [0, 2, 3, 1]], in_order.eval["precision"])


def test_per_image_methods():
    gt, dets = random_set(0)
    reference, _ = run(REFERENCE, gt, dets, "bbox")
    ours, _ = run(CONVZOO, gt, dets, "bbox")
    for image_id in (100, 103):
        for cat_id in (3, 7):
            np.testing.assert_array_equal(ours.computeIoU(image_id, cat_id), reference.computeIoU(image_id, cat_id))
            mine = ours.evaluateImg(image_id, cat_id, [0, 1e10], 100)
            theirs = reference.evaluateImg(image_id, cat_id, [0, 1e10], 100)
            assert (mine is None) == (theirs is None)
            if theirs is not None:
                for key in theirs:
                    assert_equal_values(mine[key], theirs[key], key)


def test_envelope_read_out_when_the_first_threshold_is_not_zero():
    from convzoo.evaluation.accumulate import _interpolated_precision

    pr = np.array([[0.1, 0.9, 0.2], [0.8, 0.1, 0.3]])
    first = np.array([[1, 2], [2, 3]])  # no row starts at 0; 3 = n: out of reach
    # row 0: max(pr[1:]) = 0.9, max(pr[2:]) = 0.2 (its last piece must not run into row 1's 0.8); row 1: 0.3, 0
    np.testing.assert_array_equal(_interpolated_precision(pr.reshape(-1), np.array([0, 3]), np.array([3, 3]), first),
                                  [[0.9, 0.2], [0.3, 0.0]])


def test_load_res_leaves_the_callers_results_alone():
    gt, dets = random_set(0)
    coco_gt = COCO()
    coco_gt.dataset = gt
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        results = coco_gt.loadRes(dets)
        assert "id" not in dets[0] and results.anns[1]["area"] == dets[0]["bbox"][2] * dets[0]["bbox"][3]
        assert coco_gt.loadRes([]).dataset["annotations"] == []
        assert coco_gt.getImgIds(catIds=[3]) == pycocotools_gt(gt).getImgIds(catIds=[3])
        assert coco_gt.getAnnIds(imgIds=[100], areaRng=[0, 500]) == pycocotools_gt(gt).getAnnIds(
            imgIds=[100], areaRng=[0, 500])


def pycocotools_gt(gt: dict):
    coco = pycocotools.coco.COCO()
    coco.dataset = copy.deepcopy(gt)
    coco.createIndex()
    return coco


DEMO = """
import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
annType = ['segm', 'bbox', 'keypoints'][{kind}]
cocoGt = COCO('{folder}/instances_val2014_100.json')
cocoDt = cocoGt.loadRes('{folder}/instances_val2014_fake' + annType + '100_results.json')
imgIds = sorted(cocoGt.getImgIds())
imgIds = imgIds[0:100]
imgId = imgIds[np.random.randint(100)]
cocoEval = COCOeval(cocoGt, cocoDt, annType)
cocoEval.params.imgIds = imgIds
cocoEval.evaluate()
cocoEval.accumulate()
cocoEval.summarize()
print(type(cocoEval).__module__, repr(cocoEval.stats.tolist()))
"""


@pytest.mark.parametrize("kind", [0, 1])
def test_pycocotools_demo_runs_unchanged(shared_data, kind):
    script = DEMO.format(kind=kind, folder=shared_data / "coco-eval" / "cocoapi_val2014_100")
    prelude = "import convzoo.evaluation\nconvzoo.evaluation.init_as_pycocotools()\n"
    env = {"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "PATH": ""}
    outputs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                              timeout=300).stdout for code in (script, prelude + script)]
    reference, ours = ([line for line in out.splitlines() if "Average" in line or "[" in line] for out in outputs)
    assert reference[:-1] == ours[:-1] and len(reference) == 13
    assert reference[-1].split(" ", 1)[1] == ours[-1].split(" ", 1)[1]  # the statistics, bit for bit
    assert ours[-1].startswith("convzoo.evaluation") and reference[-1].startswith("pycocotools")


@pytest.mark.parametrize("classes", [QUIRKS, CONVZOO])
def test_box_results_from_a_file_are_evaluated_as_columns(tmp_path, classes):
    """loadRes of a file of plain box results keeps them as columns (the compiled reader); COCOeval evaluates those
    and equals pycocotools on the same files, and the dicts, built when first read, are pycocotools' own."""
    pytest.importorskip("convzoo.evaluation._boxjson", reason="convzoo's compiled reader was not built")
    gt, dets = random_set(3)
    gt_path, dets_path = tmp_path / "gt.json", tmp_path / "dets.json"
    gt_path.write_text(json.dumps(gt))
    dets_path.write_text(json.dumps([{k: d[k] for k in ("image_id", "category_id", "bbox", "score")} for d in dets]))
    evaluations = []
    with contextlib.redirect_stdout(io.StringIO()):
        for coco_cls, eval_cls in (REFERENCE, classes):
            coco_gt = coco_cls(str(gt_path))
            results = coco_gt.loadRes(str(dets_path))
            evaluation = eval_cls(coco_gt, results, "bbox")
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
            evaluations.append((evaluation, results))
    (reference, theirs), (ours, mine) = evaluations
    assert mine.pending_boxes is not None  # evaluated without a dict per detection
    for key in ("precision", "recall", "scores"):
        np.testing.assert_array_equal(ours.eval[key], reference.eval[key], err_msg=key)
    np.testing.assert_array_equal(ours.stats, reference.stats)
    for n, (a, b) in enumerate(zip(ours.evalImgs, reference.evalImgs, strict=True)):
        assert (a is None) == (b is None), n
        for key in b or {}:
            assert_equal_values(a[key], b[key], f"evalImgs[{n}][{key!r}]")
    assert mine.anns == theirs.anns and mine.pending_boxes is None  # read: built, as pycocotools builds them
    assert mine.dataset["annotations"] == theirs.dataset["annotations"]
    assert dict(mine.imgToAnns) == dict(theirs.imgToAnns) and dict(mine.catToImgs) == dict(theirs.catToImgs)
    assert mine.getAnnIds(imgIds=[101], areaRng=[0, 500]) == theirs.getAnnIds(imgIds=[101], areaRng=[0, 500])
    dets_path.write_text(json.dumps([{**d, "id": i} for i, d in enumerate(dets)]))  # another member: dicts at once
    with contextlib.redirect_stdout(io.StringIO()):
        assert classes[0](str(gt_path)).loadRes(str(dets_path)).pending_boxes is None
