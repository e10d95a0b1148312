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
from bnbench.training import fit  # noqa: E402

EVAL_BATCH = 8192


def configure(threads: int, seed: int) -> None:
    """Pin TF to the rule's threads and make every op deterministic."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_model(layers: list, n_features: int, weights: list) -> keras.Sequential:
    model = keras.Sequential([keras.Input(shape=(n_features,))])
    dense_weights = iter(weights)
    for layer in layers:
        if isinstance(layer, specs.Dense):
            kernel, bias = next(dense_weights)
            dense = keras.layers.Dense(layer.units, use_bias=layer.use_bias)
            model.add(dense)
            dense.set_weights([kernel, bias] if layer.use_bias else [kernel])
        elif isinstance(layer, specs.BatchNorm):
            model.add(keras.layers.BatchNormalization(**bnmap.keras_kwargs(layer.settings)))
        elif isinstance(layer, specs.ReLU):
            model.add(keras.layers.ReLU())
    return model


class Trainer:
    def __init__(self, run: dict, n_features: int):
        layers = specs.build_spec(run["arch"], run["bn"])
        self.model = build_model(layers, n_features, specs.initial_weights(layers, n_features, run["seed"]))
        opt = run["optimizer"]
        self.optimizer = keras.optimizers.SGD(
            learning_rate=opt["learning_rate"], momentum=opt["momentum"], nesterov=opt["nesterov"])
        self.loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
        self._step = tf.function(self._train_step, reduce_retracing=True)
        self._logits = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    def _train_step(self, x, y):
        with tf.GradientTape() as tape:
            loss = self.loss_fn(y, self.model(x, training=True))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> None:
        self._step(tf.constant(x), tf.constant(y.reshape(-1, 1)))

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        logits = np.concatenate([self._logits(tf.constant(x[i:i + EVAL_BATCH])).numpy()
                                 for i in range(0, len(x), EVAL_BATCH)])[:, 0]
        loss = float(self.loss_fn(y.reshape(-1, 1), logits.reshape(-1, 1)))
        return loss, float(np.mean((logits > 0) == (y > 0.5)))


def versions() -> dict:
    return {"keras": keras.__version__, "tensorflow": tf.__version__}


def train(run: dict, data: dict, threads: int = 1, log=print) -> dict:
    configure(threads, run["seed"])
    return fit(Trainer(run, data["x_train"].shape[1]), run, data, log)
