"""Dog breeds by fine-tuning Xception: "基于fine tune的图像分类", kexue.fm/archives/4611.

ImageNet Xception → GLU feature Dense(64) ⊙ Dense(64, sigmoid) → softmax, an auxiliary softmax on
the 2048-d feature, a center loss on the GLU feature (loss weights 1, 0.25, 0.25); three stages:
backbone frozen (Adam), block13–14 unfrozen (SGD 1e-4), light augmentation. Both heads and their
blend α·p0 + (1−α)·p1 are reported after every stage. Article: about 80% on Baidu's 100 breeds.
Copying this file needs custom_loss.py too (CenterDistance). Details: docs/dogs_finetune.md.

    python dogs_finetune.py --quick                    # synthetic images: checks the plumbing only
    python dogs_finetune.py --data ~/StanfordDogs      # Images/ + train_list.mat + test_list.mat
    python dogs_finetune.py --data DIR --out runs/dogs # DIR/<breed>/*.jpg or Baidu; rerun resumes
    python dogs_finetune.py predict --model runs/dogs photo.jpg|DIR [--csv top5.csv]

Outputs: model.keras, metrics.json, history.csv, learning_curves.png, per_class.csv, classes.json.
"""

import argparse
import functools
import os
from pathlib import Path

import keras
import numpy as np
from keras import layers

from common import augment, devices, image_folders, reports, runfolder, runs
from custom_loss import CenterDistance, output_as_loss

SCRIPT = "dogs_finetune"
IMAGE_SIZE = 299  # the article's input size
FEATURE_SIZE = 64  # GLU width (the article's feature_size)
LOSS_WEIGHTS = {"softmax": 1.0, "l2": 0.25, "auxiliary": 0.25}
CLASSES_PER_BATCH, IMAGES_PER_CLASS = 16, 2  # 32 images a batch, as the article
PAIR_PROBABILITY = 0.5  # the article doubles each class table with same-class pairs: half are pairs
MASK_PROBABILITY = 0.125  # per quadrant, so an image loses one quadrant with p = 0.5
ALPHA_GRID = np.round(np.linspace(0, 1, 101), 2)  # 0, 0.01, …, 1
SYNTHETIC_CLASSES = 8  # --quick draws this many striped-blob "breeds"
# (name, backbone unfrozen from block13, augmentation, optimizer)
STAGES = [
    ("stage1", False, "heavy", "adam"),
    ("stage2", True, "heavy", "sgd"),
    ("stage3", True, "light", "sgd"),
]
PSEUDO_STAGE = ("pseudo", True, "heavy", "sgd")
# --quick: small and synthetic, every stage runs, in minutes on a CPU (71 px: Xception's smallest)
QUICK = {"image_size": 71, "epochs": 3, "steps_per_epoch": 8, "batch_size": 16}


# --------------------------------------------------------------------------------------------- data
def augment_batch(images, labels, members, pool, rng, mode, size):
    """heavy: with p = 0.5 an image is combined with another of its class (a collage of one breed
    is still that breed); otherwise rotated ±10°, zoomed 0.8–1.2 (zoom-out pastes onto a random
    training image), flipped and quadrant-masked. light (stage 3): zoom and flip only. Partners
    and backgrounds come from `pool` rows in `members` (training rows of each class) only."""
    out = np.empty((len(images), size, size, 3), np.uint8)
    training_rows = np.concatenate(members)
    pairs = rng.random(len(images)) < (PAIR_PROBABILITY if mode == "heavy" else 0.0)
    singles = np.flatnonzero(~pairs)
    for k in np.flatnonzero(pairs):
        out[k] = augment.random_combine(images[k], pool[rng.choice(members[labels[k]])], rng)
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


class DogBatches(image_folders.ClassBatches):
    """The article's batches: classes drawn ∝ size, IMAGES_PER_CLASS of each, augmented in `mode`
    (heavy or light); ((images, labels), (labels, 0, labels)) for the three outputs."""

    def __init__(self, images, labels, indices, mode, seed, steps, classes_per_batch, **kwargs):
        per_batch = (classes_per_batch, IMAGES_PER_CLASS)
        augment = functools.partial(augment_batch, mode=mode, size=images.shape[1])
        super().__init__(images, labels, indices, steps, seed, per_batch, augment, **kwargs)

    def __getitem__(self, step):
        images, classes = super().__getitem__(step)
        targets = classes[:, None].astype("int32")  # the l2 output's target is unused: zeros
        return (images, targets), (targets, np.zeros(targets.shape, "float32"), targets)


