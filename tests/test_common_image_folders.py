"""common/image_folders.py: the layouts of labelled photo folders, decoding, the decoded-image cache."""

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from common import image_folders


def _write_jpeg(path, rng, size=(40, 56), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=size + ((3,) if mode == "RGB" else ()), dtype=np.uint8)
    Image.fromarray(pixels, mode="RGB" if mode == "RGB" else "L").save(path)


def test_folder_layout_skips_corrupt_and_converts_grayscale_cmyk_alpha(tmp_path):
    rng = np.random.default_rng(0)
    _write_jpeg(tmp_path / "data" / "akita" / "a.jpg", rng)
    _write_jpeg(tmp_path / "data" / "akita" / "gray.jpg", rng, mode="L")
    (tmp_path / "data" / "akita" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "data" / "beagle").mkdir()
    Image.new("CMYK", (50, 30), (10, 20, 30, 40)).save(tmp_path / "data" / "beagle" / "cmyk.jpg")
    Image.new("RGBA", (30, 50), (255, 0, 0, 0)).save(tmp_path / "data" / "beagle" / "alpha.png")
    data = image_folders.load_labelled_folder(tmp_path / "data")
    assert data["layout"] == "folders" and data["classes"] == ["akita", "beagle"]
    images, readable, unreadable = image_folders.build_cache(
        data["paths"], 32, tmp_path / "cache", workers=2
    )
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8
    assert unreadable == [str(tmp_path / "data" / "akita" / "broken.jpg")] and readable.sum() == 4
    alpha = images[
        [str(p) for p in data["paths"]].index(str(tmp_path / "data" / "beagle" / "alpha.png"))
    ]
    assert (alpha == 255).all()  # fully transparent → white background, not the hidden red


def test_empty_class_folder_and_imageless_folder_are_clear_errors(tmp_path):
    (tmp_path / "empty_class").mkdir()
    _write_jpeg(tmp_path / "ok" / "x.jpg", np.random.default_rng(0))
    with pytest.raises(ValueError, match="holds no images"):
        image_folders.load_labelled_folder(tmp_path)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="no class folders"):
        image_folders.load_labelled_folder(tmp_path / "nothing")


def test_baidu_layout_remaps_noncontiguous_ids_in_order_of_first_appearance(tmp_path):
    rng = np.random.default_rng(0)
    rows = [("img1", "71"), ("img2", "3"), ("img3", "71"), ("img4", "120"), ("img5", "3")]
    for image_id, _ in rows:
        _write_jpeg(tmp_path / "train" / f"{image_id}.jpg", rng)
    (tmp_path / "train.txt").write_text("".join(f"{i} {c} http://x/{i}\n" for i, c in rows))
    data = image_folders.load_labelled_folder(tmp_path)
    assert data["layout"] == "baidu"
    assert data["classes"] == ["class_71", "class_3", "class_120"]
    np.testing.assert_array_equal(data["labels"], [0, 1, 0, 2, 1])
    assert data["paths"][3] == tmp_path / "train" / "img4.jpg" and not data["test_mask"].any()


def test_stanford_layout_reads_mat_lists_and_keeps_official_split(tmp_path):
    rng = np.random.default_rng(0)
    train = ["n02085620-Chihuahua/n02085620_1.jpg", "n02085782-Japanese_spaniel/n02085782_1.jpg"]
    test = ["n02085620-Chihuahua/n02085620_2.jpg"]
    for name in train + test:
        _write_jpeg(tmp_path / "Images" / name, rng)
    for file_name, names, labels in (
        ("train_list.mat", train, [1, 2]),
        ("test_list.mat", test, [1]),
    ):
        savemat(
            tmp_path / file_name,
            {
                "file_list": np.array([[np.array([n])] for n in names], dtype=object),
                "labels": np.array(labels)[:, None],
            },
        )
    data = image_folders.load_labelled_folder(tmp_path)
    assert data["layout"] == "stanford" and data["classes"] == ["Chihuahua", "Japanese_spaniel"]
    np.testing.assert_array_equal(data["labels"], [0, 1, 0])
    np.testing.assert_array_equal(data["test_mask"], [False, False, True])


