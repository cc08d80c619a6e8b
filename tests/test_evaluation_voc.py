"""VOC AP: hand-computed curves, the toy case's published values, and the 100-image VOC2012 sample's mAP."""

from __future__ import annotations

import numpy as np
import pytest

from convzoo.evaluation import evaluate_voc, read_voc_folder, read_voc_xml, voc_ap, voc_class_ap

# ../shared/data/voc2012-sample100/README.txt, a) and b).
TOY_11_POINT = {0.1: 0.3333333333, 0.3: 0.2683982683, 0.5: 0.0303030303, 0.75: 0.0}
TOY_ALL_POINT = {0.1: 0.3371980676, 0.3: 0.2456866804, 0.5: 0.0222222222, 0.75: 0.0}
SAMPLE100_AP = {"aeroplane": 84.08, "bicycle": 86.00, "bird": 47.35, "boat": 40.91, "bottle": 48.40, "bus": 92.86,
                "car": 24.50, "cat": 100.00, "chair": 33.95, "cow": 78.76, "diningtable": 25.00, "dog": 51.73,
                "horse": 97.62, "motorbike": 26.67, "person": 37.06, "pottedplant": 64.29, "sheep": 62.50,
                "sofa": 70.83, "train": 75.00, "tvmonitor": 80.25}


def test_voc_ap_by_hand():
    # Ranked: TP, FP, TP with 2 positives -> recall (.5, .5, 1), precision (1, .5, 2/3).
    recall, precision = np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])
    # All-point: envelope (1, 2/3, 2/3): 0.5 * 1 + 0.5 * 2/3.
    assert voc_ap(recall, precision) == pytest.approx(0.5 + 1 / 3, abs=1e-15)
    # 11-point: r = 0..0.5 -> max precision 1 (6 points), r = 0.6..1 -> 2/3 (5 points).
    assert voc_ap(recall, precision, use_07_metric=True) == pytest.approx((6 + 5 * 2 / 3) / 11, abs=1e-15)
    assert voc_ap(np.zeros(0), np.zeros(0)) == 0.0


def test_voc_iou_is_strictly_the_best_box():
    # One ground truth taken by the first detection; the second detection overlaps it best -> false positive
    # even though it also overlaps an untaken box (the devkit does not fall back to the second best).
    gt = np.array([[0, 0, 9, 9], [5, 0, 14, 9]], dtype=float)
    dets = np.array([[0, 0, 9, 9], [1, 0, 10, 9]], dtype=float)
    ap, recall, precision = voc_class_ap(np.zeros(2, int), gt, np.zeros(2, bool), np.zeros(2, int), dets,
                                         np.array([0.9, 0.8]))
    np.testing.assert_array_equal(recall, [0.5, 0.5])
    np.testing.assert_array_equal(precision, [1.0, 0.5])
    # A detection on a difficult box counts neither way, and the box is not a positive.
    ap, recall, precision = voc_class_ap(np.zeros(2, int), gt, np.array([True, False]), np.zeros(2, int), dets,
                                         np.array([0.9, 0.8]))
    np.testing.assert_array_equal(recall, [0.0, 0.0])
    assert ap == 0.0


def _toy(folder):
    gi, gb, di, db, ds = [], [], [], [], []
    for i, path in enumerate(sorted((folder / "gts").glob("*.txt"))):
        for line in path.read_text().splitlines():
            _, *xywh = line.split()
            x, y, w, h = map(float, xywh)
            gi.append(i)
            gb.append([x, y, x + w, y + h])
        for line in (folder / "dets" / path.name).read_text().splitlines():
            _, score, *xywh = line.split()
            x, y, w, h = map(float, xywh)
            di.append(i)
            db.append([x, y, x + w, y + h])
            ds.append(float(score))
    return np.array(gi), np.array(gb), np.zeros(len(gi), bool), np.array(di), np.array(db), np.array(ds)


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5, 0.75])
def test_toy_case(shared_data, threshold):
    case = _toy(shared_data / "voc2012-sample100" / "toy_case_1")
    # The toy case's published values use the devkit's inclusive-pixel widths (x2 - x1 + 1).
    eleven = voc_class_ap(*case, iou_threshold=threshold, use_07_metric=True, plus_one=True)[0]
    every = voc_class_ap(*case, iou_threshold=threshold, use_07_metric=False, plus_one=True)[0]
    assert eleven == pytest.approx(TOY_11_POINT[threshold], abs=1e-10)  # the README prints 10 digits
    assert every == pytest.approx(TOY_ALL_POINT[threshold], abs=1e-10)


def sample100(root):
    """The sample's ground truth and detections, both in continuous coordinates: the detection files are written
    like the XML (1-based inclusive pixels), so ``(xmin, ymin, xmax, ymax)`` becomes ``(xmin - 1, ymin - 1, ...)``."""
    gt = read_voc_folder(root / "Annotations")
    dets = []
    for path in sorted((root / "detections_xyxy").glob("*.txt")):
        for line in path.read_text().splitlines():
            label, score, x1, y1, x2, y2 = line.split()
            x1, y1, x2, y2 = float(x1) - 1, float(y1) - 1, float(x2), float(y2)
            dets.append({"image_id": path.stem, "category_id": int(label) + 1, "score": float(score),
                         "bbox": [x1, y1, x2 - x1, y2 - y1]})
    return gt, dets


def test_voc2012_sample100(shared_data):
    root = shared_data / "voc2012-sample100"
    gt, dets = sample100(root)
    assert len(gt["images"]) == 100 and len(gt["annotations"]) == 273
    assert sum(a["difficult"] for a in gt["annotations"]) == 38
    result = evaluate_voc(gt, dets)
    assert result.mean_ap == pytest.approx(0.6139, abs=0.01)
    assert result.num_positives["person"] == 80 and result.num_positives["diningtable"] == 4
    for name, ap in SAMPLE100_AP.items():
        assert result.ap[name] * 100 == pytest.approx(ap, abs=0.01), name
    assert 0 < evaluate_voc(gt, dets, use_07_metric=True).mean_ap < 1


def test_read_voc_xml_rejects_broken_files(tmp_path):
    (tmp_path / "a.xml").write_text("<annotation><size><width>5</width><height>5</height></size>"
                                    "<object><name>cat</name><bndbox><xmin>3</xmin><ymin>1</ymin><xmax>2</xmax>"
                                    "<ymax>4</ymax></bndbox></object></annotation>")
    with pytest.raises(ValueError, match="object 0 .cat. has xmax < xmin"):
        read_voc_xml(tmp_path / "a.xml")
    (tmp_path / "a.xml").write_text("<annotation><object>")
    with pytest.raises(ValueError, match="is not VOC XML"):
        read_voc_xml(tmp_path / "a.xml")
