"""COCO evaluation speed: pycocotools, faster-coco-eval, hotcoco, ultrafast-pycocotools, vernier and convzoo,
side by side in one process.

A synthetic COCO-style set is generated here (default 5,000 images, about 7 objects and 100 detections per image,
80 categories, 1% crowd regions): detections are jittered copies of the ground truth (sometimes with a wrong
category) plus random boxes. Each evaluator gets its own fresh copy of the JSON data (pycocotools mutates it) and is
timed from the in-memory dict/list to the 12 statistics, best of ``--repeat`` rounds with the order of the
evaluators reversed every other round. The statistics must agree exactly. Evaluators that are not installed are
skipped (``pip install -e .[bench]`` installs them all).

    python benchmarks/bench_coco_eval.py                       # bbox, 5,000 images
    python benchmarks/bench_coco_eval.py --iou-type segm --images 1000
    python benchmarks/bench_coco_eval.py --iou-type keypoints --images 5000 --dets 20
    python benchmarks/bench_coco_eval.py --skip pycocotools --repeat 3
    python benchmarks/bench_coco_eval.py --processes --images 3000 --repeat 3   # whole processes, from files

With ``--processes`` every evaluator runs as a fresh Python process per round that reads the two JSON files with
its own loader (``COCO(path)``/``loadRes(path)``; convzoo: ``read_json``, ``read_detections``) and evaluates: the
parent reports the process's CPU time (``getrusage`` of the child: imports, reading, evaluation), its wall time,
and the child's peak resident memory (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from convzoo.evaluation import evaluate_coco


def synthetic_set(images: int, objects: float, dets: int, categories: int, segm: bool, seed: int = 0):
    """A COCO ground-truth dict and a result list; masks are octagons inscribed in the boxes (RLE for results)."""
    rng = np.random.default_rng(seed)
    height, width = 480, 640
    gt_images, anns, results = [], [], []
    for image_id in range(1, images + 1):
        gt_images.append({"id": image_id, "height": height, "width": width, "file_name": f"{image_id}.jpg"})
        n = rng.poisson(objects)
        wh = np.exp(rng.uniform(np.log(8), np.log(400), size=(n, 2)))  # small, medium and large objects
        xy = rng.uniform(0, 1, size=(n, 2)) * np.maximum([width, height] - wh, 1)
        boxes = np.round(np.concatenate([xy, wh], 1), 2)
        cats = rng.integers(1, categories + 1, size=n)
        for box, cat in zip(boxes.tolist(), cats.tolist()):
            crowd = int(rng.uniform() < 0.01)
            ann = {"id": len(anns) + 1, "image_id": image_id, "category_id": cat, "bbox": box, "iscrowd": crowd,
                   "area": box[2] * box[3]}
            if segm:
                rle = mask_utils.frPyObjects([_octagon(box)], height, width)[0]
                ann["area"] = float(mask_utils.area(rle))
                ann["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()} if crowd else [
                    _octagon(box)]
            anns.append(ann)
        copies = rng.integers(1, 6, size=n) if n else np.zeros(0, np.int64)
        jittered = np.repeat(boxes, copies, axis=0) if n else np.zeros((0, 4))
        jittered = jittered * (1 + rng.normal(0, 0.08, size=jittered.shape))
        jcats = np.where(rng.uniform(size=len(jittered)) < 0.9, np.repeat(cats, copies), rng.integers(1, 81, 1))
        extra = max(dets - len(jittered), 0)
        rand_wh = np.exp(rng.uniform(np.log(8), np.log(300), size=(extra, 2)))
        rand_xy = rng.uniform(0, 1, size=(extra, 2)) * ([width, height] - rand_wh)
        all_boxes = np.round(np.concatenate([jittered, np.concatenate([rand_xy, rand_wh], 1)]), 2)
        all_boxes[:, 2:] = np.maximum(all_boxes[:, 2:], 1)
        all_cats = np.concatenate([jcats, rng.integers(1, categories + 1, size=extra)])
        scores = np.round(np.concatenate([rng.uniform(0.2, 1, len(jittered)), rng.uniform(0, 0.8, extra)]), 4)
        for box, cat, score in zip(all_boxes.tolist(), all_cats.tolist(), scores.tolist()):
            result = {"image_id": image_id, "category_id": cat, "score": score}
            if segm:
                rle = mask_utils.frPyObjects([_octagon(box)], height, width)[0]
                result["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
            else:
                result["bbox"] = box
            results.append(result)
    gt = {"images": gt_images, "annotations": anns,
          "categories": [{"id": c, "name": f"class{c}"} for c in range(1, categories + 1)]}
    return gt, results


def synthetic_keypoints(images: int, objects: float, dets: int, seed: int = 0):
    """A person-keypoint set: boxes as above, 17 keypoints inside each (20% unlabelled, num_keypoints counts the
    rest), 1-3 detections per person with keypoints jittered by 5% of the box plus random poses, ``dets`` per image."""
    rng = np.random.default_rng(seed)
    height, width = 480, 640
    gt_images, anns, results = [], [], []
    for image_id in range(1, images + 1):
        gt_images.append({"id": image_id, "height": height, "width": width, "file_name": f"{image_id}.jpg"})
        n = rng.poisson(objects)
        wh = np.exp(rng.uniform(np.log(16), np.log(400), size=(n, 2)))
        xy = rng.uniform(0, 1, size=(n, 2)) * np.maximum([width, height] - wh, 1)
        points = xy[:, None] + rng.uniform(0, 1, size=(n, 17, 2)) * wh[:, None]
        visible = rng.uniform(size=(n, 17)) < 0.8
        for i in range(n):
            kpts = np.concatenate([np.where(visible[i, :, None], np.round(points[i], 2), 0),
                                   2 * visible[i, :, None]], axis=1)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                         "bbox": np.round(np.r_[xy[i], wh[i]], 2).tolist(),
                         "area": float(np.round(wh[i].prod() * 0.6, 2)),
                         "keypoints": kpts.reshape(-1).tolist(), "num_keypoints": int(visible[i].sum())})
        copies = rng.integers(1, 4, size=n)
        jittered = np.repeat(points, copies, axis=0) if n else np.zeros((0, 17, 2))
        jittered = jittered + rng.normal(0, 0.05, size=jittered.shape) * np.repeat(wh, copies, axis=0)[:, None]
        extra = max(dets - len(jittered), 0)
        rand_wh = np.exp(rng.uniform(np.log(16), np.log(300), size=(extra, 2)))
        rand_xy = rng.uniform(0, 1, size=(extra, 2)) * ([width, height] - rand_wh)
        poses = np.concatenate([jittered, rand_xy[:, None] + rng.uniform(0, 1, size=(extra, 17, 2)) * rand_wh[:, None]])
        scores = np.round(np.concatenate([rng.uniform(0.2, 1, len(jittered)), rng.uniform(0, 0.8, extra)]), 4)
        for pose, score in zip(np.round(poses, 2), scores.tolist()):
            kpts = np.concatenate([pose, np.ones((17, 1))], axis=1).reshape(-1).tolist()
            results.append({"image_id": image_id, "category_id": 1, "keypoints": kpts, "score": score})
    gt = {"images": gt_images, "annotations": anns, "categories": [{"id": 1, "name": "person",
                                                                    "keypoints": [f"k{i}" for i in range(17)]}]}
    return gt, results


def _octagon(box: list[float]) -> list[float]:
    x, y, w, h = box
    cx, cy = [x, x + w / 3, x + 2 * w / 3, x + w], [y, y + h / 3, y + 2 * h / 3, y + h]
    points = [(cx[1], cy[0]), (cx[2], cy[0]), (cx[3], cy[1]), (cx[3], cy[2]),
              (cx[2], cy[3]), (cx[1], cy[3]), (cx[0], cy[2]), (cx[0], cy[1])]
    return [v for p in points for v in p]


def run_pycocotools(gt: dict, dets: list, iou_type: str) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(dets), iou_type)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval.stats.tolist()


def run_faster_coco_eval(gt: dict, dets: list, iou_type: str) -> list[float]:
    from faster_coco_eval import COCO, COCOeval_faster

    coco_gt = COCO(gt)
    coco_eval = COCOeval_faster(coco_gt, coco_gt.loadRes(dets), iou_type, print_function=lambda *a: None,
                                rle_iou_max_workers=1)
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    return coco_eval.stats.tolist()[:12]


def _pycocotools_api(coco_cls, eval_cls, gt: dict, dets: list, iou_type: str) -> list[float]:
    """An evaluator with pycocotools' API, quietly."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco_cls()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_eval = eval_cls(coco_gt, coco_gt.loadRes(dets), iou_type)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return list(coco_eval.stats)[:12]


