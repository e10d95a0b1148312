"""Keras 3 (TensorFlow backend): spec -> keras.Model; a short custom loop (same batches as torch)."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bnbench import bn as bnmap  # noqa: E402
from bnbench import spec as specs  # noqa: E402
from bnbench.training import fit, prepare  # noqa: E402

EVAL_BATCH = 1024


def configure(threads: int, seed: int) -> None:
    """Pin TF to the rule's threads and make every op deterministic."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _layer(layer, weights):
    """The Keras layer for one spec entry, and the list to pass to set_weights (or None)."""
    if isinstance(layer, specs.Dense):
        w = next(weights)
        return keras.layers.Dense(layer.units, use_bias=layer.use_bias), [w["kernel"], w["bias"]]
    if isinstance(layer, specs.Conv2D):
        w = next(weights)
        return keras.layers.Conv2D(layer.filters, layer.kernel_size, use_bias=layer.use_bias), \
            [w["kernel"], w["bias"]]
    if isinstance(layer, specs.LSTM):
        w = next(weights)
        return keras.layers.LSTM(layer.units, use_bias=layer.use_bias), [w["kernel"], w["recurrent"], w["bias"]]
    if isinstance(layer, specs.BatchNorm):
        return keras.layers.BatchNormalization(**bnmap.keras_kwargs(layer.settings)), None
    if isinstance(layer, specs.ReLU):
        return keras.layers.ReLU(), None
    if isinstance(layer, specs.MaxPool):
        return keras.layers.MaxPooling2D(layer.size), None
    if isinstance(layer, specs.Flatten):
        return keras.layers.Flatten(), None
    raise TypeError(f"no Keras layer for {layer!r}")


def build_model(layers: list, shape: tuple, weights: list) -> keras.Sequential:
    model, weights = keras.Sequential([keras.Input(shape=shape)]), iter(weights)
    for layer in layers:
        built, values = _layer(layer, weights)
        model.add(built)
        if values is not None:
            use_bias = getattr(layer, "use_bias", True)
            built.set_weights(values if use_bias else [v for v in values[:-1]])
    return model


class Trainer:
    def __init__(self, run: dict, shape: tuple, outputs: int):
        layers = specs.build_spec(run["arch"], run["bn"], outputs)
        self.model = build_model(layers, shape, specs.initial_weights(layers, shape, run["seed"]))
        opt = run["optimizer"]
        self.optimizer = keras.optimizers.SGD(
            learning_rate=opt["learning_rate"], momentum=opt["momentum"], nesterov=opt["nesterov"])
        self.binary = outputs == 1
        self.loss_fn = (keras.losses.BinaryCrossentropy(from_logits=True) if self.binary
                        else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        self._step = tf.function(self._train_step, reduce_retracing=True)
        self._logits = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    def _targets(self, y: np.ndarray) -> np.ndarray:
        return y.reshape(-1, 1) if self.binary else y

    def _train_step(self, x, y):
        with tf.GradientTape() as tape:
            loss = self.loss_fn(y, self.model(x, training=True))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> None:
        self._step(tf.constant(x), tf.constant(self._targets(y)))

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        logits = np.concatenate([self._logits(tf.constant(x[i:i + EVAL_BATCH])).numpy()
                                 for i in range(0, len(x), EVAL_BATCH)])
        loss = float(self.loss_fn(self._targets(y), logits))
        predicted = (logits[:, 0] > 0) if self.binary else logits.argmax(axis=1)
        return loss, float(np.mean(predicted == y))


def versions() -> dict:
    return {"keras": keras.__version__, "tensorflow": tf.__version__}


def train(run: dict, data: dict, threads: int = 1, log=print) -> dict:
    configure(threads, run["seed"])
    data, shape, outputs = prepare(run, data)
    return fit(Trainer(run, shape, outputs), run, data, log)
