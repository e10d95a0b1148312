"""Keras 3 (TensorFlow backend): spec -> keras.Model; a short custom loop (same batches as torch)."""

from __future__ import annotations

import os
import random
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras reads ~/.keras/keras.json at import (floatx, epsilon, image_data_format: a user's float64 or
# channels_first would silently change results) and writes it when missing (a file every parallel job
# would share). A Keras home that cannot exist gives Keras' defaults and writes nothing.
os.environ["KERAS_HOME"] = os.path.join(os.devnull, "keras")

# Keras imports matplotlib.pyplot for its image-gallery helpers, a second of every training job's
# start-up. Hide matplotlib while Keras loads (those helpers, which bnbench never calls, then see it as
# missing); a process that already has matplotlib keeps it.
_hide_matplotlib = "matplotlib" not in sys.modules
if _hide_matplotlib:
    sys.modules["matplotlib"] = None  # makes `import matplotlib...` raise ImportError
import keras  # noqa: E402

if _hide_matplotlib:
    del sys.modules["matplotlib"]
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bnbench import BnbenchError  # noqa: E402
from bnbench.training import bn as bnmap  # noqa: E402
from bnbench.training import spec as specs  # noqa: E402
from bnbench.training.loop import EVAL_BATCH, SPLITS  # noqa: E402

NAME = "Keras (TensorFlow)"


def select_device(setting: str) -> str:
    """config `device`: cpu (hide GPUs from TF), cuda (a GPU must be visible) or auto. Must run before
    TensorFlow initialises its devices; returns the device training uses."""
    gpus = tf.config.list_physical_devices("GPU")
    if setting == "cuda" and not gpus:
        raise BnbenchError("config device: cuda, but TensorFlow sees no GPU here (tensorflow-cpu has no "
                           "CUDA support); set device: auto or cpu, or install a CUDA build of TensorFlow")
    if setting == "cpu" and gpus:
        tf.config.set_visible_devices([], "GPU")
    return "cuda" if gpus and setting != "cpu" else "cpu"  # named as torch names it


def configure(threads: int, seed: int) -> None:
    """Pin TF to the rule's threads, seed the RNGs and make every op deterministic. Called again for each
    further run of a job: then only Python's and NumPy's RNGs are seeded again, not TensorFlow's global
    seed, because setting it clears TF's kernel caches (~0.1 s per run) and no training op draws from
    it (initial weights and batch order come from NumPy generators of the run seed; a test checks that
    each run of a job trains exactly as it would alone)."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # fixed once TF has run an op in this process (as torch's interop threads)
        pass
    if _seeded:
        random.seed(seed)
        np.random.seed(seed)
    else:
        keras.utils.set_random_seed(seed)
        _seeded.append(seed)
    tf.config.experimental.enable_op_determinism()


_seeded: list[int] = []  # TensorFlow's global seed, once set in this process


class _WeightNorm:
    """Weight normalization for a Keras Dense / Conv2D (Keras 3 has none): the layer's kernel variable is v,
    a variable g (one per output unit) is added, and the kernel the layer computes with is g * v / ||v||,
    the norm per output unit over all other axes (torch's weight_norm with dim 0 on its [out, ...] layout)."""

    def build(self, input_shape):
        super().build(input_shape)
        self.g = self.add_weight(shape=(self._kernel.shape[-1],), name="g", initializer="ones")

    @property
    def kernel(self):
        v = self._kernel
        return v * (self.g / keras.ops.sqrt(keras.ops.sum(keras.ops.square(v), axis=tuple(range(len(v.shape) - 1)))))


class WeightNormDense(_WeightNorm, keras.layers.Dense):
    pass


class WeightNormConv2D(_WeightNorm, keras.layers.Conv2D):
    pass


def _layer(layer, shape: tuple):
    """The Keras layer for one spec entry (`shape`: the channels-last sample shape entering it)."""
    if isinstance(layer, specs.Dense):
        return (WeightNormDense if layer.weight_norm else keras.layers.Dense)(layer.units, use_bias=layer.use_bias)
    if isinstance(layer, specs.Conv2D):
        conv = WeightNormConv2D if layer.weight_norm else keras.layers.Conv2D
        return conv(layer.filters, layer.kernel_size, use_bias=layer.use_bias)
    if isinstance(layer, specs.LSTM):
        return keras.layers.LSTM(layer.units, use_bias=layer.use_bias)
    if isinstance(layer, specs.BatchNorm):
        if layer.renorm is not None:
            return keras.layers.BatchNormalization(**bnmap.keras_renorm_kwargs(layer.settings, layer.renorm))
        return keras.layers.BatchNormalization(**bnmap.keras_kwargs(layer.settings))
    if isinstance(layer, specs.LayerNorm):  # over the whole sample (Keras' default axis -1 is the last axis only)
        settings = layer.settings
        return keras.layers.LayerNormalization(axis=list(range(1, len(shape) + 1)), epsilon=settings.epsilon,
                                               center=settings.center, scale=settings.scale)
    if isinstance(layer, specs.GroupNorm):
        settings = layer.settings
        return keras.layers.GroupNormalization(layer.groups, epsilon=settings.epsilon, center=settings.center,
                                               scale=settings.scale)
    if isinstance(layer, specs.ReLU):
        return keras.layers.ReLU()
    if isinstance(layer, specs.SELU):
        return keras.layers.Activation("selu")
    if isinstance(layer, specs.MaxPool):
        return keras.layers.MaxPooling2D(layer.size)
    if isinstance(layer, specs.Flatten):
        return keras.layers.Flatten()
    if isinstance(layer, specs.Dropout):  # the training step applies the run's masks here (Trainer._forward)
        return keras.layers.Identity()
    raise TypeError(f"no Keras layer for {layer!r}")


def _values(layer, w: dict) -> list:
    """spec.initial_weights' entry as the list Keras' set_weights expects for `layer`."""
    if isinstance(layer, specs.NORM_LAYERS):
        settings = layer.settings
        values = [w["gamma"]] * settings.scale + [w["beta"]] * settings.center
        if isinstance(layer, specs.BatchNorm):
            values += [w["moving_mean"], w["moving_variance"]]
            values += [w[key] for key in specs.RENORM_STATE] if layer.renorm is not None else []
        return values
    kernels = [w["kernel"], w["recurrent"]] if isinstance(layer, specs.LSTM) else [w["kernel"]]
    return kernels + ([w["bias"]] if layer.use_bias else []) + ([w["g"]] if getattr(layer, "weight_norm", False) else [])


def build_model(layers: list, shape: tuple, weights: list) -> keras.Sequential:
    model = keras.Sequential([keras.Input(shape=shape)])
    for layer in layers:
        model.add(_layer(layer, shape))
        shape = specs.output_shape(layer, shape)
    load_weights(model, layers, weights)
    return model


def load_weights(model: keras.Sequential, layers: list, weights: list) -> None:
    """Put weights in spec.initial_weights' format into a model build_model made from `layers`."""
    weights = iter(weights)
    for layer, built in zip(layers, model.layers):
        if isinstance(layer, specs.STATEFUL):  # (a norm without gamma and beta has an entry, no variables)
            entry = next(weights)
            if built.weights:
                built.set_weights(_values(layer, entry))


NORM_CLASSES = (keras.layers.BatchNormalization, keras.layers.LayerNormalization, keras.layers.GroupNormalization)


def _norm_state(layer) -> dict:
    """A normalization layer's gamma/beta (identity values where it has none) and BN's statistics."""
    # gamma's shape, also where the layer has none: the sample's (layer norm) or its channels'
    ones = np.ones(layer.input.shape[1:] if isinstance(layer, keras.layers.LayerNormalization)
                   else layer.input.shape[-1:], np.float32)
    state = {"gamma": layer.gamma.numpy() if layer.scale else ones, "beta": layer.beta.numpy() if layer.center else 0 * ones}
    if isinstance(layer, keras.layers.BatchNormalization):
        state.update(moving_mean=layer.moving_mean.numpy(), moving_variance=layer.moving_variance.numpy())
        if layer.renorm:
            state.update({key: getattr(layer, key).numpy() for key in specs.RENORM_STATE})
    return state


def export_weights(model: keras.Sequential) -> list[dict]:
    """The model's weights and normalization state in spec.initial_weights' format (torch's export mirrors it)."""
    exported = []
    for layer in model.layers:
        if isinstance(layer, NORM_CLASSES):
            exported.append(_norm_state(layer))
        elif isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D, keras.layers.LSTM)):
            values = [v.numpy() for v in layer.weights]
            entry = dict(zip(["kernel", "recurrent"] if isinstance(layer, keras.layers.LSTM) else ["kernel"],
                             values))
            n_out = values[0].shape[-1]
            entry["bias"] = values[len(entry)] if layer.use_bias else np.zeros(n_out, np.float32)  # after the kernels
            if isinstance(layer, _WeightNorm):
                entry["g"] = layer.g.numpy()
            exported.append(entry)
    return exported


