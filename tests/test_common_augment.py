"""common/augment.py: shapes, dtypes, and what each augmentation may and may not do."""

import numpy as np
import pytest

from common import augment


@pytest.fixture
def batch():
    return np.random.default_rng(0).integers(0, 256, size=(64, 12, 10, 3), dtype=np.uint8)


def test_flip_reverses_only_the_width_axis_and_is_an_involution(batch):
    flipped = augment.random_flip(batch, np.random.default_rng(1), p=1.0)
    assert np.array_equal(flipped, batch[:, :, ::-1])
    assert np.array_equal(augment.random_flip(flipped, np.random.default_rng(1), p=1.0), batch)
    assert flipped.dtype == np.uint8 and flipped.shape == batch.shape


def test_flip_leaves_labels_alone_and_flips_about_half():
    rng = np.random.default_rng(2)
    images = np.tile(np.arange(8, dtype=np.uint8)[None, None, :], (4000, 3, 1))
    labels = np.arange(4000)
    flipped = augment.random_flip(images, rng)
    share = np.mean(flipped[:, 0, 0] == 7)
    assert 0.46 < share < 0.54
    assert np.array_equal(labels, np.arange(4000))  # the function never sees or reorders labels
    unchanged = flipped[:, 0, 0] == 0
    assert np.array_equal(flipped[unchanged], images[unchanged])


def test_resize_keeps_dtype_and_constant_images():
    images = np.full((3, 28, 28), 77, np.uint8)
    out = augment.resize(images, 56)
    assert out.shape == (3, 56, 56) and out.dtype == np.uint8 and np.all(out == 77)
    assert augment.resize(np.zeros((2, 20, 30, 3), np.uint8), (50, 120), "nearest").shape == (
        2,
        50,
        120,
        3,
    )


def test_center_crop_is_centred_square():
    image = np.arange(300 * 400).reshape(300, 400)
    crop = augment.center_crop(image)
    assert crop.shape == (300, 300) and crop[0, 0] == image[0, 50]


def test_rotate_keeps_shape_and_zero_angle_is_identity(batch):
    assert np.array_equal(augment.rotate(batch, 0.0), batch)
    rotated = augment.random_rotate(batch, np.random.default_rng(3))
    assert rotated.shape == batch.shape and rotated.dtype == np.uint8


def test_rotate_turns_counter_clockwise_like_pil():
    from PIL import Image

    image = np.zeros((9, 9), np.uint8)
    image[4, 8] = 255  # a dot on the right edge
    ours = augment.rotate(image[None], 90)[0]
    pil = np.asarray(Image.fromarray(image).rotate(90, resample=Image.NEAREST))
    assert np.array_equal(ours, pil) and ours[0, 4] == 255  # now on top


@pytest.mark.parametrize("ratio", [0.8, 1.0, 1.2])
def test_zoom_returns_the_requested_size(ratio):
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    background = rng.integers(0, 256, size=(50, 50, 3), dtype=np.uint8)
    out = augment.zoom(image, ratio, 32, rng, background=background)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_mask_zeroes_exactly_one_quadrant_or_none():
    rng = np.random.default_rng(5)
    images = np.full((2000, 8, 8), 9, np.uint8)
    masked = augment.random_mask(images, rng)
    zero_pixels = (masked == 0).reshape(2000, -1).sum(axis=1)
    assert set(zero_pixels.tolist()) <= {0, 16}
    quadrants = masked[:, ::4, ::4] == 0  # one pixel per quadrant
    assert np.all(quadrants.reshape(2000, -1).sum(axis=1) == zero_pixels // 16)
    assert 0.45 < np.mean(zero_pixels == 0) < 0.55


def test_combine_with_itself_is_identity_and_pixels_come_from_x_or_y():
    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, size=(30, 30, 3), dtype=np.uint8)
    y = rng.integers(0, 256, size=(30, 30, 3), dtype=np.uint8)
    for mode in augment.COMBINE_MODES:
        assert np.array_equal(augment.combine(x, x, mode, cut=12), x)
        mixed = augment.combine(x, y, mode, cut=12)
        assert mixed.shape == x.shape and mixed.dtype == np.uint8
        from_x = np.all(mixed == x, axis=-1)
        from_y = np.all(mixed == y, axis=-1)
        assert np.all(from_x | from_y) and from_x.any() and from_y.any()
    for _ in range(20):
        assert augment.random_combine(x, y, rng).shape == x.shape