def run_hotcoco(gt: dict, dets: list, iou_type: str) -> list[float]:
    from hotcoco import COCO, COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt)
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(dets), iou_type)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return list(coco_eval.stats)[:12]


def run_ultrafast(gt: dict, dets: list, iou_type: str) -> list[float]:
    from ultrafast_pycocotools import COCO, COCOeval

    return _pycocotools_api(COCO, COCOeval, gt, dets, iou_type)


def run_vernier(gt: dict, dets: list, iou_type: str) -> list[float]:
    from pycocotools.coco import COCO
    from vernier import COCOeval

    return _pycocotools_api(COCO, COCOeval, gt, dets, iou_type)


def run_convzoo_cocoeval(gt: dict, dets: list, iou_type: str) -> list[float]:
    from convzoo.evaluation import COCO, COCOeval

    return _pycocotools_api(COCO, COCOeval, gt, dets, iou_type)


def run_convzoo(gt: dict, dets: list, iou_type: str) -> list[float]:
    from convzoo.cli.eval_detections import available_cores

    # as eval-detections runs by default: one thread per core (the Rust evaluators use every core too)
    return evaluate_coco(gt, dets, iou_type, threads=available_cores()).stats_list


def load_pycocotools_api(coco_cls, gt_path: str, dets_path: str):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco_cls(gt_path)
        return coco_gt, coco_gt.loadRes(dets_path)


