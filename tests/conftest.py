"""Shared test setup: Keras on the JAX backend, and no implicit rank promotion in jax.numpy."""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports keras

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
