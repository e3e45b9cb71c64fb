"""Labelled photo folders: find the layout, decode every image once into a uint8 cache, read it.

Layouts (`load_labelled_folder`): Stanford Dogs (Images/ + train_list.mat / test_list.mat), Baidu's
(train.txt + train/<id>.jpg) and one folder per class. Decoding (`decode_image`) crops the central
square and resizes it; `build_cache` does it once for every image, in threads, into a memmap keyed
by the files, so epochs, stages and reruns only read.
"""

import concurrent.futures
import hashlib
import json
import os
import sys
from pathlib import Path

import keras
import numpy as np
from PIL import Image, ImageDraw

from common import augment, runs, split

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def images_in(folder):
    """The image files directly in `folder`, sorted."""
    return sorted(
        p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _mat_strings(cell_array):
    """Strings from a MATLAB cell array as scipy.io.loadmat returns it (nested object arrays)."""
    cells = np.asarray(cell_array, dtype=object).ravel()
    return [str(np.asarray(entry).ravel()[0]) for entry in cells]


def _layout(name, paths, labels, classes, test_mask=None):
    test_mask = np.zeros(len(paths), bool) if test_mask is None else test_mask
    labels = np.array(labels, np.int64)
    return {
        "layout": name,
        "paths": paths,
        "labels": labels,
        "classes": classes,
        "test_mask": test_mask,
    }


def _stanford(root, lists):
    from scipy.io import loadmat

    train = _mat_strings(loadmat(lists / "train_list.mat")["file_list"])
    test_list = lists / "test_list.mat"
    test = _mat_strings(loadmat(test_list)["file_list"]) if test_list.is_file() else []
    relative = train + test
    folders = sorted({name.split("/")[0] for name in relative})
    index = {folder: k for k, folder in enumerate(folders)}
    return _layout(
        "stanford",
        [root / "Images" / name for name in relative],
        [index[name.split("/")[0]] for name in relative],
        [folder.split("-", 1)[-1] for folder in folders],
        np.arange(len(relative)) >= len(train),
    )


def _baidu(root):
    lines = (root / "train.txt").read_text(encoding="utf-8").splitlines()
    rows = [line.split() for line in lines if line.strip()]
    if any(len(row) < 2 for row in rows) or not rows:
        raise ValueError(f"{root / 'train.txt'}: expected lines 'image_id class_id'")
    original_ids = list(dict.fromkeys(row[1] for row in rows))  # order of first appearance
    index = {class_id: k for k, class_id in enumerate(original_ids)}
    return _layout(
        "baidu",
        [root / "train" / f"{row[0]}.jpg" for row in rows],
        [index[row[1]] for row in rows],
        [f"class_{class_id}" for class_id in original_ids],
    )


def load_labelled_folder(data_dir):
    """Find the layout of `data_dir` and list its images.

    Returns dict(layout, paths, labels, classes, test_mask): `labels` are 0..C−1, `test_mask` marks
    an official labelled test split (Stanford Dogs only). Layouts:
      stanford: Images/n02085620-Chihuahua/n02085620_5927.jpg + train_list.mat / test_list.mat
                ("file_list" cells), at the top or under lists/
      baidu:    train.txt lines "image_id class_id" + train/<image_id>.jpg (ids remapped in order of
                first appearance)
      folders:  <class>/*.jpg
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise ValueError(f"--data {data_dir}: no such folder")
    lists = next((d for d in (root, root / "lists") if (d / "train_list.mat").is_file()), None)
    if lists is not None and (root / "Images").is_dir():
        return _stanford(root, lists)
    if (root / "train.txt").is_file() and (root / "train").is_dir():
        return _baidu(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(
            f"--data {data_dir}: no class folders, Stanford Dogs (Images/ + train_list.mat) "
            "or Baidu (train.txt + train/) layout found"
        )
    paths, labels = [], []
    for k, folder in enumerate(folders):
        images = images_in(folder)
        if not images:
            raise ValueError(f"class folder {folder} holds no images")
        paths += images
        labels += [k] * len(images)
    return _layout("folders", paths, labels, [f.name for f in folders])


def decode_image(path, size):
    """Read any image Pillow knows (grayscale, CMYK, alpha → RGB), crop its central square, resize.

    The resize is antialiased (bilinear), not the article's nearest: it runs once, and nearest-
    neighbour downscaling of a 500-px photo aliases badly. Raises OSError on unreadable files.
    """
    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale ≥ size, much faster
        image.load()
        if image.mode in ("RGBA", "LA", "P", "PA"):  # transparent parts become white
            image = image.convert("RGBA")
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image)
        square = augment.center_crop(np.asarray(image.convert("RGB")))
    return np.asarray(Image.fromarray(square).resize((size, size), Image.BILINEAR))


def _cache_stem(paths, size, cache_dir):
    """The cache's name: a hash of the size and of every path with its file size and mtime."""
    signature = hashlib.sha1(str(size).encode())
    for path in paths:
        stat = os.stat(path) if os.path.exists(path) else None
        signature.update(f"{path}|{stat and stat.st_size}|{stat and stat.st_mtime_ns}\n".encode())
    return cache_dir / f"images-{size}px-{signature.hexdigest()[:16]}"


def _decode_all(paths, size, target, workers):
    """Decode `paths` into a new .npy at `target`; per image None or the line of its error."""
    from tqdm import tqdm

    images = np.lib.format.open_memmap(
        target, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3)
    )

    def decode_into(k):
        try:
            images[k] = decode_image(paths[k], size)
        except (OSError, ValueError, SyntaxError) as error:  # Pillow: broken or truncated
            return f"{paths[k]}\t{type(error).__name__}: {error}"

    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:  # no GIL in Pillow
        decoded = pool.map(decode_into, range(len(paths)))
        results = list(
            tqdm(decoded, total=len(paths), desc="decoding once", disable=len(paths) < 200)
        )
    images.flush()
    return results


