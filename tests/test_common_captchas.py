"""common/captchas.py: labels, the seeded generator and its cache, labelled captcha folders."""

import numpy as np
import pytest
from PIL import Image

from common import captchas


# ---------------------------------------------------------------------------------------------------- labels
def test_label_is_the_last_four_characters_of_the_stem():
    assert captchas.label_from_path("sample/xxxxabcd.jpg") == [0, 1, 2, 3]
    assert captchas.label_from_path("abcd.jpg") == [0, 1, 2, 3]


def test_zzzz_gives_25_at_every_position():
    assert captchas.label_from_path("zzzz.jpg") == [25, 25, 25, 25]


def test_label_mapping_is_ord_minus_ord_a():
    assert captchas.encode_label("qwer") == [ord(c) - ord("a") for c in "qwer"]


@pytest.mark.parametrize("name", ["abcD.jpg", "ab1d.jpg", "abc.jpg", "ab d.png"])
def test_labels_with_characters_outside_the_charset_are_rejected(name):
    with pytest.raises(ValueError):
        captchas.label_from_path(name)


# ------------------------------------------------------------------------------------------------ generator
def test_generator_is_deterministic_per_seed_whatever_the_worker_count(monkeypatch):
    monkeypatch.setattr(
        captchas, "CHUNK", 3
    )  # several chunks: the two workers really split the work
    images, labels = captchas.generate_captchas(7, seed=5, workers=1)
    again_images, again_labels = captchas.generate_captchas(7, seed=5, workers=2)
    assert images.shape == (7, 50, 120, 3) and images.dtype == np.uint8 and labels.shape == (7, 4)
    np.testing.assert_array_equal(images, again_images)
    np.testing.assert_array_equal(labels, again_labels)
    other_images, _ = captchas.generate_captchas(7, seed=6, workers=1)
    assert not np.array_equal(images, other_images)


def test_train_validation_and_test_use_disjoint_seeds():
    seeds = {
        role: {captchas.chunk_seed(2017, role, k) for k in range(200)} for role in captchas.ROLES
    }
    assert all(len(part) == 200 for part in seeds.values())
    assert not (
        seeds["train"] & seeds["validation"]
        or seeds["train"] & seeds["test"]
        or seeds["validation"] & seeds["test"]
    )
    train, _ = captchas.generate_captchas(3, seed=1, role="train", workers=1)
    test, _ = captchas.generate_captchas(3, seed=1, role="test", workers=1)
    assert not any(np.array_equal(a, b) for a in train for b in test)


def test_variable_length_labels_are_padded_with_minus_one():
    _, labels = captchas.generate_captchas(12, seed=0, length=(2, 3), workers=1)
    lengths = np.sum(labels >= 0, axis=1)
    assert labels.shape == (12, 3) and set(lengths) <= {2, 3}
    assert all(np.all(row[n:] == captchas.PAD) for row, n in zip(labels, lengths))


# ------------------------------------------------------------------------------------------------------ data
def write_captcha(path, text):
    image, _ = captchas.generate_captchas(1, seed=len(text), workers=1)
    Image.fromarray(image[0]).resize((129, 53)).save(path)


def test_data_folder_skips_bad_files_and_splits_90_10(tmp_path, capsys):
    texts = ["abcd", "wxyz", "hell", "owor", "ldab", "cdef", "ghij", "klmn", "opqr", "stuv"]
    for k, text in enumerate(texts):
        write_captcha(tmp_path / f"{k:04d}{text}.jpg", text)
    write_captcha(tmp_path / "ab1d.jpg", "abcd")  # a digit outside the charset
    (tmp_path / "noteabcd.jpg").write_text("not an image")
    sizes = {"train": 90_000, "validation": 5_000, "test": 10_000}  # unused: a folder is given
    options = 2017, captchas.CHARSET, (4, 4), (50, 120), 2
    data, source, unsaved = captchas.load_sets(tmp_path, sizes, *options, tmp_path / "cache")
    assert source["skipped_files"] == 2 and unsaved == {} and not (tmp_path / "cache").exists()
    assert "skipped 2 of 12 files" in capsys.readouterr().err
    labels = [tuple(row) for role in captchas.ROLES for row in data[role][1]]
    assert sorted(labels) == sorted(tuple(captchas.encode_label(t)) for t in texts)  # disjoint, all
    assert len(data["test"][0]) == 1 and len(data["train"][0]) + len(data["validation"][0]) == 9
    assert data["train"][0].shape[1:] == (50, 120, 3)


@pytest.mark.parametrize("damage", [b"", b"not an npz", "half"])
def test_an_unreadable_captcha_cache_is_made_again(tmp_path, capsys, damage):
    def cached():
        return captchas.cached_captchas(
            tmp_path, 3, 0, "test", captchas.CHARSET, (4, 4), (50, 120), 1
        )

    images, labels, path = cached()
    assert path is not None and not path.exists()  # written only once the run has begun
    captchas.save_captchas(path, images, labels, captchas.CHARSET)
    assert cached()[2] is None  # read back, not generated
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2] if damage == "half" else damage)
    again_images, again_labels, again_path = cached()
    assert again_path == path and "unreadable cache" in capsys.readouterr().err
    np.testing.assert_array_equal(again_images, images)  # the same seed makes the same captchas
    np.testing.assert_array_equal(again_labels, labels)


def test_generated_sets_are_cached_once_saved_and_read_back(tmp_path):
    sizes = {"train": 3, "validation": 2, "test": 2}
    options = 0, captchas.CHARSET, (4, 4), (50, 120), 1, tmp_path
    sets, source, unsaved = captchas.load_sets(None, sizes, *options)
    assert {role: len(sets[role][0]) for role in sizes} == sizes and source["seed"] == 0
    assert len(unsaved) == 3 and not any(path.exists() for path in unsaved)
    for path, (images, labels) in unsaved.items():
        captchas.save_captchas(path, images, labels, captchas.CHARSET)
    again, _, unsaved = captchas.load_sets(None, sizes, *options)
    assert unsaved == {}
    for role in sizes:
        np.testing.assert_array_equal(again[role][0], sets[role][0])
        np.testing.assert_array_equal(again[role][1], sets[role][1])
