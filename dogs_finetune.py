"""Fine-grained dog breeds by fine-tuning Xception, after "基于fine tune的图像分类（百度分狗竞赛）" (kexue.fm/archives/4611).

The article's recipe on Keras 3: ImageNet Xception (pooling='avg') → GLU feature Dense(64) ⊙ Dense(64, sigmoid) →
softmax head, plus an auxiliary softmax straight from the 2048-d feature and a center loss on the GLU feature
(loss weights 1, 0.25, 0.25). Three stages: (1) backbone frozen, Adam, heavy augmentation; (2) block13–14 unfrozen,
SGD(1e-4, momentum 0.9); (3) light augmentation. Batches hold 16 classes × 2 images, classes drawn ∝ size. After every
stage both heads and their blend α·p0 + (1−α)·p1 (α searched on validation) are reported. `--pseudo-label DIR` adds
confidently predicted unlabelled images and trains on. Article: about 80% on Baidu's 100 breeds (18,000 images);
Xception fine-tuned on Stanford Dogs reaches about 90% top-1.

    python dogs_finetune.py --quick                    # synthetic images the script draws: tests the plumbing only
    python dogs_finetune.py --data ~/StanfordDogs      # Images/ + train_list.mat + test_list.mat (official split)
    python dogs_finetune.py --data DIR --out runs/dogs # DIR/<breed>/*.jpg or Baidu train.txt + train/; rerun resumes
    python dogs_finetune.py predict --model runs/dogs photo.jpg|DIR [--csv top5.csv]

BatchNorm: in Keras 3 a frozen BN layer normalises with its moving statistics (inference mode), unlike 2017 Keras,
which used batch statistics in every BN during training. We keep Keras 3's behaviour: the frozen layers then compute
exactly the ImageNet features the heads are fitted to; block13–14's BN layers are unfrozen in stage 2 and use batch
statistics of the 32-image batch, as all BNs did in 2017.
"""

import argparse
import concurrent.futures
import csv
import hashlib
import json
import os
import sys
from pathlib import Path

import keras
import numpy as np
from keras import layers
from PIL import Image, ImageDraw

from common import augment, devices, runfolder, runs, split
from common.split import SealedTestSet
from custom_loss import CenterDistance, output_as_loss

SCRIPT = "dogs_finetune"
IMAGE_SIZE = 299  # the article's input size
FEATURE_SIZE = 64  # GLU width (the article's feature_size)
LOSS_WEIGHTS = {"softmax": 1.0, "l2": 0.25, "auxiliary": 0.25}
CLASSES_PER_BATCH, IMAGES_PER_CLASS = 16, 2  # 32 images a batch, as the article
PAIR_PROBABILITY = (
    0.5  # the article doubles each class table with same-class pairs: half the rows are pairs
)
MASK_PROBABILITY = 0.125  # per quadrant, so an image loses one quadrant with p = 0.5
ALPHA_GRID = np.round(np.linspace(0, 1, 101), 2)  # 0, 0.01, …, 1
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SYNTHETIC_CLASSES = 8  # --quick draws this many striped-blob "breeds"
# (name, backbone unfrozen from block13, augmentation, optimizer)
STAGES = [
    ("stage1", False, "heavy", "adam"),
    ("stage2", True, "heavy", "sgd"),
    ("stage3", True, "light", "sgd"),
]