def build_cache(paths, size, cache_dir, workers=4):
    """Decode every image once into a uint8 memmap (N, size, size, 3); reuse it for the same files.

    Returns (images, readable mask, list of unreadable paths). The cache appears under its final
    name only once complete; what a killed build left is removed first.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    stem = _cache_stem(paths, size, cache_dir)
    if stem.with_suffix(".npy").is_file() and stem.with_suffix(".json").is_file():
        failed = json.loads(stem.with_suffix(".json").read_text())["unreadable"]
    else:  # older versions named a partial file <stem>.<pid>.partial.npy
        for pattern in (f".{stem.name}.*.npy", f"{stem.name}.*.partial.npy"):
            for stale in cache_dir.glob(pattern):
                stale.unlink(missing_ok=True)
        with runs.atomic_path(stem.with_suffix(".npy")) as temporary:
            results = _decode_all(paths, size, temporary, workers)
        failed = [k for k, result in enumerate(results) if result]
        errors = [result for result in results if result]
        runs.write_json(stem.with_suffix(".json"), {"unreadable": failed, "errors": errors})
    readable = np.ones(len(paths), bool)
    readable[failed] = False
    images = np.load(stem.with_suffix(".npy"), mmap_mode="r")
    return images, readable, [str(paths[k]) for k in failed]


def decode_images(paths, size):
    """(uint8 array of the readable images, their paths); an unreadable one is a line on stderr."""
    decoded, kept = [], []
    for path in paths:
        try:
            decoded.append(decode_image(path, size))
            kept.append(path)
        except (OSError, ValueError, SyntaxError) as error:
            print(f"skipped {path}: {error}", file=sys.stderr)
    return (np.stack(decoded) if decoded else None), kept


def cached_split(listing, size, cache_dir, workers, seed, report_dir):
    """Decode `listing` once (build_cache) and split it honestly: 10% of each class for validation,
    the official test split sealed (split.SealedTestSet). Unreadable images are skipped and listed
    in report_dir/unreadable_images.txt. Returns the listing with images, train, validation,
    test_set and unreadable (a count)."""
    images, readable, unreadable = build_cache(listing["paths"], size, cache_dir, workers)
    if unreadable:
        with runs.atomic_path(Path(report_dir) / "unreadable_images.txt") as temporary:
            temporary.write_text("\n".join(unreadable) + "\n")
        print(f"skipped {len(unreadable)} unreadable images (listed in unreadable_images.txt)")
    labels, classes = listing["labels"], listing["classes"]
    labelled = np.flatnonzero(readable & ~listing["test_mask"])
    empty = sorted(set(range(len(classes))) - set(labels[labelled].tolist()))
    if empty:
        names = [classes[c] for c in empty][:5]
        raise ValueError(f"no readable training images for class(es) {names}")
    train, validation = split.holdout_per_class(labels[labelled], 0.1, seed=seed)
    test_set = split.SealedTestSet(np.flatnonzero(readable & listing["test_mask"]))
    train, validation = labelled[train], labelled[validation]
    print(
        f"split: {len(train)} train, {len(validation)} validation (10% of each class), "
        f"{len(test_set)} test"
    )
    parts = {"train": train, "validation": validation, "test_set": test_set}
    return {**listing, **parts, "images": images, "unreadable": len(unreadable)}


def write_synthetic_classes(folder, num_classes=8, per_class=24, seed=0, name="synthetic_breed"):
    """A Stanford-Dogs-style folder of synthetic classes (coloured, striped blobs), for runs that
    test the plumbing without photos. Two thirds of each class go to train_list.mat, the rest to
    test_list.mat."""
    from scipy.io import savemat

    rng, folder, lists = np.random.default_rng(seed), Path(folder), ([], [])
    for c in range(num_classes):
        breed = f"n{2085620 + c:08d}-{name}_{c}"
        (folder / "Images" / breed).mkdir(parents=True, exist_ok=True)
        hue = np.cos(2 * np.pi * (c / num_classes + np.array([0, 1 / 3, 2 / 3]))) * 100 + 140
        for k in range(per_class):
            height, width = rng.integers(80, 140, size=2)
            pixels = rng.normal(90, 30, size=(height, width, 3))
            stripes = np.sin(np.arange(height) * (0.2 + 0.15 * (c % 4)))  # a frequency per class
            image = Image.fromarray(
                np.clip(pixels + 40 * stripes[:, None, None], 0, 255).astype(np.uint8)
            )
            x, y = rng.integers(5, 25, size=2)
            fill = tuple(int(v) for v in np.clip(hue + rng.normal(0, 15, 3), 0, 255))
            ImageDraw.Draw(image).ellipse([x, y, width - x, height - y], fill=fill)
            file_name = f"{breed}/{breed.split('-')[0]}_{k}.jpg"
            image.save(folder / "Images" / file_name, quality=90)
            lists[k >= per_class * 2 // 3].append(file_name)
    for list_name, names in zip(("train_list.mat", "test_list.mat"), lists):
        cells = np.array([[np.array([entry])] for entry in names], dtype=object)
        savemat(folder / list_name, {"file_list": cells})
    return folder


class ConcatenatedImages:
    """Several cached arrays read as one (e.g. training + pseudo-labelled) without copying them."""

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


def sample_classes(class_members, rng, classes_per_batch, images_per_class):
    """Classes drawn without replacement with probability ∝ class size, then `images_per_class`
    images of each. `class_members`: an index array per class. Returns (indices, their classes)."""
    sizes = np.array([len(members) for members in class_members], np.float64)
    count = min(classes_per_batch, int((sizes > 0).sum()))
    classes = rng.choice(len(class_members), size=count, replace=False, p=sizes / sizes.sum())
    indices = [
        rng.choice(members, images_per_class, replace=len(members) < images_per_class)
        for members in (class_members[c] for c in classes)
    ]
    return np.concatenate(indices), np.repeat(classes, images_per_class)


class ClassBatches(keras.utils.PyDataset):
    """`steps` batches a pass of `per_batch` = (classes, images of each) drawn from the cached
    `images` (sample_classes over the rows `indices`), each batch reproducible from
    (seed, epoch, step) whichever worker makes it. Yields (float32 images, classes). `augment`:
    None or f(uint8 images, classes, class_members, images, rng) → uint8 images."""

    def __init__(self, images, labels, indices, steps, seed, per_batch, augment=None, **kwargs):
        devices = kwargs.pop("devices", 1)
        super().__init__(**kwargs)
        self.augment = augment or (lambda batch, *_: batch)
        self.images, self.labels, self.steps, self.seed, self.epoch = images, labels, steps, seed, 0
        self.classes_per_batch, self.images_per_class = per_batch  # classes, images of each
        self.devices = devices  # rows per batch must split evenly: the remainder is dropped
        indices = np.asarray(indices)
        self.class_members = [indices[labels[indices] == c] for c in range(int(labels.max()) + 1)]

    def __len__(self):
        return self.steps

    def __getitem__(self, step):
        rng = np.random.default_rng([self.seed, self.epoch, step])
        rows, classes = sample_classes(
            self.class_members, rng, self.classes_per_batch, self.images_per_class
        )
        keep = len(rows) - len(rows) % self.devices
        rows, classes = rows[:keep], classes[:keep]
        images = self.augment(self.images[rows], classes, self.class_members, self.images, rng)
        return images.astype("float32"), classes

    def on_epoch_end(self):
        self.epoch += 1


class ArrayBatches(keras.utils.PyDataset):
    """Un-augmented images from the cache, in order, as float32 (for prediction)."""

    def __init__(self, images, indices, batch_size=64, **kwargs):
        super().__init__(**kwargs)
        self.images, self.indices, self.batch_size = images, np.asarray(indices), batch_size

    def __len__(self):
        return -(-len(self.indices) // self.batch_size)

    def __getitem__(self, step):
        rows = self.indices[step * self.batch_size : (step + 1) * self.batch_size]
        return (self.images[rows].astype("float32"),)
