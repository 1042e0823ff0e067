"""Keras and TensorFlow shims; every private name they use lives in `private.py`, with its public fallback."""