class Trainer:
    # What the model, its optimizer and the traced epoch graph depend on: runs that differ in nothing
    # else (seeds of one variant) reuse them, and the graph is traced once per job, not once per run.
    GRAPH_KEYS = ("arch", "bn", "optimizer", "batch_size", "dropout")

    def __init__(self, run: dict, data: dict, shape: tuple, outputs: int, device: str = "cpu",
                 weights: list | None = None):
        """`weights` (Keras layout) default to the run seed's spec.initial_weights. TensorFlow places
        ops on `device` itself (select_device hid the GPU when it must not be used)."""
        self.device, self.shape, self.outputs = device, shape, outputs
        self.binary = outputs == 1
        self.loss_fn = (keras.losses.BinaryCrossentropy(from_logits=True) if self.binary
                        else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        self.splits = {split: self._to_tensors(data, split) for split in SPLITS}
        self._graph = None
        self.start_run(run, weights)

    def start_run(self, run: dict, weights: list | None = None) -> None:
        """Back to the start of `run`: its initial weights and BN statistics, the optimizer's initial
        state. The model and its traced graph are kept when `run` needs the same ones."""
        layers = specs.run_layers(run, self.outputs)
        weights = specs.run_weights(run, layers, self.shape) if weights is None else weights
        self.layers, self.dropouts = layers, specs.dropouts(layers, self.shape)
        graph = [run.get(key) for key in self.GRAPH_KEYS]
        if graph != self._graph:
            self._build(run, layers, weights)
            self._graph = graph
            return
        load_weights(self.model, layers, weights)
        for variable, value in zip(self.optimizer.variables, self._optimizer_start):
            variable.assign(value)

    def _build(self, run: dict, layers: list, weights: list) -> None:
        self.model = build_model(layers, self.shape, weights)
        opt = run["optimizer"]
        self.optimizer = keras.optimizers.SGD(
            learning_rate=opt["learning_rate"], momentum=opt["momentum"], nesterov=opt["nesterov"])
        self.optimizer.build(self.model.trainable_variables)  # slots exist before the epoch graph runs
        self._optimizer_start = [variable.numpy() for variable in self.optimizer.variables]
        self.batch_size = run["batch_size"]
        self._epoch = tf.function(self._train_epoch)
        self._logits = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    def _to_tensors(self, data: dict, split: str) -> tuple[tf.Tensor, tf.Tensor]:
        """Move one split into TF and drop the NumPy copy, so the job holds the dataset once."""
        x, y = data.pop(f"x_{split}"), data.pop(f"y_{split}")
        return tf.constant(x), tf.constant(y.reshape(-1, 1) if self.binary else y)

    def _forward(self, x, masks):
        """The model in training mode; with dropout, layer by layer, each Dropout's mask applied."""
        if not masks:
            return self.model(x, training=True)
        masks = iter(masks)
        for layer, built in zip(self.layers, self.model.layers):
            if isinstance(layer, specs.Dropout) and layer.alpha:  # AlphaDropout, its float32 constants
                alpha_p, a, b = (tf.constant(c, x.dtype) for c in specs.alpha_dropout_affine(layer.rate))
                x = a * tf.where(next(masks), x, alpha_p) + b
            elif isinstance(layer, specs.Dropout):
                scale = tf.constant(specs.keep_scale(layer.rate), x.dtype)  # the float32 factor, exactly
                x = x * tf.where(next(masks), scale, tf.zeros((), x.dtype))
            else:
                x = built(x, training=True)
        return x

    def _train_step(self, x, y, masks=()):
        with tf.GradientTape() as tape:
            loss = self.loss_fn(y, self._forward(x, masks))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return loss

    def _train_epoch(self, x, y, order, masks):
        # The whole epoch is one graph: no Python round-trip per step (~2x faster than a step function).
        # x, y and the dropout masks are arguments, not captured constants, so the graph never embeds them.
        n = tf.shape(order)[0]
        total, steps = tf.constant(0.0, keras.config.floatx()), tf.constant(0.0, keras.config.floatx())
        for first in tf.range(0, n, self.batch_size):
            index = order[first:tf.minimum(first + self.batch_size, n)]
            batch_masks = [tf.gather(mask, index) for mask in masks]
            total += self._train_step(tf.gather(x, index), tf.gather(y, index), batch_masks)
            steps += 1.0
        return total / steps

    def train_epoch(self, order: np.ndarray, masks: list[np.ndarray] = ()) -> float:
        """One SGD step per mini-batch of x_train[order] (dropout: `masks`, rows by sample); returns the
        mean of the steps' losses."""
        return float(self._epoch(*self.splits["train"], tf.constant(order), [tf.constant(m) for m in masks]))

    def state(self) -> dict[str, np.ndarray]:
        """Weights and BN moving statistics, optimizer variables (see training.Trainer), keyed by
        position: Keras numbers variable names per process. TF has no RNG state to save: its global
        seed is set from the run seed at start-up (`configure`), and op determinism disables its
        stateful global generator."""
        arrays = {f"model/{i}": v.numpy() for i, v in enumerate(self.model.variables)}
        arrays.update({f"optimizer/{i}": v.numpy() for i, v in enumerate(self.optimizer.variables)})
        return arrays

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        for prefix, variables in (("model", self.model.variables), ("optimizer", self.optimizer.variables)):
            for i, variable in enumerate(variables):
                variable.assign(arrays[f"{prefix}/{i}"])

    # BN's statistics for bnbench.training.diagnostics (renorm's inference reads the same two variables)
    def _moving_layers(self) -> list:
        return [layer for layer in self.model.layers if isinstance(layer, keras.layers.BatchNormalization)]

    def moving_statistics(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in self._moving_layers()]

    def set_moving_statistics(self, statistics: list) -> None:
        for layer, (mean, variance) in zip(self._moving_layers(), statistics):
            layer.moving_mean.assign(np.asarray(mean, layer.moving_mean.dtype))  # (float64 models stay exact)
            layer.moving_variance.assign(np.asarray(variance, layer.moving_variance.dtype))

    def norm_inputs(self, rows: np.ndarray, layer: int) -> np.ndarray:
        """The inputs of the `layer`-th BN layer for training samples `rows`, in inference mode."""
        position = self.model.layers.index(self._moving_layers()[layer])
        x = tf.gather(self.splits["train"][0], rows)
        for built in self.model.layers[:position]:
            x = built(x, training=False)
        return x.numpy()

    def evaluate(self, split: str) -> tuple[float, float]:
        x, y = self.splits[split]
        logits = tf.concat([self._logits(x[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)], axis=0)
        loss = float(self.loss_fn(y, logits))
        predicted = (logits[:, 0] > 0).numpy() if self.binary else logits.numpy().argmax(axis=1)
        labels = y.numpy()[:, 0] > 0.5 if self.binary else y.numpy()
        return loss, int(np.count_nonzero(predicted == labels)) / len(labels)  # an exact fraction


def versions() -> dict:
    return {"keras": keras.__version__, "tensorflow": tf.__version__}