# ----------------------------------------------------------------------------------------------------- data
def _images_in(folder):
    return sorted(
        p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _mat_strings(cell_array):
    """Strings from a MATLAB cell array as scipy.io.loadmat returns it (nested object arrays)."""
    return [
        str(np.asarray(entry).ravel()[0]) for entry in np.asarray(cell_array, dtype=object).ravel()
    ]


def load_dataset(data_dir):
    """Find the layout of `data_dir` and list its images.

    Returns dict(layout, paths, labels, classes, test_mask): `labels` are 0..C−1, `test_mask` marks an official
    labelled test split (Stanford Dogs only). Layouts:
      stanford: Images/n02085620-Chihuahua/n02085620_5927.jpg + train_list.mat / test_list.mat ("file_list" cells)
      baidu:    train.txt lines "image_id class_id" + train/<image_id>.jpg (ids remapped in order of first appearance)
      folders:  <class>/*.jpg
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise ValueError(f"--data {data_dir}: no such folder")
    lists = next((d for d in (root, root / "lists") if (d / "train_list.mat").is_file()), None)
    if lists is not None and (root / "Images").is_dir():
        from scipy.io import loadmat

        train = _mat_strings(loadmat(lists / "train_list.mat")["file_list"])
        test_list = lists / "test_list.mat"
        test = _mat_strings(loadmat(test_list)["file_list"]) if test_list.is_file() else []
        relative = train + test
        folders = sorted({name.split("/")[0] for name in relative})
        index = {folder: k for k, folder in enumerate(folders)}
        return {
            "layout": "stanford",
            "paths": [root / "Images" / name for name in relative],
            "labels": np.array([index[name.split("/")[0]] for name in relative], np.int64),
            "classes": [folder.split("-", 1)[-1] for folder in folders],
            "test_mask": np.arange(len(relative)) >= len(train),
        }
    if (root / "train.txt").is_file() and (root / "train").is_dir():
        rows = [
            line.split()
            for line in (root / "train.txt").read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        if any(len(row) < 2 for row in rows) or not rows:
            raise ValueError(f"{root / 'train.txt'}: expected lines 'image_id class_id'")
        original_ids = list(dict.fromkeys(row[1] for row in rows))  # order of first appearance
        index = {class_id: k for k, class_id in enumerate(original_ids)}
        return {
            "layout": "baidu",
            "paths": [root / "train" / f"{row[0]}.jpg" for row in rows],
            "labels": np.array([index[row[1]] for row in rows], np.int64),
            "classes": [f"class_{class_id}" for class_id in original_ids],
            "test_mask": np.zeros(len(rows), bool),
        }
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(
            f"--data {data_dir}: no class folders, Stanford Dogs (Images/ + train_list.mat) "
            "or Baidu (train.txt + train/) layout found"
        )
    paths, labels = [], []
    for k, folder in enumerate(folders):
        images = _images_in(folder)
        if not images:
            raise ValueError(f"class folder {folder} holds no images")
        paths += images
        labels += [k] * len(images)
    return {
        "layout": "folders",
        "paths": paths,
        "labels": np.array(labels, np.int64),
        "classes": [f.name for f in folders],
        "test_mask": np.zeros(len(paths), bool),
    }


def decode_image(path, size):
    """Read any image Pillow knows (grayscale, CMYK, alpha → RGB), crop its central square, resize to size×size.

    The decode-time resize is antialiased (bilinear), not the article's nearest: it runs once, and nearest-neighbour
    downscaling of a 500-px photo aliases badly. Raises OSError on unreadable or truncated files.
    """
    with Image.open(path) as image:
        image.draft(
            "RGB", (size, size)
        )  # JPEG: decode at a reduced scale ≥ size, several times faster
        image.load()
        if image.mode in ("RGBA", "LA", "P", "PA"):
            image = image.convert("RGBA")
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image)
        square = augment.center_crop(np.asarray(image.convert("RGB")))
    return np.asarray(Image.fromarray(square).resize((size, size), Image.BILINEAR))


def build_cache(paths, size, cache_dir, workers=4):
    """Decode every image once into a uint8 memmap (N, size, size, 3); reuse it when the same files come again.

    Returns (images, readable mask, list of unreadable paths). The cache file is named after a hash of the paths,
    their sizes and modification times, and appears under its final name only once complete.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    signature = hashlib.sha1(str(size).encode())
    for path in paths:
        stat = os.stat(path) if os.path.exists(path) else None
        signature.update(f"{path}|{stat and stat.st_size}|{stat and stat.st_mtime_ns}\n".encode())
    stem = cache_dir / f"images-{size}px-{signature.hexdigest()[:16]}"
    if stem.with_suffix(".npy").is_file() and stem.with_suffix(".json").is_file():
        failed = json.loads(stem.with_suffix(".json").read_text())["unreadable"]
    else:  # first drop what a killed build left (older versions named it <stem>.<pid>.partial.npy)
        for pattern in (f".{stem.name}.*.npy", f"{stem.name}.*.partial.npy"):
            for stale in cache_dir.glob(pattern):
                stale.unlink(missing_ok=True)
        with runs.atomic_path(stem.with_suffix(".npy")) as temporary:
            images = np.lib.format.open_memmap(
                temporary, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3)
            )

            def decode_into(k):
                try:
                    images[k] = decode_image(paths[k], size)
                    return None
                except (OSError, ValueError, SyntaxError) as error:  # Pillow: broken or truncated
                    return f"{paths[k]}\t{type(error).__name__}: {error}"

            from tqdm import tqdm

            with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:  # no GIL in Pillow
                results = list(
                    tqdm(
                        pool.map(decode_into, range(len(paths))),
                        total=len(paths),
                        desc="decoding once",
                        disable=len(paths) < 200,
                    )
                )
            images.flush()
            del images
        failed = [k for k, result in enumerate(results) if result]
        runs.write_json(
            stem.with_suffix(".json"), {"unreadable": failed, "errors": [r for r in results if r]}
        )
    readable = np.ones(len(paths), bool)
    readable[failed] = False
    return (
        np.load(stem.with_suffix(".npy"), mmap_mode="r"),
        readable,
        [str(paths[k]) for k in failed],
    )


def sample_batch(
    class_members, rng, classes_per_batch=CLASSES_PER_BATCH, images_per_class=IMAGES_PER_CLASS
):
    """The article's batch: classes drawn without replacement with probability ∝ class size, then images per class.

    `class_members` is a list of index arrays, one per class. Returns (indices, class of each row).
    """
    sizes = np.array([len(members) for members in class_members], np.float64)
    classes = rng.choice(
        len(class_members),
        size=min(classes_per_batch, int((sizes > 0).sum())),
        replace=False,
        p=sizes / sizes.sum(),
    )
    indices = [
        rng.choice(
            class_members[c], images_per_class, replace=len(class_members[c]) < images_per_class
        )
        for c in classes
    ]
    return np.concatenate(indices), np.repeat(classes, images_per_class)


