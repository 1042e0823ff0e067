"""Student models judge-side: bounded before Keras sees them, rebuilt from built-in layers, described."""