# -------------------------------------------------------------------------------------------- model
def build_model(num_classes, image_size=IMAGE_SIZE, weights="none"):
    """(training model [image, label] → [softmax, l2, auxiliary], prediction model image →
    [softmax, auxiliary], backbone, weights used). Inputs are RGB 0–255, scaled inside."""
    shape = (image_size, image_size, 3)
    options = {"include_top": False, "pooling": "avg", "input_shape": shape}
    backbone, weights_used = runs.load_backbone(keras.applications.Xception, weights, **options)
    image = keras.Input(shape, name="image")
    label = keras.Input((1,), dtype="int32", name="label")
    x = backbone(layers.Rescaling(1 / 127.5, offset=-1, name="xception_scaling")(image))
    linear = layers.Dense(FEATURE_SIZE, name="glu_linear")(x)
    gate = layers.Dense(FEATURE_SIZE, activation="sigmoid", name="glu_gate")(x)
    feature = layers.Multiply(name="glu")([linear, gate])
    # The heads and the centre loss stay float32 under --mixed-precision.
    head = layers.Dense(num_classes, activation="softmax", dtype="float32", name="softmax")
    softmax = head(feature)
    head = layers.Dense(num_classes, activation="softmax", dtype="float32", name="auxiliary")
    auxiliary = head(x)
    l2 = CenterDistance(num_classes, FEATURE_SIZE, dtype="float32", name="l2")([feature, label])
    model = keras.Model([image, label], [softmax, l2, auxiliary], name="dogs_xception")
    predict_model = keras.Model(image, [softmax, auxiliary], name="dogs_predict")
    return model, predict_model, backbone, weights_used


def set_trainable(backbone, unfreeze_top):
    """Stage 1: the whole backbone frozen. Stages 2–3: every layer from the first `block13` one on,
    which in Keras 3's order includes block13's residual Conv2D/BN, and block14."""
    backbone.trainable = unfreeze_top
    if unfreeze_top:
        first = next(k for k, layer in enumerate(backbone.layers) if "block13" in layer.name)
        for layer in backbone.layers[:first]:
            layer.trainable = False


def calibrate_batch_norm(backbone, sample):
    """Random init: BN statistics from one batch of uint8 training images. A random Xception's
    features shrink to ~1e-6 through 36 BN layers holding mean 0 / variance 1: frozen, it would
    hand the heads zeros. One training pass at momentum 0 sets what each layer really sees."""
    norms = [layer for layer in backbone.layers if isinstance(layer, layers.BatchNormalization)]
    saved = [(layer.trainable, layer.momentum) for layer in norms]
    for layer in norms:
        layer.trainable, layer.momentum = True, 0.0
    with devices.no_grad():  # torch would keep the autograd graph: 64 images at 299² overflow 24 GB
        backbone(keras.ops.convert_to_tensor(sample.astype("float32") / 127.5 - 1), training=True)
    for layer, (trainable, momentum) in zip(norms, saved):
        layer.trainable, layer.momentum = trainable, momentum


def compile_model(model, optimizer):
    sparse = "sparse_categorical_crossentropy"
    sgd = keras.optimizers.SGD(1e-4, momentum=0.9)
    model.compile(
        optimizer=keras.optimizers.Adam() if optimizer == "adam" else sgd,
        loss={"softmax": sparse, "l2": output_as_loss, "auxiliary": sparse},
        loss_weights=LOSS_WEIGHTS,
        metrics={"softmax": "accuracy", "auxiliary": "accuracy"},
    )


# -------------------------------------------------------------------------------------------- train
def train(args, run, placement=devices.Placement()):
    rng = runs.seed_everything(args.seed)
    listing = image_folders.load_labelled_folder(args.data) if args.data else None
    classes = len(listing["classes"]) if listing else SYNTHETIC_CLASSES
    model, predict_model, backbone, weights = build_model(classes, args.image_size, args.weights)
    run_dir = run.begin()  # inputs checked, model built: only now does the run folder get files
    if listing is None:  # --quick without --data: synthetic breeds, drawn once into the run
        args.data = run_dir / "synthetic_dogs"
        if not (args.data / "train_list.mat").is_file():
            image_folders.write_synthetic_classes(args.data, SYNTHETIC_CLASSES, seed=args.seed)
        print("--quick: SYNTHETIC striped-blob 'breeds' drawn by this script, not dog photos")
        listing = image_folders.load_labelled_folder(args.data)
    counts = f"{len(listing['paths'])} images, {len(listing['classes'])} classes"
    print(f"data: {args.data} ({listing['layout']} layout): {counts}")
    cache, size = args.cache or run_dir / "cache", args.image_size
    data = image_folders.cached_split(listing, size, cache, args.workers, args.seed, run_dir)
    progress = {"finished": [], "results": {}}  # stages trained and validated, their results
    if (run_dir / "progress.json").is_file():  # a resumed run
        progress = runfolder.read_json(run_dir / "progress.json")
    if weights == "none":
        print("note: a random backbone (no ImageNet weights): expect far below the article's 80%")
        if not progress["finished"]:
            rows = rng.choice(data["train"], min(64, len(data["train"])), replace=False)
            calibrate_batch_norm(backbone, data["images"][np.sort(rows)])
    stages = STAGES + [PSEUDO_STAGE] * bool(args.pseudo_label)
    models = model, predict_model, backbone
    predictions = train_stages(args, run_dir, models, stages, data, progress, placement)
    report = finish(args, run, data, predict_model, progress, predictions, placement)
    return run.finish({**report, "weights": weights, **placement.describe()})


