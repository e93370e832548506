"""A Keras user's script on rosenblatt: the digits classifier from Keras's "simple MLP" example.

    python examples/keras_style.py [--quick]

Apart from the imports, the only lines that differ from the Keras original are the model, whose
layers carry PyTorch's names, and ``model.compile(...)``, which becomes ``Trainer(...)`` with the
same string names. ``fit``, ``evaluate``, ``predict`` and ``history.history`` are called as in Keras:

    Keras                                             rosenblatt
    keras.Sequential([layers.Dense(128, "relu"),      nn.Sequential(nn.Linear(64, 128), nn.ReLU(),
                      layers.Dense(10, "softmax")])                 nn.Linear(128, 10), nn.Softmax(axis=1))
    model.compile(optimizer="adam",                   model = Trainer(net, optimizer="adam",
        loss="sparse_categorical_crossentropy",           loss="sparse_categorical_crossentropy",
        metrics=["accuracy"])                             metrics=["accuracy"])

``"sparse_categorical_crossentropy"`` takes probabilities, as in Keras (hence the final Softmax).
"""

from __future__ import annotations

import argparse

import numpy as np

import rosenblatt as rb  # Keras: import keras
from rosenblatt import nn  # Keras: from keras import layers
from rosenblatt.data import load_digits  # Keras: from sklearn.datasets import load_digits
from rosenblatt.train import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer epochs (for the tests)")
    args = parser.parse_args()
    rb.manual_seed(0)  # Keras: keras.utils.set_random_seed(0)

    x, y = load_digits()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]

    net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10), nn.Softmax(axis=1))
    model = Trainer(net, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    # From here on, the lines are Keras's.
    history = model.fit(x_train, y_train, batch_size=32, epochs=8 if args.quick else 20, validation_split=0.1)
    score = model.evaluate(x_test, y_test, verbose=0)
    print("Test loss:", round(score[0], 4))
    print("Test accuracy:", round(score[1], 4))
    probabilities = model.predict(x_test[:5])
    print("Predicted classes:", probabilities.argmax(axis=1), "true:", y_test[:5])
    print("Best validation accuracy:", round(max(history.history["val_accuracy"]), 4))


if __name__ == "__main__":
    main()
