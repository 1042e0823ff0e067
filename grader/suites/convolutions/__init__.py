"""The convolutions assignment's suites. NAMES: what each exercise module must define (the stubs' and the
notebook's exercise cells' public names); tests/test_live_check.py holds it to the reference solutions."""

NAMES: dict[str, tuple[str, ...]] = {
    "data": ("prepare_images",),
    "models": ("build_dnn", "build_cnn", "compile_model"),
    "callbacks": ("StopOnThreshold",),
    "training": ("train_and_evaluate",),
    "convolution": ("EDGE_KERNEL", "convolve2d", "max_pool2d"),
    "visualize": ("layer_activations", "plot_activations"),
    "experiments": ("filter_experiment",),
}
