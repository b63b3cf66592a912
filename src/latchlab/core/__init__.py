"""The bottom floor: tasks (data generators), cells (update rules) and models (cell + head),
pure functions over parameter pytrees, plus ``interop`` (Keras layers in, latchlab cells out)."""