def train_stages(args, run_dir, models, stages, data, progress, placement):
    """Train and validate every stage not finished yet (a finished one only loads its weights);
    returns the last validation predictions made, or None."""
    (model, predict_model, backbone), images = models, data["images"]
    classes_per_batch = min(args.batch_size // IMAGES_PER_CLASS, len(data["classes"]))
    options = {"steps": args.steps_per_epoch, "classes_per_batch": classes_per_batch}
    options.update(devices=placement.count, workers=args.workers)
    compiled_as, predictions = None, None
    for number, (stage, unfreeze_top, mode, optimizer) in enumerate(stages):
        if compiled_as != (unfreeze_top, optimizer):  # stage 3 keeps stage 2's SGD state
            set_trainable(backbone, unfreeze_top)
            compile_model(model, optimizer)
            predict_model.predict_function = None  # JAX, --devices: shardings follow trainables
            compiled_as = (unfreeze_top, optimizer)
        batches = None  # a finished stage is not trained again: fit loads its last weights
        if stage not in progress["finished"]:
            store, indices, labels = images, data["train"], data["labels"]
            if stage == "pseudo":
                store, indices, labels, progress["pseudo"] = add_pseudo_labels(
                    args, run_dir, predict_model, data, progress["results"], placement
                )
            trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
            print(
                f"{stage}: backbone {'block13-14 trainable' if unfreeze_top else 'frozen'}, "
                f"{optimizer}, {mode} augmentation, {trainable:,} trainable parameters"
            )
            batches = DogBatches(store, labels, indices, mode, [args.seed, number], **options)
        runfolder.fit(model, batches, folder=run_dir, epochs=args.epochs, name=stage)  # or resumes
        if stage in progress["finished"]:
            continue
        validation = data["validation"]
        predictions = predict_heads(predict_model, images, validation, args.workers, placement)
        result = evaluate_heads(*predictions, data["labels"][validation])
        print(
            f"{stage} validation: acc_0 {result['acc_0']:.4f}  acc_1 {result['acc_1']:.4f}  "
            f"α {result['alpha']:.2f} → acc_2 {result['acc_2']:.4f}   (article: ≈0.80)"
        )
        progress["finished"].append(stage)
        progress["results"][stage] = result
        runs.write_json(run_dir / "progress.json", progress)
    return predictions


def add_pseudo_labels(args, run_dir, predict_model, data, results, placement):
    """Predict the unlabelled folder with the last stage's blend; the images whose top probability
    reaches the threshold join training. Validation stays out (the article trained on it here)."""
    paths = image_folders.images_in(args.pseudo_label)
    cache = args.cache or run_dir / "cache"
    extra, readable, _ = image_folders.build_cache(paths, args.image_size, cache, args.workers)
    rows = np.flatnonzero(readable)
    p0, p1 = predict_heads(predict_model, extra, rows, args.workers, placement)
    alpha = results[STAGES[-1][0]]["alpha"]
    blend = alpha * p0 + (1 - alpha) * p1
    confident = blend.max(axis=1) >= args.pseudo_threshold
    chosen = rows[confident]
    print(f"pseudo-labels: {len(chosen)} of {len(p0)} reach probability ≥ {args.pseudo_threshold}")
    images, labels = data["images"], data["labels"]
    store_labels = np.concatenate([labels, np.zeros(len(extra), labels.dtype)])
    store_labels[len(images) + chosen] = blend[confident].argmax(axis=1)
    info = {"folder": str(args.pseudo_label), "threshold": args.pseudo_threshold}
    info.update(added=len(chosen), candidates=len(p0))
    indices = np.concatenate([data["train"], len(images) + chosen])
    return image_folders.ConcatenatedImages([images, extra]), indices, store_labels, info


# ----------------------------------------------------------------------------------------- evaluate
def search_alpha(p0, p1, labels):
    """α ∈ {0, 0.01, …, 1} maximising the accuracy of α·p0 + (1−α)·p1; ties go to the larger α
    (the main head). Returns (alpha, accuracy, accuracies over the grid)."""
    blends = [np.argmax(a * p0 + (1 - a) * p1, axis=1) for a in ALPHA_GRID]
    accuracies = np.array([np.mean(blend == labels) for blend in blends])
    best = len(ALPHA_GRID) - 1 - int(np.argmax(accuracies[::-1]))
    return float(ALPHA_GRID[best]), float(accuracies[best]), accuracies


def predict_heads(predict_model, images, rows, workers=1, placement=devices.Placement()):
    """Both heads' probabilities for images[rows], padded and batched to split across devices."""
    padded, batch_size = placement.pad(np.asarray(rows)), max(placement.usable(64), placement.count)
    batches = image_folders.ArrayBatches(images, padded, batch_size, workers=workers)
    p0, p1 = predict_model.predict(batches, verbose=0)
    return p0[: len(rows)], p1[: len(rows)]


def evaluate_heads(p0, p1, labels, alpha=None):
    """Accuracy of both heads and of their blend (α searched here unless given)."""
    alpha = search_alpha(p0, p1, labels)[0] if alpha is None else alpha
    heads = {"acc_0": p0, "acc_1": p1, "acc_2": alpha * p0 + (1 - alpha) * p1}
    result = {name: float(np.mean(p.argmax(1) == labels)) for name, p in heads.items()}
    return {**result, "alpha": alpha, "images": len(labels)}


def finish(args, run, data, predict_model, progress, predictions, placement):
    """Validation reports, the test split once (α chosen on validation), model and history saved."""
    last = progress["results"][progress["finished"][-1]]
    alpha, labels = last["alpha"], data["labels"]

    def heads(rows):
        return predict_heads(predict_model, data["images"], rows, args.workers, placement)

    p0, p1 = predictions or heads(data["validation"])
    guesses = np.argmax(alpha * p0 + (1 - alpha) * p1, axis=1)
    pairs = reports.write_confusion_report(
        labels[data["validation"]], guesses, data["classes"], run.path, "validation images", "breed"
    )
    shown = "; ".join(f"{first} ↔ {second} ×{count}" for first, second, count in pairs[:5])
    print(f"most confused breed pairs (validation): {shown}")
    test = None
    if len(data["test_set"]):  # looked at once
        test = data["test_set"].evaluate(
            lambda rows: evaluate_heads(*heads(rows), labels[rows], alpha=alpha)
        )
        print(
            f"test (once): acc_0 {test['acc_0']:.4f}  acc_1 {test['acc_1']:.4f}  blend α="
            f"{alpha:.2f} {test['acc_2']:.4f}  (article: ≈0.80; Xception on Stanford Dogs ≈0.90)"
        )
    with runs.atomic_path(run.path / "model.keras") as temporary:
        predict_model.save(temporary)
    info = {"classes": data["classes"], "alpha": alpha, "image_size": args.image_size}
    runs.write_json(run.path / "classes.json", info)
    stages = [name for name, *_ in STAGES + [PSEUDO_STAGE]]
    columns = ["loss", "softmax_accuracy", "auxiliary_accuracy", "l2_loss"]
    reports.merge_histories(run.path, stages, columns, f"{SCRIPT}: every stage's epochs in turn")
    print(f"outputs in {run.path}: model.keras, metrics.json, history.csv, per_class.csv, …")
    metrics = {"article": {"accuracy": 0.80, "note": "about 80% on Baidu's 100 breeds"}}
    metrics.update(layout=data["layout"], synthetic=bool(args.quick), image_size=args.image_size)
    metrics.update(classes=len(data["classes"]), unreadable_images=data["unreadable"])
    metrics.update(stages=progress["results"], pseudo_label=progress.get("pseudo"))
    metrics.update(validation=last, test=test, most_confused_pairs=pairs[:5])
    return {**metrics, "environment": runs.environment()}


# ------------------------------------------------------------------------------------------ predict
def predict(model_dir, target, csv_path=None, top=5):
    """The `top` breeds and their blended probabilities for an image or a folder of images."""
    model_dir = runfolder.find_run(SCRIPT, model_dir, need=("model.keras", "classes.json"))
    info = runfolder.read_json(model_dir / "classes.json")
    if not {"classes", "alpha", "image_size"} <= set(info):
        raise ValueError(f"{model_dir / 'classes.json'}: expected keys classes, alpha, image_size")
    paths = image_folders.images_in(target) if Path(target).is_dir() else [Path(target)]
    if not paths or not paths[0].is_file():
        raise ValueError(f"{target}: no image file or folder of images")
    if csv_path:  # refused before the model runs
        runfolder.check_folder(Path(csv_path).parent, "--csv")
        if Path(csv_path).is_dir():
            raise ValueError(f"--csv {csv_path}: is a folder")
    try:
        model = keras.models.load_model(model_dir / "model.keras", compile=False)
    except Exception as error:  # noqa: BLE001 (a damaged file: one line, not Keras' traceback)
        raise ValueError(f"{model_dir / 'model.keras'}: cannot be loaded ({error!r:.80})") from None
    images, kept = image_folders.decode_images(paths, info["image_size"])
    if images is None:
        raise ValueError(f"{target}: no readable image")
    p0, p1 = model.predict(images.astype("float32"), verbose=0)
    probabilities = info["alpha"] * p0 + (1 - info["alpha"]) * p1
    return reports.top_classes(kept, probabilities, info["classes"], top, csv_path, "breed")


# ---------------------------------------------------------------------------------------------- CLI
def parse_arguments(argv):
    epilog = "--epochs counts per stage (3, 4 with --pseudo-label). Other job: predict (--help)."
    description = __doc__.splitlines()[0]
    parser = argparse.ArgumentParser("dogs_finetune.py", description=description, epilog=epilog)
    data_help = "dog photos: DIR/<breed>/*.jpg, Stanford Dogs or Baidu's layout (see the docs)"
    standard = {"epochs": 30, "batch_size": 32, "weights": "auto", "data_help": data_help}
    runs.add_standard_arguments(parser, **standard)
    workers = min(4, os.cpu_count() or 1)
    positive = runs.positive_int
    for flag, kind, default, text in (
        ("--image-size", positive, IMAGE_SIZE, "square input side, ≥ 71 (default 299)"),
        ("--steps-per-epoch", positive, 200, "batches per epoch (default 200, article)"),
        ("--workers", positive, workers, "threads decoding and augmenting (default min(4, CPUs))"),
        ("--cache", str, None, "folder of the decoded-image cache (default OUT/cache)"),
        ("--pseudo-label", str, None, "TESTDIR: unlabelled images for one more stage"),
        ("--pseudo-threshold", runs.probability, 0.9, "least blended probability (default 0.9)"),
    ):
        parser.add_argument(flag, type=kind, default=default, help=text)
    devices.add_arguments(parser)
    predict_parser = argparse.ArgumentParser("dogs_finetune.py predict", description="top-k breeds")
    add = predict_parser.add_argument
    add("--model", required=True, help="a training run (its folder or its model.keras)")
    add("images", help="an image file or a folder of images")
    add("--csv", help="write a CSV here instead of printing")
    add("--top", type=runs.positive_int, default=5, help="how many breeds per image (default 5)")
    quick = {"train": QUICK}.get  # the predict verb has no --quick
    return runs.parse_command(argv, parser, {"predict": predict_parser}, quick)


def check_arguments(args):
    """What argparse cannot check alone; one line each."""
    if args.image_size < 71 or args.batch_size < IMAGES_PER_CLASS:
        raise SystemExit("error: need --image-size ≥ 71 (Xception's minimum) and --batch-size ≥ 2")
    if args.pseudo_threshold == 0:
        raise SystemExit("error: --pseudo-threshold must be in (0, 1]")
    if not args.data and not args.quick:
        raise SystemExit("error: pass --data DIR with dog photos, or --quick for a synthetic run")
    pseudo = args.pseudo_label and Path(args.pseudo_label)
    if pseudo and not (pseudo.is_dir() and image_folders.images_in(pseudo)):
        raise SystemExit(f"error: --pseudo-label {pseudo}: not a folder of images")
    if args.cache:
        runfolder.check_folder(Path(args.cache), "--cache")


def main(argv=None):
    args = parse_arguments(argv)
    try:
        if args.command == "predict":
            return predict(args.model, args.images, args.csv, args.top)
        check_arguments(args)
        run = runfolder.open_run(SCRIPT, args.out, runfolder.settings_of(args, runtime=("cache",)))
        if run.finished:
            return run.report_finished()
        with devices.placement(args.devices, args.mixed_precision) as placement:
            # the batch really drawn: whole classes of IMAGES_PER_CLASS
            placement.check_batch(args.batch_size // IMAGES_PER_CLASS * IMAGES_PER_CLASS)
            return train(args, run, placement)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    runs.command_line(main)