def test_cache_writes_are_atomic_and_stale_partials_are_removed(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    paths = [tmp_path / "images" / f"{k}.jpg" for k in range(6)]
    for path in paths:
        _write_jpeg(path, rng)
    image_folders.build_cache(paths, 32, tmp_path / "done", workers=1)
    stem = next((tmp_path / "done").glob("*.npy")).stem
    real_decode, calls = image_folders.decode_image, []

    def ctrl_c_on_the_third(path, size):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_decode(path, size)

    with monkeypatch.context() as patch:
        patch.setattr(image_folders, "decode_image", ctrl_c_on_the_third)
        with pytest.raises(KeyboardInterrupt):
            image_folders.build_cache(paths, 32, tmp_path / "interrupted", workers=1)
    assert not list((tmp_path / "interrupted").iterdir())  # no partial file under any name
    killed = tmp_path / "killed"
    killed.mkdir()
    for name in (f".{stem}.k1ll3d.npy", f"{stem}.4242.partial.npy"):  # a SIGKILL's leftovers,
        (killed / name).write_bytes(b"half")  # named as now and as older versions did
    images, readable, _ = image_folders.build_cache(paths, 32, killed, workers=1)
    assert sorted(path.name for path in killed.iterdir()) == [f"{stem}.json", f"{stem}.npy"]
    assert images.shape == (6, 32, 32, 3) and readable.all()


def test_decode_images_skips_unreadable_files(tmp_path, capsys):
    _write_jpeg(tmp_path / "a.jpg", np.random.default_rng(0))
    (tmp_path / "b.jpg").write_bytes(b"not an image")
    images, kept = image_folders.decode_images([tmp_path / "a.jpg", tmp_path / "b.jpg"], 32)
    assert images.shape == (1, 32, 32, 3) and kept == [tmp_path / "a.jpg"]
    assert "skipped" in capsys.readouterr().err
    assert image_folders.decode_images([tmp_path / "b.jpg"], 32) == (None, [])


def test_cached_split_holds_out_a_tenth_of_each_class_and_seals_the_test_split(tmp_path):
    folder = image_folders.write_synthetic_classes(tmp_path / "data", num_classes=3, per_class=30)
    listing = image_folders.load_labelled_folder(folder)
    assert listing["layout"] == "stanford" and listing["test_mask"].sum() == 30
    data = image_folders.cached_split(listing, 32, tmp_path / "cache", 1, 0, tmp_path)
    train, validation = data["train"], data["validation"]
    assert len(train) == 54 and len(validation) == 6 and len(data["test_set"]) == 30
    assert not set(train) & set(validation) and not listing["test_mask"][train].any()
    assert np.bincount(data["labels"][validation]).tolist() == [2, 2, 2]
    assert data["unreadable"] == 0 and data["images"].shape == (90, 32, 32, 3)


def test_cached_split_lists_unreadable_images_and_refuses_an_emptied_class(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(3):
        _write_jpeg(tmp_path / "data" / "akita" / f"{k}.jpg", rng)
    (tmp_path / "data" / "beagle").mkdir()
    (tmp_path / "data" / "beagle" / "broken.jpg").write_bytes(b"not an image")
    listing = image_folders.load_labelled_folder(tmp_path / "data")
    with pytest.raises(
        ValueError, match=r"no readable training images for class\(es\) \['beagle'\]"
    ):
        image_folders.cached_split(listing, 32, tmp_path / "cache", 1, 0, tmp_path)
    assert (tmp_path / "unreadable_images.txt").read_text().startswith(str(tmp_path / "data"))


def test_concatenated_images_read_as_one_array():
    first, second = np.zeros((2, 4, 4, 3), np.uint8), np.ones((3, 4, 4, 3), np.uint8)
    both = image_folders.ConcatenatedImages([first, second])
    assert len(both) == 5 and both.shape == (5, 4, 4, 3)
    assert both[[4, 0, 2]][:, 0, 0, 0].tolist() == [1, 0, 1] and both[1].max() == 0


def test_synthetic_classes_are_reproducible(tmp_path):
    one = image_folders.write_synthetic_classes(
        tmp_path / "one", num_classes=2, per_class=3, seed=5
    )
    two = image_folders.write_synthetic_classes(
        tmp_path / "two", num_classes=2, per_class=3, seed=5
    )
    names = sorted(path.relative_to(one) for path in one.rglob("*.jpg"))
    assert len(names) == 6
    assert all((one / name).read_bytes() == (two / name).read_bytes() for name in names)


def test_batch_holds_16_distinct_classes_times_2():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(40), rng.integers(3, 30, 40))
    members = [np.flatnonzero(labels == c) for c in range(40)]
    for _ in range(50):
        rows, classes = image_folders.sample_classes(members, rng, 16, 2)
        assert len(rows) == 32 and len(np.unique(classes)) == 16
        np.testing.assert_array_equal(labels[rows], classes)
        assert (np.bincount(classes, minlength=40)[np.unique(classes)] == 2).all()


def test_classes_are_drawn_in_proportion_to_size():
    """Successive draws without replacement: the first class is ∝ size; the more images, the more often drawn."""
    rng = np.random.default_rng(0)
    sizes = np.arange(1, 33)
    members = [np.arange(n) for n in sizes]
    first, included, draws = np.zeros(32), np.zeros(32), 6_000
    for _ in range(draws):
        _, classes = image_folders.sample_classes(members, rng, 16, 2)
        first[classes[0]] += 1
        included[np.unique(classes)] += 1
    expected = draws * sizes / sizes.sum()
    assert np.all(np.abs(first - expected) < 4 * np.sqrt(expected) + 1)
    assert np.all(np.diff(included.reshape(4, 8).sum(1)) > 0)  # quarters of the classes by size
