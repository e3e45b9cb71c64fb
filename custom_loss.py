"""Complex losses in Keras 3 (kexue.fm/archives/4493). SEED: the issue-6 helper replaces this file.

Contract that dogs_finetune.py relies on (keep these names and signatures):
- `CenterDistance(num_classes, feature_dim)`: layer, call([features (B,D), labels (B,) or (B,1) int]) -> (B,1),
  the squared distance Σ_d (x_d − c_{y,d})² to the class centre; centres are an Embedding(num_classes, D).
- `output_as_loss(y_true, y_pred)`: the article's `lambda y_true, y_pred: y_pred` (the output *is* the loss).
"""
import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="custom_loss")
class CenterDistance(layers.Layer):
    def __init__(self, num_classes, feature_dim, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.centers = layers.Embedding(num_classes, feature_dim, name="centers")

    def call(self, inputs):
        features, labels = inputs
        centers = self.centers(ops.reshape(ops.cast(labels, "int32"), (-1,)))
        return ops.sum(ops.square(features - centers), axis=-1, keepdims=True)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "feature_dim": self.feature_dim}


@keras.saving.register_keras_serializable(package="custom_loss")
def output_as_loss(y_true, y_pred):
    return y_pred
