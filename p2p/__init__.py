"""p2p: pix2pix (Isola et al., CVPR 2017) in TensorFlow, the companion package of the pix2pix book.

Modules, each explained by the chapter of the same idea: facades (the procedural dataset),
data (paired images and the tf.data pipeline), models (generator and PatchGAN), losses,
pix2pix (the Pix2Pix keras.Model), presets, training (runs, checkpoints, resuming).
"""

_EXPORTS = {
    "Pix2Pix": "p2p.pix2pix",
    "Generator": "p2p.models",
    "Discriminator": "p2p.models",
    "receptive_field": "p2p.models",
}


def __getattr__(name):
    # imported on first use, so that `python -m p2p facades` does not wait for TensorFlow
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'p2p' has no attribute {name!r}")
