"""Segmentation data: shapes-seg from the detection shapes, the VOC and plain folder layouts, COCO instances as label
maps (coco128), joint augmentation that keeps image and mask aligned, and one clear line for each bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from convzoo.data.detection_shapes import ShapesDataset
from convzoo.data.segmentation import ShapesSegmentation, instances_to_labels, load_segmentation_data
from convzoo.data.segmentation_files import VOC_PALETTE, read_label_map, write_palette_png
from convzoo.data.segmentation_transforms import collate_segmentation, segmentation_augmentation, segmentation_resize


def test_voc_palette_is_the_devkits():
    assert VOC_PALETTE[0].tolist() == [0, 0, 0] and VOC_PALETTE[1].tolist() == [128, 0, 0]
    assert VOC_PALETTE[15].tolist() == [192, 128, 128] and VOC_PALETTE[255].tolist() == [224, 224, 192]


def test_shapes_seg_paints_the_detection_masks_with_their_labels():
    shapes = ShapesSegmentation(3, size=64, seed=5)
    detection = ShapesDataset(3, size=64, seed=5, min_radius=8.0, max_radius=13.0)
    for index in range(3):
        image, labels = shapes[index]
        same_image, target = detection[index]
        assert torch.equal(image, same_image) and labels.dtype == torch.int64 and labels.shape == (64, 64)
        for mask, label in zip(target["masks"], target["labels"]):
            assert (labels[mask.bool()] == label).all()
        assert (labels[target["masks"].sum(0) == 0] == 0).all()
    assert shapes.classes == ("background", "circle", "rectangle", "triangle")


def test_instances_to_labels_small_on_top_and_crowd_ignored():
    masks = torch.zeros(3, 4, 4, dtype=torch.uint8)
    masks[0, :3, :3] = 1  # large, class 1
    masks[1, 1, 1] = 1  # small, class 2, inside the large one
    masks[2, 3, :] = 1  # crowd region
    labels = instances_to_labels(masks, torch.tensor([1, 2, 5]), (4, 4), torch.tensor([False, False, True]))
    assert labels.tolist() == [[1, 1, 1, 0], [1, 2, 1, 0], [1, 1, 1, 0], [255, 255, 255, 255]]


def _image(path, size=(6, 4)):  # size (width, height)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def _voc(root, masks: dict[str, torch.Tensor]):
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    for stem, labels in masks.items():
        _image(root / "JPEGImages" / f"{stem}.jpg", (labels.shape[1], labels.shape[0]))
        write_palette_png(labels, root / "SegmentationClass" / f"{stem}.png")
    return root


def test_voc_layout_reads_palette_pngs_and_their_void_label(tmp_path):
    labels = torch.tensor([[0, 15, 15, 255, 1, 0]] * 4)
    root = _voc(tmp_path / "voc", {f"{i:03d}": labels for i in range(10)})
    train, dev = (load_segmentation_data(f"seg:{root}", split) for split in ("train", "dev"))
    assert (len(train), len(dev)) == (9, 1) and len(train.classes) == 21 and train.classes[15] == "person"
    image, read = dev[0]
    assert image.shape == (3, 4, 6) and torch.equal(read, labels)
    # an RGB colour mask maps through the palette (VOC's void colour -> 255)
    Image.fromarray(VOC_PALETTE[labels.numpy()]).save(tmp_path / "colour.png")
    assert torch.equal(read_label_map(tmp_path / "colour.png", 21, palette=True), labels)
    # ImageSets/Segmentation lists decide the splits when present
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("000\n001\n")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("002\n")
    assert len(load_segmentation_data(f"seg:{root}", "train")) == 2


def test_plain_layout_integer_masks_classes_file_or_largest_label(tmp_path):
    root = tmp_path / "plain"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(4):
        _image(root / "images" / f"p{i}.png")
        Image.fromarray(np.full((4, 6), i, dtype=np.uint8)).save(root / "masks" / f"p{i}.png")
    train = load_segmentation_data(f"seg:{root}", "train")
    assert train.classes == ["0", "1", "2", "3"] and len(train) == 3
    (root / "classes.txt").write_text("sky\nroad\ncar\nperson\ntree\n")
    assert load_segmentation_data(f"seg:{root}", "dev").classes[4] == "tree"


@pytest.mark.parametrize("case, message", [
    ("size", r"p0.png: mask size 5x4 differs from its image .*p0.png \(6x4"),
    ("labels", r"p0.png: label value 7 is beyond the 3 classes \(0..2\) and is not the ignore value 255"),
    ("missing", r"missing mask file .*masks/p0.png"),
])
def test_bad_plain_masks_are_one_line_naming_the_file(tmp_path, case, message):
    root = tmp_path / "bad"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("a\nb\nc\n")
    for i in range(2):
        _image(root / "images" / f"p{i}.png")
        Image.fromarray(np.zeros((4, 6), dtype=np.uint8)).save(root / "masks" / f"p{i}.png")
    bad = root / "masks" / "p0.png"
    if case == "size":
        Image.fromarray(np.zeros((4, 5), dtype=np.uint8)).save(bad)
    elif case == "labels":
        Image.fromarray(np.full((4, 6), 7, dtype=np.uint8)).save(bad)
    else:
        bad.unlink()
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        for split in ("train", "dev"):
            dataset = load_segmentation_data(f"seg:{root}", split)
            [dataset[i] for i in range(len(dataset))]


def test_palette_png_with_unknown_colours_is_one_line(tmp_path):
    labels = torch.tensor([[0, 1], [1, 0]])
    write_palette_png(labels, tmp_path / "odd.png")
    with Image.open(tmp_path / "odd.png") as image:
        palette = image.getpalette()
        palette[3:6] = [10, 200, 30]  # index 1 is not VOC's (128, 0, 0)
        image.putpalette(palette)
        image.save(tmp_path / "odd.png")
    with pytest.raises(ValueError, match=r"odd.png: palette PNG with unknown colour \(10, 200, 30\) for index 1"):
        read_label_map(tmp_path / "odd.png", 21, palette=True)
    Image.fromarray(np.array([[[0, 0, 0], [1, 2, 3]]], dtype=np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match=r"rgb.png: unknown colour \(1, 2, 3\) at pixel \(x=1, y=0\)"):
        read_label_map(tmp_path / "rgb.png", 21, palette=True)


def test_augmentation_moves_image_and_mask_together():
    labels = torch.zeros(32, 32, dtype=torch.int64)
    labels[4:20, 2:12], labels[18:30, 16:30] = 1, 2
    image = (labels.float() / 2).expand(3, -1, -1).clone()  # the image's value encodes the label
    flipped_image, flipped = segmentation_augmentation(None, hflip=1.0)(image, labels)
    assert torch.equal(flipped, labels.flip(-1)) and torch.equal(flipped_image, image.flip(-1))
    torch.manual_seed(3)
    crop_image, crop = segmentation_augmentation(24, hflip=0.5)(image, labels)
    assert crop_image.shape == (3, 24, 24) and crop.dtype == torch.int64 and set(crop.unique().tolist()) <= {0, 1, 2}
    agree = (crop == (crop_image[0] * 2).round().long()).float().mean()  # bilinear edges may differ
    assert agree > 0.9
    padded_image, padded = segmentation_resize(16)(image[:, :, :16], labels[:, :16])  # 32 x 16 -> 16 x 8 + pad
    assert padded.shape == (16, 16) and (padded[:, 8:] == 255).all() and (padded_image[:, :, 8:] == 0).all()
    images, batch = collate_segmentation([(padded_image, padded)] * 2)
    assert images.shape == (2, 3, 16, 16) and batch.shape == (2, 16, 16)


def test_coco_instances_become_label_maps_on_coco128(shared_data):
    root = shared_data / "coco128"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    spec = f"coco-seg:{root}/annotations/instances_train2017.json:{root}/train2017"
    train, dev = load_segmentation_data(spec, "train", 2), load_segmentation_data(spec, "dev")
    assert len(train) == 2 and len(dev) == 13 and len(train.classes) == 81 and train.classes[1] == "person"
    image, labels = train[0]
    annotations = [a for a in train.coco._annotations[train.coco.images[0]["id"]] if not a["iscrowd"]]
    painted = set(labels.unique().tolist()) - {0, 255}
    assert labels.shape == image.shape[1:] and painted
    assert painted <= {train.coco._label[a["category_id"]] for a in annotations}
