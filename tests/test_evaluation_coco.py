"""COCO evaluation against pycocotools: the reference fixtures (README values) and randomized sets, to 1e-9."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from convzoo.evaluation import evaluate_coco, read_json
from convzoo.evaluation.cocoeval import KEYPOINT_SIGMAS

# Expected statistics from ../shared/data/coco-eval/README.txt (pycocotools 2.0.11 on these files).
FAKE_BBOX = [0.5045806987249628, 0.6969727247299577, 0.5729816669904824, 0.5856257209410443, 0.5193996948036719,
             0.5013978986347466, 0.38681277964578054, 0.5936795762842003, 0.595352982877607, 0.6398109626113442,
             0.5664205978994309, 0.5642905982905982]
FAKE_SEGM = [0.3195452758576433, 0.5622883972521636, 0.29892653412086784, 0.3873740315997837, 0.31018272403369485,
             0.3269339071005138, 0.2682297225711534, 0.41544868114906375, 0.4168394992198818, 0.4694498622754236,
             0.37675922666197265, 0.3814715099715099]
KEYPOINTS_1IMG = [0.5048844884488449, 0.7227722772277227, 0.6336633663366337, 0.46633663366336636, 0.7504950495049505,
                  0.5181818181818182, 0.7272727272727273, 0.6363636363636364, 0.4666666666666666, 0.75]
VARIANT_BBOX = [0.503647, 0.696973, 0.571667, 0.593252, 0.557991, 0.489363, 0.386813, 0.593680, 0.595353, 0.654764,
                0.603130, 0.553744]
MMPOSE_BBOX = [0.7891, 0.9824, 0.9824, 0.6505, 0.7666, 0.8722, 0.2786, 0.8286, 0.8429, 0.65, 0.82, 0.9143]


def pycocotools_eval(gt: dict, dets: list, iou_type: str, **params) -> COCOeval:
    """pycocotools on private copies (it mutates its inputs), quietly."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(dets)), iou_type)
        for key, value in params.items():
            setattr(coco_eval.params, key, value)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval


def assert_same(gt: dict, dets: list, iou_type: str, **params) -> None:
    reference = pycocotools_eval(gt, dets, iou_type, **params)
    ours = evaluate_coco(gt, dets, iou_type, image_ids=params.get("imgIds"), category_ids=params.get("catIds"),
                         use_categories=bool(params.get("useCats", 1)))
    np.testing.assert_allclose(ours.stats_list, reference.stats, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.recall, reference.eval["recall"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.precision, reference.eval["precision"], rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def coco_eval_dir(shared_data):
    return shared_data / "coco-eval"


@pytest.mark.parametrize(("iou_type", "expected"), [("bbox", FAKE_BBOX), ("segm", FAKE_SEGM)])
def test_cocoapi_fake_results(coco_eval_dir, iou_type, expected):
    folder = coco_eval_dir / "cocoapi_val2014_100"
    gt = read_json(folder / "instances_val2014_100.json")
    dets = read_json(folder / f"instances_val2014_fake{iou_type}100_results.json")
    result = evaluate_coco(gt, dets, iou_type)
    assert list(result.stats) == ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm",
                                  "ARl"]
    np.testing.assert_allclose(result.stats_list, expected, rtol=0, atol=1e-9)
    assert result.counts["detections"] == len(dets)


def test_bbox_area_variant(coco_eval_dir):
    folder = coco_eval_dir / "cocoapi_val2014_100" / "variant_bbox_area"
    gt = read_json(folder / "sampled_gts_bbox_area.json")
    dets = read_json(folder / "sampled_bbox_results.json")["annotations"]
    np.testing.assert_allclose(evaluate_coco(gt, dets).stats_list, VARIANT_BBOX, atol=1e-6)
    assert_same(gt, dets, "bbox")


def test_keypoints_one_image(coco_eval_dir):
    gt = read_json(coco_eval_dir / "keypoints_1img" / "gt_dataset.json")
    dets = read_json(coco_eval_dir / "keypoints_1img" / "dt_dataset.json")
    result = evaluate_coco(gt, dets, "keypoints")
    assert list(result.stats) == ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
    np.testing.assert_allclose(result.stats_list, KEYPOINTS_1IMG, rtol=0, atol=1e-9)


def test_mmpose_boxes_and_keypoints(coco_eval_dir):
    gt = read_json(coco_eval_dir / "mmpose_coco4" / "test_coco.json")
    boxes = read_json(coco_eval_dir / "mmpose_coco4" / "test_coco_det_AP_H_56.json")
    np.testing.assert_allclose(evaluate_coco(gt, boxes).stats_list, MMPOSE_BBOX, atol=1e-4)
    assert_same(gt, boxes, "bbox")
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": a["keypoints"], "score": 1.0}
               for a in gt["annotations"] if a["num_keypoints"] > 0]  # people without keypoints are ignored
    assert evaluate_coco(gt, perfect, "keypoints").stats_list == [1.0] * 10
    assert_same(gt, perfect, "keypoints")
    with_unlabelled = perfect + [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"],
                                  "score": 1.0} for a in gt["annotations"] if a["num_keypoints"] == 0]
    assert_same(gt, with_unlabelled, "keypoints")  # all-zero keypoints: false positives, AP 0.894 in pycocotools