def augment_batch(images, labels, members, pool, rng, mode, size):
    """Augment one batch of cached square images (uint8); `pool` holds all images, `members` the training rows of
    each class (partners and zoom-out backgrounds come only from these, never from validation or test).

    heavy: each image is, with p = 0.5, combined with another image of its class (a collage of one breed is still
    that breed); otherwise rotated ±10°, zoomed 0.8–1.2 (zoom-out pastes onto a random training image), flipped and
    quadrant-masked. light (stage 3): zoom and flip only.
    """
    out = np.empty((len(images), size, size, 3), np.uint8)
    training_rows = np.concatenate(members)
    pairs = rng.random(len(images)) < (PAIR_PROBABILITY if mode == "heavy" else 0.0)
    singles = np.flatnonzero(~pairs)
    for k in np.flatnonzero(pairs):
        partner = pool[rng.choice(members[labels[k]])]
        out[k] = augment.random_combine(images[k], partner, rng)
    batch = images[singles]
    if mode == "heavy" and len(singles):
        batch = augment.random_rotate(batch, rng)
    for j, k in enumerate(singles):
        background = pool[rng.choice(training_rows)]
        out[k] = augment.random_zoom(batch[j], rng, size, background=background)
    out[singles] = augment.random_flip(out[singles], rng)
    if mode == "heavy":
        out[singles] = augment.random_mask(out[singles], rng, MASK_PROBABILITY)
    return out


class DogBatches(keras.utils.PyDataset):
    """Augmented training batches read from the decoded cache: ((images, labels), (labels, 0, labels))."""

    def __init__(
        self,
        images,
        labels,
        indices,
        mode,
        steps,
        seed,
        classes_per_batch=CLASSES_PER_BATCH,
        devices=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.devices = devices  # rows per batch must split evenly: a batch with fewer classes drops the remainder
        self.images, self.labels, self.mode, self.steps, self.seed = (
            images,
            labels,
            mode,
            steps,
            seed,
        )
        self.indices = np.asarray(indices)
        self.classes_per_batch = classes_per_batch
        self.class_members = [
            self.indices[labels[self.indices] == c] for c in range(int(labels.max()) + 1)
        ]
        self.epoch = 0

    def __len__(self):
        return self.steps

    def __getitem__(self, step):
        rng = np.random.default_rng(
            [self.seed, self.epoch, step]
        )  # reproducible whichever worker runs it
        rows, classes = sample_batch(self.class_members, rng, self.classes_per_batch)
        keep = len(rows) - len(rows) % self.devices
        rows, classes = rows[:keep], classes[:keep]
        images = augment_batch(
            self.images[rows],
            classes,
            self.class_members,
            self.images,
            rng,
            self.mode,
            self.images.shape[1],
        )
        targets = classes[:, None].astype("int32")
        return (images.astype("float32"), targets), (
            targets,
            np.zeros((len(rows), 1), "float32"),
            targets,
        )

    def on_epoch_end(self):
        self.epoch += 1


class ConcatenatedImages:
    """Several cached arrays read as one (training images + pseudo-labelled ones) without copying them to memory."""

    def __init__(self, parts):
        self.parts, self.starts = parts, np.cumsum([0] + [len(part) for part in parts])
        self.shape = (int(self.starts[-1]),) + parts[0].shape[1:]

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, rows):
        rows = np.asarray(rows)
        part = np.searchsorted(self.starts, rows, side="right") - 1
        if rows.ndim == 0:
            return self.parts[part][rows - self.starts[part]]
        out = np.empty((len(rows),) + self.shape[1:], np.uint8)
        for k in np.unique(part):
            out[part == k] = self.parts[k][rows[part == k] - self.starts[k]]
        return out


