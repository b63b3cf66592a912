"""Throughput of the gate nonlinearities on this backend, in cache (4096 floats, 10^4 steps).

    python bench/transcendentals.py

Prints elements per second for each form and its ratio to ``jax.nn.sigmoid``; the
ratio is what chose ``cells.sigmoid`` (tanh form) over ``jax.nn.sigmoid`` on XLA:CPU.
"""

import time

import jax
import jax.numpy as jnp

FORMS = {
    "jax.nn.sigmoid": jax.nn.sigmoid,
    "sigmoid as (1 + tanh(z/2)) / 2": lambda a: 0.5 * jnp.tanh(0.5 * a) + 0.5,
    "tanh": jnp.tanh,
    "exp": jnp.exp,
    "hard_sigmoid (clip)": lambda a: jnp.clip(0.2 * a + 0.5, 0.0, 1.0),
    "multiply-add (reference)": lambda a: a * 0.999 + 0.001,
}


def rate(f, n=4096, steps=10_000) -> float:
    x = jax.random.normal(jax.random.PRNGKey(0), (n,))
    g = jax.jit(lambda x: jax.lax.fori_loop(0, steps, lambda i, a: f(a), x))
    g(x).block_until_ready()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        g(x).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return n * steps / best


if __name__ == "__main__":
    rates = {name: rate(f) for name, f in FORMS.items()}
    base = rates["jax.nn.sigmoid"]
    print(f"backend {jax.default_backend()}, jax {jax.__version__}")
    for name, r in rates.items():
        print(f"{name:34s} {r / 1e9:6.2f} G/s   x{r / base:5.2f} vs jax.nn.sigmoid")
