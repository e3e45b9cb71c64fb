"""NumPy/Pillow image augmentation shared by the image scripts (Fashion-MNIST flips, the dog
article's recipe).

Batches are arrays (N, H, W) or (N, H, W, C); single images are (H, W) or (H, W, C). Every random
function takes an explicit `numpy.random.Generator`, so runs are reproducible and tests
deterministic. uint8 in gives uint8 out. Operations that are array indexing (flip, mask) are
vectorised over the batch; resampling (resize, rotate, zoom) goes through Pillow's C code one image
at a time, which is faster than a NumPy gather.
"""

import numpy as np
from PIL import Image

_RESAMPLE = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def resize(images, size, method="bilinear"):
    """Resize a batch (N, H, W[, C]) to `size` ((height, width), or an int for a square) with
    Pillow.

    Pillow's bilinear resize of uint8 images is what the 2017 `scipy.misc.imresize` did.
    """
    images = np.asarray(images)
    height, width = (size, size) if np.isscalar(size) else size
    if method not in _RESAMPLE:
        raise ValueError(f"method must be one of {sorted(_RESAMPLE)}, got {method!r}")
    out = np.empty((len(images), height, width) + images.shape[3:], dtype=images.dtype)
    for k, image in enumerate(images):
        squeezed = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        resized = np.asarray(Image.fromarray(squeezed).resize((width, height), _RESAMPLE[method]))
        out[k] = resized.reshape(out.shape[1:])
    return out


def random_flip(images, rng, p=0.5):
    """Flip each image of a batch left-right with probability p (the width axis only)."""
    images = np.asarray(images)
    flip = rng.random(len(images)) < p
    out = images.copy()
    out[flip] = images[flip][:, :, ::-1]
    return out


def center_crop(image):
    """The central square of side min(H, W)."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top : top + side, left : left + side]


def rotate(images, degrees):
    """Rotate each image of a batch counter-clockwise by its own angle, as scipy.misc.imrotate did.

    Pillow, nearest neighbour, zero fill, same size. (A vectorised NumPy gather was 3× slower than
    Pillow's per-image affine transform at 299×299, see benchmarks/bench_augment.py.)
    """
    images = np.asarray(images)
    angles = np.broadcast_to(np.asarray(degrees, dtype=np.float64), (len(images),))
    out = np.empty_like(images)
    for k, (image, angle) in enumerate(zip(images, angles)):
        squeezed = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        rotated = Image.fromarray(squeezed).rotate(float(angle), resample=Image.NEAREST)
        out[k] = np.asarray(rotated).reshape(image.shape)
    return out


def random_rotate(images, rng, max_degrees=10.0):
    """Rotate each image by an angle drawn uniformly from ±max_degrees."""
    return rotate(images, rng.uniform(-max_degrees, max_degrees, size=len(images)))


def zoom(image, ratio, size, rng, background=None):
    """Resize a square image to int(size·ratio) (nearest); crop or paste it back to size×size.

    ratio ≥ 1 zooms in: a random size×size crop of the enlarged image. ratio < 1 zooms out: the
    shrunken image is pasted at a random place onto `background` (another training image, resized to
    size), or onto zeros.
    """
    scaled = int(size * ratio)
    resized = resize(image[None], scaled, method="nearest")[0]
    if scaled >= size:
        top, left = rng.integers(0, scaled - size + 1, size=2)
        return resized[top : top + size, left : left + size]
    if background is None:
        canvas = np.zeros((size, size) + image.shape[2:], dtype=image.dtype)
    else:
        canvas = resize(background[None], size, method="nearest")[0]
    top, left = rng.integers(0, size - scaled + 1, size=2)
    canvas[top : top + scaled, left : left + scaled] = resized
    return canvas


def random_zoom(image, rng, size, background=None, low=0.8, high=1.2):
    """`zoom` with a ratio drawn uniformly from [low, high)."""
    return zoom(image, rng.uniform(low, high), size, rng, background=background)


def random_mask(images, rng, p=0.125):
    """Zero one quadrant of each image, each quadrant with probability p (so none with 1 − 4p)."""
    images = np.asarray(images)
    if not 0 <= p <= 0.25:
        raise ValueError(f"p must be in [0, 0.25], got {p}")
    n, height, width = images.shape[:3]
    choice = rng.choice(5, size=n, p=[p, p, p, p, 1 - 4 * p])  # 0..3 a quadrant, 4 none
    top = (np.arange(height) < height // 2)[None, :, None]
    left = (np.arange(width) < width // 2)[None, None, :]
    quadrant = choice[:, None, None]
    masked = (
        ((quadrant == 0) & top & left)
        | ((quadrant == 1) & top & ~left)
        | ((quadrant == 2) & ~top & left)
        | ((quadrant == 3) & ~top & ~left)
    )
    out = images.copy()
    out[masked] = 0
    return out


COMBINE_MODES = ("vertical", "horizontal", "diagonal", "antidiagonal")


def combine(x, y, mode, cut=None):
    """Collage of two same-class images of one shape: a collage of one class is still that class
    (dog article).

    "vertical": x left of column `cut`, y right of it; "horizontal": x above row `cut`; "diagonal"
    and "antidiagonal": x on one side of a diagonal (np.tri masks), y on the other.
    """
    if x.shape != y.shape:
        raise ValueError(f"combine needs images of one shape, got {x.shape} and {y.shape}")
    height, width = x.shape[:2]
    if mode == "vertical":
        take_x = np.arange(width)[None, :] < cut
    elif mode == "horizontal":
        take_x = np.arange(height)[:, None] < cut
    elif mode == "diagonal":
        take_x = np.tri(height, width, dtype=bool)
    elif mode == "antidiagonal":
        take_x = np.tri(height, width, dtype=bool)[:, ::-1]
    else:
        raise ValueError(f"mode must be one of {COMBINE_MODES}, got {mode!r}")
    take_x = np.broadcast_to(take_x, (height, width)).reshape((height, width) + (1,) * (x.ndim - 2))
    return np.where(take_x, x, y)


def random_combine(x, y, rng):
    """`combine` with one of the four modes (p = 0.25 each) and a cut point uniform in [¼, ¾) of
    the side."""
    mode = COMBINE_MODES[rng.integers(4)]
    side = x.shape[1] if mode == "vertical" else x.shape[0]
    cut = int(rng.integers(side // 4, max(side // 4 + 1, 3 * side // 4)))
    return combine(x, y, mode, cut)