def child(name: str, gt_path: str, dets_path: str, iou_type: str) -> list[float]:
    """One evaluator from the files, as a user would call it."""
    with contextlib.redirect_stdout(io.StringIO()):
        if name == "convzoo":
            from convzoo.cli.eval_detections import available_cores
            from convzoo.evaluation import parse_ground_truth, read_detections, read_json
            from convzoo.evaluation.reading import start_reading

            # as eval-detections runs by default: the results read beside the ground truth, one thread per core
            started = start_reading(dets_path, iou_type)
            gt = parse_ground_truth(read_json(gt_path), iou_type)
            dets = read_detections(dets_path, gt, iou_type, started)
            return evaluate_coco(gt, dets, iou_type, threads=available_cores()).stats_list
        if name == "faster-coco-eval":
            from faster_coco_eval import COCO, COCOeval_faster

            coco_gt = COCO(gt_path)
            coco_eval = COCOeval_faster(coco_gt, coco_gt.loadRes(dets_path), iou_type,
                                        print_function=lambda *a: None, rle_iou_max_workers=1)
        else:
            module = {"pycocotools": "pycocotools.coco", "hotcoco": "hotcoco", "vernier": "pycocotools.coco",
                      "ultrafast-pycocotools": "ultrafast_pycocotools", "convzoo COCOeval": "convzoo.evaluation"}[name]
            coco_cls = importlib.import_module(module).COCO
            eval_module = {"pycocotools": "pycocotools.cocoeval", "vernier": "vernier"}.get(name, module)
            eval_cls = importlib.import_module(eval_module).COCOeval
            coco_gt, coco_dt = load_pycocotools_api(coco_cls, gt_path, dets_path)
            coco_eval = eval_cls(coco_gt, coco_dt, iou_type)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return [float(v) for v in list(coco_eval.stats)[:12]]


def data_files(args) -> tuple[Path, Path]:
    folder = Path(args.data_dir or tempfile.mkdtemp(prefix="bench_coco_"))
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{args.iou_type}_{args.images}_{args.dets}"
    return folder / f"gt_{stem}.json", folder / f"dets_{stem}.json"


def run_processes(names: list, gt: dict, dets: list, args) -> tuple[dict, dict, dict]:
    """Each evaluator as a fresh process per round: CPU (the child's getrusage), wall, peak RSS, statistics."""
    gt_path, dets_path = data_files(args)
    if gt is not None:
        gt_path.write_text(json.dumps(gt))
        dets_path.write_text(json.dumps(dets))
        # Linux keeps a process's peak RSS across fork and exec, so a child of this process (which holds the
        # generated set) would report at least this process's peak: measure from a fresh parent on the files
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, __file__, *sys.argv[1:], "--data-dir", str(gt_path.parent)])
    del gt, dets
    times, stats, memory = {}, {}, {}
    for round_ in range(args.repeat):
        for name in list(names) if round_ % 2 == 0 else names[::-1]:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall = time.perf_counter()
            out = subprocess.run([sys.executable, __file__, "--child", name, "--gt-file", str(gt_path), "--dets-file",
                                  str(dets_path), "--iou-type", args.iou_type], capture_output=True, text=True,
                                 env={**os.environ, "OMP_NUM_THREADS": "1"})
            wall = time.perf_counter() - wall
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if out.returncode:
                print(f"{name:>22}: failed: {out.stderr.strip().splitlines()[-1][:100]}")
                names.remove(name)
                continue
            result = json.loads(out.stdout.strip().splitlines()[-1])
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            stats[name], memory[name] = result["stats"], max(memory.get(name, 0), result["maxrss_mb"])
            times[name] = tuple(min(a, b) for a, b in zip(times.get(name, (wall, cpu)), (wall, cpu)))
            print(f"{name:>22}: {wall:8.2f} s wall {cpu:8.2f} s CPU {result['maxrss_mb']:8.0f} MB   "
                  f"AP {stats[name][0]:.6f}")
    return times, stats, memory


