"""p2p: pix2pix (Isola et al., CVPR 2017) in TensorFlow, the pix2pix book's package.

The core, each module explained by the chapter of its idea: data, models, losses,
pix2pix (the keras.Model and its train step), optimizers, inference (test time), config,
training (`train`) and runs (run folders). Under this reading path, p2p.runtime is the
machinery they call: devices, and what keeps a run folder safe. The book's tools
(facades, figures, measures, experiments) are in p2p.lab, which the core, p2p.runtime
too, never imports.
"""

_EXPORTS = {
    "Pix2Pix": "p2p.pix2pix",
    "Generator": "p2p.models",
    "Discriminator": "p2p.models",
    "receptive_field": "p2p.models",
}


def __getattr__(name):
    # imported on first use: `python -m p2p facades` does not wait for TensorFlow
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'p2p' has no attribute {name!r}")
