"""Captchas for captcha_xception.py: labels, a seeded generator, its .npz cache, labelled folders.

- Labels are indices into a charset ('abcd' → [0, 1, 2, 3]), padded with PAD (−1) when lengths
  vary.
- The `captcha` package draws from `secrets`; SeededSecrets replaces it, so a (seed, role) makes
  the same captchas whatever the worker count: chunk k is seeded from (seed, role, k).
- A labelled folder has the article's layout: the stem's last 4 characters (xxxxabcd.jpg → abcd).
"""

import multiprocessing
import random
import string
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from common import augment, runs, split

CHARSET = string.ascii_lowercase  # the Tencent labels are lowercase: 26 classes per position
PAD = -1  # label padding for variable-length captchas
ROLES = {"train": 0, "validation": 1, "test": 2}  # part of every generator seed: no set shares one
CHUNK = 500  # captchas per worker task, each seeded by its index: the worker count changes nothing


def encode_label(text, charset=CHARSET):
    """'abcd' → [0, 1, 2, 3], the indices in charset; ValueError for other characters."""
    bad = "".join(sorted(set(text) - set(charset)))
    if bad or not text:
        raise ValueError(f"label {text!r} has characters outside the charset: {bad or 'empty'}")
    return [charset.index(character) for character in text]


def decode_label(indices, charset=CHARSET):
    return "".join(charset[index] for index in indices if 0 <= index < len(charset))


def label_from_path(path, charset=CHARSET, length=4):
    """The author's layout: the stem's last `length` characters (x/xxxxabcd.jpg → abcd)."""
    if len(Path(path).stem) < length:
        raise ValueError(f"{Path(path).name}: stem shorter than {length} characters")
    return encode_label(Path(path).stem[-length:], charset)


class SeededSecrets(random.Random):
    """captcha ≥ 0.5 draws from `secrets`, which cannot be seeded: this stand-in can."""

    def randbelow(self, n):
        return self.randrange(n)

    randbits = random.Random.getrandbits


def chunk_seed(seed, role, index):
    return int(np.random.SeedSequence([seed, ROLES[role], index]).generate_state(1)[0])


def generate_chunk(task):
    """One task: (seed, count, charset, (min, max) length, (height, width)) → images, labels."""
    import captcha.image

    seed, count, charset, (shortest, longest), (height, width) = task
    original, captcha.image.secrets = captcha.image.secrets, SeededSecrets(seed)
    try:  # font sizes scaled from the package's 60-pixel default to our height
        fonts = tuple(size * height // 60 for size in (42, 50, 56))
        generator = captcha.image.ImageCaptcha(width=width, height=height, font_sizes=fonts)
        images = np.empty((count, height, width, 3), np.uint8)
        labels = np.full((count, longest), PAD, np.int32)
        for k in range(count):
            size = captcha.image.secrets.randint(shortest, longest)
            text = "".join(captcha.image.secrets.choice(charset) for _ in range(size))
            images[k] = np.asarray(generator.generate_image(text).convert("RGB"))
            labels[k, :size] = encode_label(text, charset)
    finally:
        captcha.image.secrets = original
    return images, labels


def generate_captchas(
    count, seed, role="train", charset=CHARSET, length=(4, 4), size=(50, 120), workers=2
):
    """uint8 (count, H, W, 3) captchas and int32 (count, max length) labels padded with −1, the same
    for a (seed, role) whatever `workers`: chunk k is seeded from (seed, role, k)."""
    if count <= 0:
        raise ValueError(f"need a positive number of captchas, got {count}")
    tasks = [
        (chunk_seed(seed, role, k), min(CHUNK, count - start), charset, tuple(length), tuple(size))
        for k, start in enumerate(range(0, count, CHUNK))
    ]
    if workers > 1 and len(tasks) > 1:
        fork = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        with multiprocessing.get_context(fork).Pool(min(workers, len(tasks))) as pool:
            parts = pool.map(generate_chunk, tasks)
    else:
        parts = [generate_chunk(task) for task in tasks]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def cached_captchas(cache_dir, count, seed, role, charset, length, size, workers):
    """generate_captchas, or its .npz cache: (images, labels, the path save_captchas has to write or
    None). An unreadable cache is made again: same seed, same set."""
    key = f"{role}-{count}-seed{seed}-len{length[0]}-{length[1]}-{size[0]}x{size[1]}"
    path = Path(cache_dir) / f"{key}-{zlib.crc32(charset.encode()):08x}.npz"  # hash() is salted
    try:
        with np.load(path) as stored:
            return stored["images"], stored["labels"], None
    except FileNotFoundError:
        pass
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:
        warning = f"warning: {path}: unreadable cache ({type(error).__name__}); making it again"
        print(warning, file=sys.stderr)
    start = time.perf_counter()
    images, labels = generate_captchas(count, seed, role, charset, length, size, workers)
    seconds = time.perf_counter() - start
    print(f"generated {count:,} {role} captchas in {seconds:.0f} s ({workers} workers)", flush=True)
    return images, labels, path


def save_captchas(path, images, labels, charset):
    with runs.atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, images=images, labels=labels, charset=np.array(charset))


