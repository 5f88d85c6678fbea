"""tfmot's "Pruning comprehensive guide", cell by cell, with ``import prunekit as tfmot``.

Keras 3 spellings replace ``tf.keras`` (``keras.*``), weights files end in ``.weights.h5`` and
models are saved as ``.keras``; the custom training loop is written once per backend (the
guide's ``tf.GradientTape`` on TensorFlow) and once backend-agnostically with
``train_on_batch``. Everything else is the guide's code.
"""

from __future__ import annotations

import os
import tempfile
import zipfile

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_numpy

import prunekit as tfmot

INPUT_SHAPE = [20]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x_train = rng.normal(size=(1, 20)).astype(np.float32)
    y_train = keras.utils.to_categorical(rng.integers(0, 20, size=(1,)), num_classes=20)
    return x_train, y_train


def setup_model():
    return keras.Sequential([keras.layers.Dense(20, input_shape=INPUT_SHAPE),
                             keras.layers.Flatten()])


@pytest.fixture
def pretrained_weights(data, tmp_path):
    x_train, y_train = data
    model = setup_model()
    model.compile(loss=keras.losses.categorical_crossentropy, optimizer="adam",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, verbose=0)
    path = os.path.join(tmp_path, "pretrained.weights.h5")
    model.save_weights(path)
    return path


def get_gzipped_model_size(model):
    _, keras_file = tempfile.mkstemp(".keras")
    model.save(keras_file)
    _, zipped_file = tempfile.mkstemp(".zip")
    with zipfile.ZipFile(zipped_file, "w", compression=zipfile.ZIP_DEFLATED) as f:
        f.write(keras_file)
    return os.path.getsize(zipped_file)


def wrapper_count(model):
    return sum(isinstance(layer, tfmot.PruneLowMagnitude) for layer in model.layers)


def test_define_models(pretrained_weights):
    base_model = setup_model()
    base_model.load_weights(pretrained_weights)
    model_for_pruning = tfmot.sparsity.keras.prune_low_magnitude(base_model)
    model_for_pruning.summary(print_fn=lambda *args, **kwargs: None)
    assert wrapper_count(model_for_pruning) == 2
    np.testing.assert_array_equal(to_numpy(model_for_pruning.layers[0].layer.kernel),
                                  to_numpy(base_model.layers[0].kernel))

    def apply_pruning_to_dense(layer):
        if isinstance(layer, keras.layers.Dense):
            return tfmot.sparsity.keras.prune_low_magnitude(layer)
        return layer

    model_for_pruning = keras.models.clone_model(base_model,
                                                 clone_function=apply_pruning_to_dense)
    assert [type(layer).__name__ for layer in model_for_pruning.layers] == [
        "PruneLowMagnitude", "Flatten"]

    i = keras.Input(shape=(20,))
    x = tfmot.sparsity.keras.prune_low_magnitude(keras.layers.Dense(10))(i)
    o = keras.layers.Flatten()(x)
    assert wrapper_count(keras.Model(inputs=i, outputs=o)) == 1

    model_for_pruning = keras.Sequential([
        tfmot.sparsity.keras.prune_low_magnitude(
            keras.layers.Dense(20, input_shape=INPUT_SHAPE)),
        keras.layers.Flatten()])
    assert model_for_pruning.built and wrapper_count(model_for_pruning) == 1

    class MyDenseLayer(keras.layers.Dense, tfmot.sparsity.keras.PrunableLayer):
        def get_prunable_weights(self):
            return [self.kernel, self.bias]  # Prune bias also, as the guide does

    model_for_pruning = keras.Sequential([
        tfmot.sparsity.keras.prune_low_magnitude(MyDenseLayer(20, input_shape=INPUT_SHAPE)),
        keras.layers.Flatten()])
    assert [tuple(m.shape) for m in model_for_pruning.layers[0].masks] == [(20, 20), (20,)]

    pruning_params = {"block_size": [1, 16]}
    model_for_pruning = tfmot.sparsity.keras.prune_low_magnitude(base_model, **pruning_params)
    assert model_for_pruning.layers[0].block_size == (1, 16)


def test_model_fit_with_callbacks(data, pretrained_weights, tmp_path):
    x_train, y_train = data
    base_model = setup_model()
    base_model.load_weights(pretrained_weights)
    model_for_pruning = tfmot.sparsity.keras.prune_low_magnitude(base_model)
    log_dir = str(tmp_path / "logs")
    callbacks = [tfmot.sparsity.keras.UpdatePruningStep(),
                 tfmot.sparsity.keras.PruningSummaries(log_dir=log_dir)]
    model_for_pruning.compile(loss=keras.losses.categorical_crossentropy, optimizer="adam",
                              metrics=["accuracy"])
    model_for_pruning.fit(x_train, y_train, callbacks=callbacks, epochs=2, verbose=0)
    # ConstantSparsity(0.5, 0) prunes every 100 steps from step 0; the first training batch
    # is step 1, so two batches prune nothing yet (tfmot-behaviour.md §2).
    wrapper = model_for_pruning.layers[0]
    assert int(to_numpy(wrapper.pruning_step)) == 2
    assert float((to_numpy(wrapper.layer.kernel) == 0).mean()) == 0.0
    assert os.path.isdir(os.path.join(log_dir, "metrics"))


