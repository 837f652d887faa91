"""The optimizers ``classpulse train`` offers, named once for the CLI and the run.

Importing this module does not import TensorFlow, so the CLI can list the names.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Optimizer(StrEnum):
    adam = "adam"
    #: with Nesterov momentum 0.9
    sgd = "sgd"


def make_optimizer(name: str, lr: Any) -> Any:
    """The Keras optimizer called ``name``; ``lr`` is a rate or a schedule."""
    import keras

    if name == Optimizer.adam:
        return keras.optimizers.Adam(learning_rate=lr)
    if name == Optimizer.sgd:
        return keras.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True)
    choices = " or ".join(Optimizer)
    raise ValueError(f"unknown optimizer {name!r}; choose {choices}")
