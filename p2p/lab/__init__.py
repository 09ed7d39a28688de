"""The book's tools: everything the chapters use to show and measure pix2pix, beside the core that implements it.

facades (the procedural dataset), datasets (the released ones, downloaded), viz (figures and the
facade editor), evaluate (measures and the FCN-score), variants (the ablations' and the other
implementations' training steps), experiments (the one resumable runner) behind ablate,
troubleshooting and bookruns (the book's trained models), reference (the TF tutorial's step),
bench and fused_adam (speed), threads, export (the in-browser editor's model), records
(provenance) and cli (`python -m p2p`).
"""


def import_tensorflow_quietly():
    """Import TensorFlow with its C++ start-up lines kept off stderr; every chapter's setup cell calls it first.

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