def load_image(path, size):
    """An image file → uint8 (H, W, 3) at `size` (Pillow bilinear, as scipy.misc.imresize)."""
    with Image.open(path) as image:
        return augment.resize(np.asarray(image.convert("RGB"))[None], size)[0]


def load_folder(folder, charset, length, size):
    """Real captchas under `folder` (recursive): images, labels, skipped files [(name, reason)]."""
    if not Path(folder).is_dir():
        raise ValueError(f"--data {folder}: not a folder")
    images, labels, skipped = [], [], []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name[0] != "."):
        try:  # a file that is not an image: PIL's UnidentifiedImageError, an OSError
            label, image = label_from_path(path, charset, length), load_image(path, size)
        except (ValueError, OSError) as error:
            skipped.append((path.name, str(error).splitlines()[0][:80]))
            continue
        labels.append(label)
        images.append(image)
    if skipped:
        examples = "; ".join(f"{name} ({reason})" for name, reason in skipped[:3])
        total = len(skipped) + len(images)
        print(f"skipped {len(skipped)} of {total} files, e.g. {examples}", file=sys.stderr)
    if not images:
        raise ValueError(f"--data {folder}: no usable labelled captcha images (as xxxxabcd.jpg)")
    return np.stack(images), np.asarray(labels, np.int32), skipped


def load_sets(data, sizes, seed, charset, length, size, workers, cache_dir):
    """{role: (images, labels)}, where they came from, {path: (images, labels)} generated but not
    cached yet (save_captchas writes them once the run has begun). Without `data`, `sizes[role]`
    generated captchas; with it, the folder's split 81/9/10."""
    if not data:
        sets, unsaved = {}, {}
        for role in ROLES:
            images, labels, path = cached_captchas(
                cache_dir, sizes[role], seed, role, charset, length, size, workers
            )
            sets[role] = images, labels
            unsaved |= {path: (images, labels)} if path else {}
        return sets, {"source": "generated with the captcha package", "seed": seed}, unsaved
    images, labels, skipped = load_folder(data, charset, length[0], size)
    # The article's 90/10 train/test split; 10% of train is held out for choosing the epoch.
    train, test = split.random_split(len(images), (9, 1), seed=seed)
    kept, validation = split.random_split(len(train), (9, 1), seed=seed)
    train, validation = train[kept], train[validation]
    if not (len(train) and len(validation) and len(test)):
        many = f"{len(images)} usable images are too few for train, validation and test"
        raise ValueError(f"--data {data}: {many} (about 10 at least)")
    source = {"source": str(data), "skipped_files": len(skipped)}
    parts = {"train": train, "validation": validation, "test": test}
    return {role: (images[rows], labels[rows]) for role, rows in parts.items()}, source, {}