RUNNERS = {"pycocotools": (run_pycocotools, "pycocotools"), "faster-coco-eval": (run_faster_coco_eval,
           "faster_coco_eval"), "hotcoco": (run_hotcoco, "hotcoco"), "ultrafast-pycocotools": (run_ultrafast,
           "ultrafast_pycocotools"), "vernier": (run_vernier, "vernier"),
           "convzoo COCOeval": (run_convzoo_cocoeval, "convzoo"), "convzoo": (run_convzoo, "convzoo")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--objects", type=float, default=7.0, help="mean ground-truth objects per image")
    parser.add_argument("--dets", type=int, default=100, help="detections per image")
    parser.add_argument("--categories", type=int, default=80)
    parser.add_argument("--iou-type", choices=("bbox", "segm", "keypoints"), default="bbox")
    parser.add_argument("--skip", nargs="*", default=[], help=f"evaluators to skip, of: {', '.join(RUNNERS)}")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the best time of each evaluator is kept")
    parser.add_argument("--processes", action="store_true",
                        help="whole processes from JSON files: CPU, wall and peak memory of each")
    parser.add_argument("--data-dir", default=None, help="--processes: where the JSON files are (kept and reused)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--gt-file", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--dets-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        values = child(args.child, args.gt_file, args.dets_file, args.iou_type)
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        print(json.dumps({"stats": values, "maxrss_mb": maxrss}))
        return
    if args.processes and args.data_dir and all(p.exists() for p in data_files(args)):
        gt = dets = None  # the files of an earlier run
        print(f"{args.iou_type}: {args.images} images from {args.data_dir}")
    elif args.iou_type == "keypoints":
        gt, dets = synthetic_keypoints(args.images, args.objects, args.dets)
    else:
        gt, dets = synthetic_set(args.images, args.objects, args.dets, args.categories, args.iou_type == "segm")
    if gt is not None:
        print(f"{args.iou_type}: {len(gt['images'])} images, {len(gt['annotations'])} ground truths, "
              f"{len(dets)} detections, {args.categories} categories")
    names = []
    for name, (_, module) in RUNNERS.items():
        if name in args.skip:
            continue
        if importlib.util.find_spec(module) is None:
            print(f"{name} is not installed (pip install {name}): skipped")
            continue
        names.append(name)
    if args.processes:
        times, stats, memory = run_processes(names, gt, dets, args)
        report(times, stats, args.repeat, memory)
        return
    gt_text, dets_text = json.dumps(gt), json.dumps(dets)
    del gt, dets
    times: dict = {}
    stats: dict = {}
    for round_ in range(args.repeat):
        for name in list(names) if round_ % 2 == 0 else names[::-1]:  # alternate the order: no one always goes first
            fresh_gt, fresh_dets = json.loads(gt_text), json.loads(dets_text)  # each evaluator mutates its copy
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                stats[name] = [float(v) for v in RUNNERS[name][0](fresh_gt, fresh_dets, args.iou_type)]
            except Exception as error:  # noqa: BLE001 (a peer that fails is reported and dropped, not fatal)
                print(f"{name:>22}: failed: {type(error).__name__}: {str(error)[:100]}")
                names.remove(name)
                continue
            took = (time.perf_counter() - wall, time.process_time() - cpu)
            times[name] = tuple(min(a, b) for a, b in zip(times.get(name, took), took))
            print(f"{name:>22}: {took[0]:8.2f} s wall {took[1]:8.2f} s CPU   AP {stats[name][0]:.6f}")
    report(times, stats, args.repeat)


def report(times: dict, stats: dict, repeat: int, memory: dict | None = None) -> None:
    print(f"best of {repeat}:")
    for name, (wall, cpu) in sorted(times.items(), key=lambda item: item[1][1]):
        size = min(len(stats[name]), len(stats.get("convzoo", [])))  # faster-coco-eval appends its own numbers
        diff = np.abs(np.subtract(stats[name][:size], stats["convzoo"][:size])).max() if size else float("nan")
        peak = f" {memory[name]:8.0f} MB peak" if memory else ""
        print(f"{name:>22}: {wall:8.2f} s wall {cpu:8.2f} s CPU{peak}   max |stat diff| vs convzoo {diff:.3g}")


if __name__ == "__main__":
    main()