def guide_loop_parts(pretrained_weights):
    base_model = setup_model()
    base_model.load_weights(pretrained_weights)
    model_for_pruning = tfmot.sparsity.keras.prune_low_magnitude(
        base_model, pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.5, 0, frequency=1))
    return model_for_pruning, keras.losses.categorical_crossentropy, keras.optimizers.Adam()


def train_step(model, loss, optimizer, x, y):
    """One gradient step, written the way each backend's own custom-loop guide writes it."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss_value = loss(y, logits)
        grads = tape.gradient(loss_value, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    elif BACKEND == "jax":
        import jax

        def compute_loss(trainable, non_trainable):
            logits, non_trainable = model.stateless_call(trainable, non_trainable, x,
                                                         training=True)
            return keras.ops.mean(loss(y, logits)), non_trainable

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        (_, non_trainable), grads = jax.value_and_grad(compute_loss, has_aux=True)(
            trainable, non_trainable)
        optimizer.build(model.trainable_variables)
        trainable, optimizer_vars = optimizer.stateless_apply(
            [v.value for v in optimizer.variables], grads, trainable)
        for variable, value in zip(model.trainable_variables, trainable):
            variable.assign(value)
        for variable, value in zip(model.non_trainable_variables, non_trainable):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, optimizer_vars):
            variable.assign(value)
    else:
        import torch

        logits = model(x, training=True)
        loss_value = keras.ops.mean(loss(y, logits))
        model.zero_grad()
        loss_value.backward()
        weights = list(model.trainable_variables)
        with torch.no_grad():
            optimizer.apply([w.value.grad for w in weights], weights)


@pytest.mark.parametrize("loop", ["backend", "train_on_batch"])
def test_custom_training_loop(data, pretrained_weights, tmp_path, loop):
    x_train, y_train = data
    model_for_pruning, loss, optimizer = guide_loop_parts(pretrained_weights)
    log_dir = str(tmp_path)
    unused_arg = -1
    epochs = 2
    batches = 1

    model_for_pruning.optimizer = optimizer
    if loop == "train_on_batch":
        model_for_pruning.compile(optimizer=optimizer, loss=loss)
    step_callback = tfmot.sparsity.keras.UpdatePruningStep()
    step_callback.set_model(model_for_pruning)
    log_callback = tfmot.sparsity.keras.PruningSummaries(log_dir=log_dir)
    log_callback.set_model(model_for_pruning)

    step_callback.on_train_begin()
    for _ in range(epochs):
        log_callback.on_epoch_begin(epoch=unused_arg)
        for _ in range(batches):
            step_callback.on_train_batch_begin(batch=unused_arg)
            if loop == "train_on_batch":
                model_for_pruning.train_on_batch(x_train, y_train)
            else:
                train_step(model_for_pruning, loss, optimizer, x_train, y_train)
        step_callback.on_epoch_end(batch=unused_arg)

    wrapper = model_for_pruning.layers[0]
    assert int(to_numpy(wrapper.pruning_step)) == 2
    # ConstantSparsity(0.5, 0, frequency=1): 400 kernel weights, exactly 200 kept.
    assert int((to_numpy(wrapper.layer.kernel) != 0).sum()) == 200
    assert os.listdir(os.path.join(log_dir, "metrics"))


def test_checkpoint_deserialize_and_export(data, pretrained_weights, tmp_path):
    x_train, y_train = data
    base_model = setup_model()
    base_model.load_weights(pretrained_weights)
    model_for_pruning = tfmot.sparsity.keras.prune_low_magnitude(
        base_model, pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.5, 0, frequency=1))
    model_for_pruning.compile(loss=keras.losses.categorical_crossentropy, optimizer="adam")
    model_for_pruning.fit(x_train, y_train, verbose=0,
                          callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])

    keras_model_file = os.path.join(tmp_path, "pruned.keras")
    model_for_pruning.save(keras_model_file)  # the optimizer is saved too
    with tfmot.sparsity.keras.prune_scope():
        loaded_model = keras.models.load_model(keras_model_file)
    loaded_model.summary(print_fn=lambda *args, **kwargs: None)
    assert int(to_numpy(loaded_model.layers[0].pruning_step)) == 1
    assert int(to_numpy(loaded_model.optimizer.iterations)) == 1

    model_for_export = tfmot.sparsity.keras.strip_pruning(loaded_model)
    assert [type(layer).__name__ for layer in model_for_export.layers] == ["Dense", "Flatten"]
    assert int((to_numpy(model_for_export.layers[0].kernel) != 0).sum()) == 200
    np.testing.assert_allclose(model_for_export.predict(x_train, verbose=0),
                               loaded_model.predict(x_train, verbose=0), rtol=1e-6)
    # Stripping drops the masks, thresholds and steps: the file gets smaller.
    assert get_gzipped_model_size(model_for_export) < get_gzipped_model_size(loaded_model)