class ArrayBatches(keras.utils.PyDataset):
    """Un-augmented images from the cache in order, for prediction."""

    def __init__(self, images, indices, batch_size=64, **kwargs):
        super().__init__(**kwargs)
        self.images, self.indices, self.batch_size = images, np.asarray(indices), batch_size

    def __len__(self):
        return -(-len(self.indices) // self.batch_size)

    def __getitem__(self, step):
        rows = self.indices[step * self.batch_size : (step + 1) * self.batch_size]
        return (self.images[rows].astype("float32"),)


def write_synthetic_dogs(folder, num_classes=8, per_class=24, seed=0):
    """Draw a Stanford-Dogs-style folder of synthetic 'breeds' (coloured, striped blobs; NOT dog photos).

    Two thirds of each class go to train_list.mat, the rest to test_list.mat. Enough to exercise every code path.
    """
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    train, test = [], []
    for c in range(num_classes):
        breed = f"n{2085620 + c:08d}-synthetic_breed_{c}"
        (folder / "Images" / breed).mkdir(parents=True, exist_ok=True)
        hue = (
            np.array(
                [
                    np.cos(2 * np.pi * c / num_classes),
                    np.cos(2 * np.pi * (c / num_classes + 1 / 3)),
                    np.cos(2 * np.pi * (c / num_classes + 2 / 3)),
                ]
            )
            * 100
            + 140
        )
        for k in range(per_class):
            height, width = rng.integers(80, 140, size=2)
            pixels = rng.normal(90, 30, size=(height, width, 3))
            rows = np.arange(height)[:, None]
            pixels += (
                40 * np.sin(rows * (0.2 + 0.15 * (c % 4)))[:, :, None]
            )  # class-specific stripe frequency
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
            box = rng.integers(5, 25, size=2)
            ImageDraw.Draw(image).ellipse(
                [box[0], box[1], width - box[0], height - box[1]],
                fill=tuple(int(v) for v in np.clip(hue + rng.normal(0, 15, 3), 0, 255)),
            )
            name = f"{breed}/{breed.split('-')[0]}_{k}.jpg"
            image.save(folder / "Images" / name, quality=90)
            (train if k < per_class * 2 // 3 else test).append(name)
    for list_name, names in (("train_list.mat", train), ("test_list.mat", test)):
        savemat(
            folder / list_name,
            {"file_list": np.array([[np.array([n])] for n in names], dtype=object)},
        )
    return folder


# ---------------------------------------------------------------------------------------------------- model
def build_model(num_classes, image_size=IMAGE_SIZE, weights="none"):
    """Returns (training model [image, label] → [softmax, l2, auxiliary], prediction model image → [softmax,
    auxiliary], backbone, weights used). Inputs are RGB 0–255; Xception's scaling to [−1, 1] is inside."""
    backbone, weights_used = runs.load_backbone(
        keras.applications.Xception,
        weights,
        include_top=False,
        pooling="avg",
        input_shape=(image_size, image_size, 3),
    )
    image = keras.Input((image_size, image_size, 3), name="image")
    label = keras.Input((1,), dtype="int32", name="label")
    x = backbone(layers.Rescaling(1 / 127.5, offset=-1, name="xception_scaling")(image))
    feature = layers.Multiply(name="glu")(
        [
            layers.Dense(FEATURE_SIZE, name="glu_linear")(x),
            layers.Dense(FEATURE_SIZE, activation="sigmoid", name="glu_gate")(x),
        ]
    )
    # The heads and the centre loss stay float32 under --mixed-precision.
    softmax = layers.Dense(num_classes, activation="softmax", dtype="float32", name="softmax")(
        feature
    )
    auxiliary = layers.Dense(num_classes, activation="softmax", dtype="float32", name="auxiliary")(
        x
    )
    l2 = CenterDistance(num_classes, FEATURE_SIZE, dtype="float32", name="l2")([feature, label])
    model = keras.Model([image, label], [softmax, l2, auxiliary], name="dogs_xception")
    return (
        model,
        keras.Model(image, [softmax, auxiliary], name="dogs_predict"),
        backbone,
        weights_used,
    )


def set_trainable(backbone, unfreeze_top):
    """Stage 1: the whole backbone frozen. Stages 2–3: every layer from the first `block13` one on, which in Keras 3's
    layer order includes block13's residual Conv2D/BN (they come after block13_sepconv2_bn), and block14."""
    backbone.trainable = unfreeze_top
    if unfreeze_top:
        first = next(k for k, layer in enumerate(backbone.layers) if "block13" in layer.name)
        for layer in backbone.layers[:first]:
            layer.trainable = False


def calibrate_batch_norm(backbone, sample):
    """Set every BN layer's moving statistics from one batch of training images, uint8 (random init only).

    A random Xception's BN layers hold mean 0 / variance 1, and through 36 layers its features shrink to ~1e-6,
    so frozen, it would hand the heads zeros. One training-mode pass with momentum 0 makes each layer normalise
    what it really sees: random but well-scaled features."""
    norms = [layer for layer in backbone.layers if isinstance(layer, layers.BatchNormalization)]
    saved = [(layer.trainable, layer.momentum) for layer in norms]
    for layer in norms:
        layer.trainable, layer.momentum = True, 0.0
    with devices.no_grad():  # torch would keep the autograd graph: 64 images at 299² overflow 24 GB
        backbone(keras.ops.convert_to_tensor(sample.astype("float32") / 127.5 - 1), training=True)
    for layer, (trainable, momentum) in zip(norms, saved):
        layer.trainable, layer.momentum = trainable, momentum


def compile_model(model, optimizer):
    model.compile(
        optimizer=keras.optimizers.Adam()
        if optimizer == "adam"
        else keras.optimizers.SGD(1e-4, momentum=0.9),
        loss={
            "softmax": "sparse_categorical_crossentropy",
            "l2": output_as_loss,
            "auxiliary": "sparse_categorical_crossentropy",
        },
        loss_weights=LOSS_WEIGHTS,
        metrics={"softmax": "accuracy", "auxiliary": "accuracy"},
    )


# ------------------------------------------------------------------------------------------------- evaluate
def search_alpha(p0, p1, labels):
    """α ∈ {0, 0.01, …, 1} maximising validation accuracy of α·p0 + (1−α)·p1; ties go to the larger α (main head).

    Returns (alpha, accuracy, accuracies over the grid)."""
    accuracies = np.array(
        [np.mean(np.argmax(a * p0 + (1 - a) * p1, axis=1) == labels) for a in ALPHA_GRID]
    )
    best = len(ALPHA_GRID) - 1 - int(np.argmax(accuracies[::-1]))
    return float(ALPHA_GRID[best]), float(accuracies[best]), accuracies


def predict_heads(predict_model, images, indices, workers=1, placement=devices.Placement()):
    batches = ArrayBatches(
        images,
        placement.pad(np.asarray(indices)),
        max(placement.usable(64), placement.count),
        workers=workers,
    )  # padded and batched to split evenly across devices
    p0, p1 = predict_model.predict(batches, verbose=0)
    return p0[: len(indices)], p1[: len(indices)]


def evaluate_heads(p0, p1, labels, alpha=None):
    """Accuracy of both heads and of their blend (α searched here unless given)."""
    if alpha is None:
        alpha, blended, _ = search_alpha(p0, p1, labels)
    else:
        blended = float(np.mean(np.argmax(alpha * p0 + (1 - alpha) * p1, axis=1) == labels))
    return {
        "acc_0": float(np.mean(p0.argmax(1) == labels)),
        "acc_1": float(np.mean(p1.argmax(1) == labels)),
        "alpha": alpha,
        "acc_2": blended,
        "images": len(labels),
    }


def select_pseudo_labels(probabilities, threshold):
    """Indices and predicted classes of the images whose top probability reaches `threshold`."""
    confident = np.flatnonzero(probabilities.max(axis=1) >= threshold)
    return confident, probabilities[confident].argmax(axis=1)


def write_per_class_report(probabilities, labels, classes, run_dir, top_pairs=20):
    """per_class.csv (accuracy of each breed and what it is most often taken for) and confused_pairs.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(classes)
    confusion = np.zeros((count, count), np.int64)
    np.add.at(confusion, (labels, probabilities.argmax(1)), 1)
    off_diagonal = confusion - np.diag(np.diag(confusion))
    with (
        runs.atomic_path(run_dir / "per_class.csv") as temporary,
        open(temporary, "w", newline="") as handle,
    ):
        writer = csv.writer(handle)
        writer.writerow(["class", "images", "correct", "accuracy", "most_confused_with", "times"])
        for c in np.argsort(np.diag(confusion) / np.maximum(confusion.sum(1), 1)):
            total = confusion[c].sum()
            other = int(off_diagonal[c].argmax())
            writer.writerow(
                [
                    classes[c],
                    total,
                    confusion[c, c],
                    f"{confusion[c, c] / max(total, 1):.4f}",
                    classes[other] if off_diagonal[c, other] else "",
                    off_diagonal[c, other],
                ]
            )
    symmetric = np.triu(off_diagonal + off_diagonal.T, 1)
    order = np.argsort(symmetric, axis=None)[::-1][:top_pairs]
    pairs = [
        (i, j, symmetric[i, j])
        for i, j in zip(*np.unravel_index(order, symmetric.shape))
        if symmetric[i, j]
    ]
    figure, axis = plt.subplots(figsize=(8, 0.35 * max(len(pairs), 1) + 1.2))
    axis.barh(
        [f"{classes[i]} ↔ {classes[j]}" for i, j, _ in pairs][::-1], [n for *_, n in pairs][::-1]
    )
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.set_xlabel("validation images confused (both directions)")
    axis.set_title(f"The {len(pairs)} most confused breed pairs")
    figure.tight_layout()
    with runs.atomic_path(run_dir / "confused_pairs.png") as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
    return [(classes[i], classes[j], int(n)) for i, j, n in pairs]


# ---------------------------------------------------------------------------------------------------- train
def merge_histories(run_dir, stages):
    """history.csv: every stage's epochs one after another, with a stage column; and history.png."""
    rows = []
    for stage in stages:
        path = run_dir / f"history_{stage}.csv"
        if path.is_file():
            rows += [{"stage": stage, **row} for row in csv.DictReader(path.open())]
    if not rows:
        return
    with (
        runs.atomic_path(run_dir / "history.csv") as temporary,
        open(temporary, "w", newline="") as handle,
    ):
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    keys = ["loss", "softmax_accuracy", "auxiliary_accuracy", "l2_loss"]
    runs.plot_history(
        {key: [float(row[key]) for row in rows] for key in keys if key in rows[0]},
        run_dir / "history.png",
        "dogs_finetune: all stages, one epoch after another",
    )


def train(args, run, placement=devices.Placement()):
    rng = runs.seed_everything(args.seed)
    data = load_dataset(args.data) if args.data else None  # --quick: drawn once the run has begun
    model, predict_model, backbone, weights_used = build_model(
        len(data["classes"]) if data else SYNTHETIC_CLASSES, args.image_size, args.weights
    )
    run_dir = run.begin()  # inputs checked, model built: only now does the run folder get files
    if data is None:
        args.data = run_dir / "synthetic_dogs"
        if not (args.data / "train_list.mat").is_file():
            write_synthetic_dogs(args.data, num_classes=SYNTHETIC_CLASSES, seed=args.seed)
        data = load_dataset(args.data)
        print(
            "--quick: SYNTHETIC striped-blob 'breeds' drawn by this script, not dog photos: "
            "this checks the pipeline, not accuracy"
        )
    print(
        f"data: {args.data} ({data['layout']} layout{'; SYNTHETIC images, not dogs' if args.quick else ''}): "
        f"{len(data['paths'])} images, {len(data['classes'])} classes"
    )
    images, readable, unreadable = build_cache(
        data["paths"], args.image_size, args.cache or run_dir / "cache", args.workers
    )
    if unreadable:
        with runs.atomic_path(run_dir / "unreadable_images.txt") as temporary:
            temporary.write_text("\n".join(unreadable) + "\n")
        print(
            f"skipped {len(unreadable)} unreadable images (listed in {run_dir / 'unreadable_images.txt'})"
        )
    labels = data["labels"]
    labelled = np.flatnonzero(readable & ~data["test_mask"])
    empty = sorted(set(range(len(data["classes"]))) - set(labels[labelled].tolist()))
    if empty:
        raise ValueError(
            f"no readable training images for class(es) {[data['classes'][c] for c in empty][:5]}"
        )
    train_part, validation_part = split.holdout_per_class(labels[labelled], 0.1, seed=args.seed)
    train_indices, validation_indices = labelled[train_part], labelled[validation_part]
    test_set = SealedTestSet(np.flatnonzero(readable & data["test_mask"]))
    print(
        f"split: {len(train_indices)} train, {len(validation_indices)} validation (10% of each class), "
        f"{len(test_set)} test"
    )

    progress_path = run_dir / "progress.json"
    progress = (
        runfolder.read_json(progress_path)
        if progress_path.is_file()
        else {"finished": [], "results": {}}
    )  # stages trained and validated, their results
    if weights_used == "none":
        print(
            "note: no ImageNet weights: the backbone is random (BN statistics set from training images), so stage "
            "1 fits heads on random features; expect far below the article's ~80% (use --weights imagenet|PATH)"
        )
        if not progress["finished"]:
            calibrate_batch_norm(
                backbone,
                images[
                    np.sort(rng.choice(train_indices, min(64, len(train_indices)), replace=False))
                ],
            )
    schedule = list(STAGES)
    if args.pseudo_label:
        schedule.append(("pseudo", True, "heavy", "sgd"))
    classes_per_batch = min(args.batch_size // IMAGES_PER_CLASS, len(data["classes"]))
    compiled_as, validation_predictions = None, None
    for number, (stage, unfreeze_top, mode, optimizer) in enumerate(schedule):
        if compiled_as != (
            unfreeze_top,
            optimizer,
        ):  # stage 3 goes on with stage 2's compiled model and SGD state
            set_trainable(backbone, unfreeze_top)
            compile_model(model, optimizer)
            predict_model.predict_function = (
                None  # JAX with --devices: its shardings follow the trainable split
            )
            compiled_as = (unfreeze_top, optimizer)
        batches = None  # a finished stage is not trained again: fit loads its last weights
        if stage not in progress["finished"]:
            store, indices, stage_labels = images, train_indices, labels
            if stage == "pseudo":
                store, indices, stage_labels, progress["pseudo"] = add_pseudo_labels(
                    args,
                    run_dir,
                    predict_model,
                    images,
                    labels,
                    train_indices,
                    progress["results"],
                    placement,
                )
            trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
            print(
                f"{stage}: backbone {'block13-14 trainable' if unfreeze_top else 'frozen'}, "
                f"{optimizer}, {mode} augmentation, {trainable:,} trainable parameters"
            )
            batches = DogBatches(
                store,
                stage_labels,
                indices,
                mode,
                args.steps_per_epoch,
                [args.seed, number],
                classes_per_batch,
                placement.count,
                workers=args.workers,
            )
        runfolder.fit(model, batches, folder=run_dir, epochs=args.epochs, name=stage)  # or resumes
        if stage in progress["finished"]:
            continue
        validation_predictions = predict_heads(
            predict_model, images, validation_indices, args.workers, placement
        )
        result = evaluate_heads(*validation_predictions, labels[validation_indices])
        print(
            f"{stage} validation: acc_0 {result['acc_0']:.4f}  acc_1 {result['acc_1']:.4f}  "
            f"α {result['alpha']:.2f} → acc_2 {result['acc_2']:.4f}   (article: ≈0.80 on 100 breeds)"
        )
        progress["finished"].append(stage)
        progress["results"][stage] = result
        runs.write_json(progress_path, progress)
    return finish(
        args,
        run,
        data,
        images,
        labels,
        validation_indices,
        test_set,
        predict_model,
        progress,
        weights_used,
        [stage for stage, *_ in schedule],
        len(unreadable),
        validation_predictions,
        placement,
    )


def add_pseudo_labels(
    args,
    run_dir,
    predict_model,
    images,
    labels,
    train_indices,
    results,
    placement=devices.Placement(),
):
    """Predict the unlabelled folder with the current blend; keep images at ≥ threshold as extra training data.

    The validation split stays out of training (the article trained on it here), so its numbers stay honest."""
    paths = _images_in(args.pseudo_label)
    if not paths:
        raise ValueError(f"--pseudo-label {args.pseudo_label}: no images")
    extra, readable, _ = build_cache(
        paths, args.image_size, args.cache or run_dir / "cache", args.workers
    )
    rows = np.flatnonzero(readable)
    p0, p1 = predict_heads(predict_model, extra, rows, args.workers, placement)
    alpha = results[STAGES[-1][0]]["alpha"]
    chosen, predicted = select_pseudo_labels(alpha * p0 + (1 - alpha) * p1, args.pseudo_threshold)
    print(
        f"pseudo-labels: {len(chosen)} of {len(rows)} unlabelled images reach probability ≥ {args.pseudo_threshold}"
    )
    store_labels = np.concatenate([labels, np.zeros(len(extra), labels.dtype)])
    store_labels[len(images) + rows[chosen]] = predicted
    info = {
        "folder": str(args.pseudo_label),
        "threshold": args.pseudo_threshold,
        "added": len(chosen),
        "candidates": len(rows),
    }
    return (
        ConcatenatedImages([images, extra]),
        np.concatenate([train_indices, len(images) + rows[chosen]]),
        store_labels,
        info,
    )


def finish(
    args,
    run,
    data,
    images,
    labels,
    validation_indices,
    test_set,
    predict_model,
    progress,
    weights_used,
    stages,
    skipped,
    validation_predictions=None,
    placement=devices.Placement(),
):
    run_dir = run.path
    last = progress["results"][progress["finished"][-1]]
    alpha = last["alpha"]
    p0, p1 = validation_predictions or predict_heads(
        predict_model, images, validation_indices, args.workers, placement
    )
    pairs = write_per_class_report(
        alpha * p0 + (1 - alpha) * p1, labels[validation_indices], data["classes"], run_dir
    )
    print(
        "most confused breed pairs (validation): "
        + "; ".join(f"{first} ↔ {second} ×{count}" for first, second, count in pairs[:5])
    )
    test = None
    if len(test_set):  # looked at once, with the α chosen on validation
        test = test_set.evaluate(
            lambda idx: evaluate_heads(
                *predict_heads(predict_model, images, idx, args.workers, placement),
                labels[idx],
                alpha=alpha,
            )
        )
        print(
            f"test (once): acc_0 {test['acc_0']:.4f}  acc_1 {test['acc_1']:.4f}  blend α={alpha:.2f} "
            f"{test['acc_2']:.4f}   (article: ≈0.80; Xception on Stanford Dogs ≈0.90)"
        )
    with runs.atomic_path(run_dir / "model.keras") as temporary:
        predict_model.save(temporary)
    runs.write_json(
        run_dir / "classes.json",
        {"classes": data["classes"], "alpha": alpha, "image_size": args.image_size},
    )
    merge_histories(run_dir, stages)
    metrics = {
        "article": {"accuracy": 0.80, "note": "about 80% on Baidu's 100 breeds"},
        "layout": data["layout"],
        "synthetic": bool(args.quick),
        "weights": weights_used,
        "image_size": args.image_size,
        "classes": len(data["classes"]),
        "unreadable_images": skipped,
        "stages": progress["results"],
        "pseudo_label": progress.get("pseudo"),
        "validation": last,
        "test": test,
        "most_confused_pairs": pairs[:5],
        **placement.describe(),
        "environment": runs.environment(),
    }
    run.finish(metrics)  # the last file: a rerun reports this run instead of training again
    print(
        f"outputs in {run_dir}: model.keras, metrics.json, history.csv, per_class.csv, confused_pairs.png"
    )
    return metrics


# ---------------------------------------------------------------------------------------------------- predict
def predict(model_dir, target, csv_path=None, top=5):
    """Top-`top` breeds with probabilities for one image or every image of a folder (blend with the run's α)."""
    model_dir = runfolder.find_run(SCRIPT, model_dir, need=("model.keras", "classes.json"))
    info = runfolder.read_json(model_dir / "classes.json")
    if not isinstance(info, dict) or not {"classes", "alpha", "image_size"} <= set(info):
        raise ValueError(f"{model_dir / 'classes.json'}: expected keys classes, alpha, image_size")
    paths = _images_in(target) if Path(target).is_dir() else [Path(target)]
    if not paths or not paths[0].is_file():
        raise ValueError(f"{target}: no image file or folder of images")
    if csv_path:  # refused before the model runs (private until common/runfolder makes it public)
        runfolder.check_folder(Path(csv_path).parent, "--csv")
        if Path(csv_path).is_dir():
            raise ValueError(f"--csv {csv_path}: is a folder")
    try:
        model = keras.models.load_model(model_dir / "model.keras", compile=False)
    except Exception as error:  # noqa: BLE001 (a damaged file: one line, not Keras' traceback)
        raise ValueError(f"{model_dir / 'model.keras'}: cannot be loaded ({error!r:.80})") from None
    top = min(top, len(info["classes"]))
    decoded, kept = [], []
    for path in paths:
        try:
            decoded.append(decode_image(path, info["image_size"]))
            kept.append(path)
        except (OSError, ValueError, SyntaxError) as error:
            print(f"skipped {path}: {error}", file=sys.stderr)
    if not decoded:
        raise ValueError(f"{target}: no readable image")
    p0, p1 = model.predict(np.stack(decoded).astype("float32"), verbose=0)
    probabilities = info["alpha"] * p0 + (1 - info["alpha"]) * p1
    rows = []
    for path, p in zip(kept, probabilities):
        best = np.argsort(p)[::-1][:top]
        rows.append(
            [str(path)] + [value for c in best for value in (info["classes"][c], f"{p[c]:.4f}")]
        )
    if csv_path:
        with runs.atomic_path(csv_path) as temporary, open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                ["image"]
                + [f"{kind}_{k + 1}" for k in range(top) for kind in ("breed", "probability")]
            )
            writer.writerows(rows)
        print(f"wrote {len(rows)} rows to {csv_path}")
    else:
        for row in rows:
            print(
                row[0] + ": " + ", ".join(f"{row[k]} {row[k + 1]}" for k in range(1, len(row), 2))
            )
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["predict"]:
        parser = argparse.ArgumentParser(
            prog="dogs_finetune.py predict", description="top-5 breeds of images"
        )
        parser.add_argument(
            "--model", required=True, help="a training run (its folder or a file in it)"
        )
        parser.add_argument("images", help="an image file or a folder of images")
        parser.add_argument("--csv", default=None, help="write a CSV here instead of printing")
        parser.add_argument(
            "--top", type=runs.positive_int, default=5, help="how many breeds per image (default 5)"
        )
        args = parser.parse_args(argv[1:])
        try:
            return predict(args.model, args.images, args.csv, args.top)
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="--epochs counts epochs per stage (3 stages, 4 with --pseudo-label). "
        "Subcommand: dogs_finetune.py predict --model RUN IMAGE_OR_DIR",
    )
    runs.add_standard_arguments(
        parser,
        epochs=30,
        batch_size=32,
        weights="auto",
        data_help="dog photos: DIR/<breed>/*.jpg, Stanford Dogs (Images/ + train_list.mat) "
        "or Baidu (train.txt + train/); --quick draws synthetic ones",
    )
    parser.add_argument(
        "--image-size",
        type=runs.positive_int,
        default=IMAGE_SIZE,
        help="square input side, ≥ 71 (default 299)",
    )
    parser.add_argument(
        "--steps-per-epoch",
        type=runs.positive_int,
        default=200,
        help="batches per epoch (default 200, article)",
    )
    parser.add_argument(
        "--workers",
        type=runs.positive_int,
        default=min(4, os.cpu_count() or 1),
        help="threads decoding and augmenting images (default min(4, CPUs))",
    )
    parser.add_argument(
        "--cache", default=None, help="folder of the decoded-image cache (default OUT/cache)"
    )
    parser.add_argument(
        "--pseudo-label",
        default=None,
        metavar="TESTDIR",
        help="unlabelled images: add the confidently predicted ones and train one more stage",
    )
    parser.add_argument(
        "--pseudo-threshold",
        type=runs.probability,
        default=0.9,
        help="least blended probability of a pseudo-label, (0, 1] (default 0.9)",
    )
    devices.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:  # small and synthetic: every stage runs, in minutes on a CPU
        args.image_size, args.epochs, args.steps_per_epoch = (
            71,
            min(args.epochs, 3),
            min(args.steps_per_epoch, 8),
        )
        args.batch_size = min(args.batch_size, 16)
    if args.image_size < 71 or args.batch_size < IMAGES_PER_CLASS:
        raise SystemExit("error: need --image-size ≥ 71 (Xception's minimum) and --batch-size ≥ 2")
    if args.pseudo_threshold == 0:
        raise SystemExit("error: --pseudo-threshold must be in (0, 1]")
    if not args.data and not args.quick:
        raise SystemExit(
            "error: pass --data DIR with dog photos (see --help), or --quick for a synthetic run"
        )
    if args.data and not Path(args.data).is_dir():
        raise SystemExit(f"error: --data {args.data}: no such folder")
    pseudo = args.pseudo_label and Path(args.pseudo_label)
    if pseudo and not (pseudo.is_dir() and _images_in(pseudo)):
        raise SystemExit(f"error: --pseudo-label {pseudo}: not a folder of images")
    if args.cache:
        runfolder.check_folder(Path(args.cache), "--cache")
    run = runfolder.open_run(SCRIPT, args.out, runfolder.settings_of(args, runtime=("cache",)))
    if run.finished:
        return run.report_finished()
    with devices.placement(args.devices, args.mixed_precision) as placement:
        placement.check_batch(
            args.batch_size // IMAGES_PER_CLASS * IMAGES_PER_CLASS
        )  # the batch really drawn
        try:
            return train(args, run, placement)
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    runs.command_line(main)
