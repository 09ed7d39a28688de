"""p2p: pix2pix (Isola et al., CVPR 2017) in TensorFlow, the companion package of the pix2pix book.

Modules, each explained by the chapter of the same idea: facades (the procedural dataset),
data (paired images and the tf.data pipeline), models (generator and PatchGAN), losses,
optimizers (the paper's Adam, fused), pix2pix (the Pix2Pix keras.Model), inference (test
time, one image at a time), presets, training (the entry point), runs (run folders:
checkpoints, metrics, resuming), devices (precision, XLA, thread pools, tf.distribute),
records (atomic files and provenance), bookruns (the book's trained models), evaluate and
ablate (the paper's tables), reference (the tutorial's and the paper's steps written plainly)
and bench (speed).
"""

_EXPORTS = {
    "Pix2Pix": "p2p.pix2pix",
    "Generator": "p2p.models",
    "Discriminator": "p2p.models",
    "receptive_field": "p2p.models",
}


def import_tensorflow_quietly():
    """Import TensorFlow with its C++ start-up lines kept off stderr; chapters call it first (chapter "Introduction").

    Its CUDA probe logs through absl before absl is set up, so TF_CPP_MIN_LOG_LEVEL cannot hide
    those lines; they would land in every notebook's outputs with a fresh timestamp. Errors still
    raise as usual.
    """
    import os
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tensorflow


def __getattr__(name):
    # imported on first use, so that `python -m p2p facades` does not wait for TensorFlow
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'p2p' has no attribute {name!r}")