def random_set(seed: int, images: int = 12, categories: int = 4, segm: bool = False, keypoints: int = 0):
    """Ground truth and perturbed-ground-truth detections with the awkward cases: empty images, images without
    detections, a category only in the ground truth and one only in the detections, crowds, score and IoU ties,
    more than 100 detections in one (image, category), boxes on a coarse grid."""
    rng = np.random.default_rng(seed)
    size = 200
    cats = [{"id": c, "name": f"c{c}"} for c in (3, 7, 11, 20)[:categories]]
    gt = {"images": [{"id": 100 + i, "height": size, "width": size} for i in range(images)], "annotations": [],
          "categories": cats}
    dets = []
    for i in range(images):
        if i % 5 == 4:
            continue  # an image without ground truth (it still gets detections below)
        for _ in range(rng.integers(0, 8)):
            x, y = rng.integers(0, 80, 2).tolist()
            w, h = rng.integers(2, 41, 2).tolist() if rng.uniform() < 0.7 else rng.integers(40, 160, 2).tolist()
            w, h = min(w, size - x), min(h, size - y)
            cat = cats[int(rng.integers(0, categories - 1))]["id"]  # the last category never has ground truth
            crowd = int(rng.uniform() < 0.1)
            ann = {"id": len(gt["annotations"]) + 1, "image_id": 100 + i, "category_id": cat, "iscrowd": crowd,
                   "bbox": [x, y, w, h], "area": float(w * h) * (0.5 if rng.uniform() < 0.3 else 1.0)}
            if segm:
                poly = [x, y, x + w, y, x + w, y + h, x + w / 2, y + h / 2, x, y + h]
                if crowd:
                    rle = mask_utils.merge(mask_utils.frPyObjects([poly], size, size))
                    ann["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
                else:
                    ann["segmentation"] = [poly]
            if keypoints:
                pts = np.stack([rng.uniform(x, x + w, keypoints), rng.uniform(y, y + h, keypoints),
                                rng.integers(0, 3, keypoints)], 1)
                pts[pts[:, 2] == 0] = 0
                ann["keypoints"] = pts.reshape(-1).tolist()
                ann["num_keypoints"] = int((pts[:, 2] > 0).sum())
            gt["annotations"].append(ann)
    for ann in gt["annotations"]:
        if ann["image_id"] % 7 == 3:
            continue  # images without detections
        for _ in range(rng.integers(0, 4)):
            x, y, w, h = (np.asarray(ann["bbox"]) + rng.integers(-3, 4, 4)).clip(1).tolist()
            det = {"image_id": ann["image_id"], "category_id": ann["category_id"], "bbox": [x, y, w, h],
                   "score": float(rng.choice([0.3, 0.5, 0.9, rng.uniform()]))}
            if keypoints:
                kp = np.asarray(ann["keypoints"], dtype=float).reshape(-1, 3) + rng.normal(0, 2, (keypoints, 3))
                det["keypoints"] = kp.reshape(-1).tolist()
                del det["bbox"]
            dets.append(det)
    for i in range(images):
        for _ in range(rng.integers(0, 6)):  # false positives, some in the category without ground truth
            x, y = rng.integers(0, 100, 2).tolist()
            det = {"image_id": 100 + i, "category_id": cats[int(rng.integers(0, categories))]["id"],
                   "bbox": [x, y, int(rng.integers(1, 40)), int(rng.integers(1, 40))], "score": float(rng.uniform())}
            if keypoints:
                det["keypoints"] = np.stack([rng.uniform(0, size, keypoints), rng.uniform(0, size, keypoints),
                                             np.ones(keypoints)], 1).reshape(-1).tolist()
                del det["bbox"]
            dets.append(det)
    rng.shuffle(dets)
    if segm:
        for det in dets:
            x, y, w, h = det.pop("bbox")
            rle = mask_utils.frPyObjects([[x, y, x + w, y, x + w, y + h, x, y + h]], size, size)[0]
            det["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
    return gt, dets


@pytest.mark.parametrize("seed", range(8))
def test_random_bbox_matches_pycocotools(seed):
    gt, dets = random_set(seed)
    assert_same(gt, dets, "bbox")


def test_more_than_max_dets_and_ties():
    gt, dets = random_set(100, images=3)
    ann = gt["annotations"][0]
    crowd_of_dets = [{"image_id": ann["image_id"], "category_id": ann["category_id"], "score": 0.5,
                      "bbox": [ann["bbox"][0] + i % 5, ann["bbox"][1], ann["bbox"][2], ann["bbox"][3]]}
                     for i in range(130)]  # identical scores, identical IoUs, beyond 100 per (image, category)
    result = evaluate_coco(gt, dets + crowd_of_dets)
    assert result.counts["detections_beyond_max_dets"] >= 30
    assert_same(gt, dets + crowd_of_dets, "bbox")


@pytest.mark.parametrize("seed", range(3))
def test_random_segm_matches_pycocotools(seed):
    gt, dets = random_set(seed, segm=True)
    assert_same(gt, dets, "segm")
    assert_same(gt, dets, "bbox")  # boxes of the masks (pycocotools' toBbox)


def test_segm_results_with_boxes_take_the_box_area():
    gt, dets = random_set(7, segm=True)
    for det in dets:
        det["bbox"] = [float(v) for v in mask_utils.toBbox(det["segmentation"])]
        det["bbox"][2] *= 0.5  # loadRes then measures area as w * h, not as the mask's area
    assert_same(gt, dets, "segm")


@pytest.mark.parametrize("seed", range(3))
def test_random_keypoints_match_pycocotools(seed):
    gt, dets = random_set(seed, categories=2, keypoints=len(KEYPOINT_SIGMAS))
    assert_same(gt, dets, "keypoints")


def test_custom_sigmas_change_oks():
    gt, dets = random_set(1, categories=2, keypoints=4)
    sigmas = np.array([0.5, 0.5, 0.5, 0.5])
    reference = pycocotools_eval(gt, dets, "keypoints", kpt_oks_sigmas=sigmas)
    ours = evaluate_coco(gt, dets, "keypoints", kpt_sigmas=sigmas)
    np.testing.assert_allclose(ours.stats_list, reference.stats, atol=1e-9)


def test_subsets_and_class_agnostic():
    gt, dets = random_set(5)
    assert_same(gt, dets, "bbox", imgIds=[100, 101, 103, 108])
    assert_same(gt, dets, "bbox", catIds=[7, 20])
    assert_same(gt, dets, "bbox", useCats=0)


def test_category_without_detections():
    gt, dets = random_set(6)
    dets = [d for d in dets if d["category_id"] != 7]  # 7 has ground truth but no detection: AP 0 there
    assert_same(gt, dets, "bbox")
    assert evaluate_coco(gt, dets).per_category_ap()[7] == 0.0


def test_ground_truth_id_zero_reads_as_unmatched():
    gt, dets = random_set(2)
    for ann in gt["annotations"]:
        ann["id"] -= 1  # ids from 0, as some converters write them
    assert_same(gt, dets, "bbox")


def test_no_detections_gives_zero_and_no_ground_truth_gives_minus_one():
    gt, _ = random_set(3)
    result = evaluate_coco(gt, [])
    assert result.stats["AP"] == 0.0 and result.stats["AR100"] == 0.0
    empty = {"images": gt["images"], "annotations": [], "categories": gt["categories"]}
    dets = [{"image_id": 100, "category_id": 3, "bbox": [1, 1, 5, 5], "score": 0.9}]
    assert evaluate_coco(empty, dets).stats_list == [-1.0] * 12


def test_in_memory_and_file_entry_points_agree(tmp_path):
    gt, dets = random_set(4)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    from_files = evaluate_coco(read_json(tmp_path / "gt.json"), read_json(tmp_path / "dets.json"))
    assert from_files.stats == evaluate_coco(gt, dets).stats
    assert set(from_files.per_category_ap()) == {3, 7, 11, 20}
    assert from_files.per_category_ap()[20] == -1.0  # the category without ground truth
