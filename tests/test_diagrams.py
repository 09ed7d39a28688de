"""The chapters' diagrams: each one follows the code it depicts (filter counts, skips, receptive fields, the train step)."""

import inspect

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from keras import layers
from matplotlib.figure import Figure
from matplotlib.text import Text

from p2p import pix2pix
from p2p.lab import diagrams
from p2p.models import Discriminator, Generator, generator_filters, receptive_field


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _texts(figure) -> list[str]:
    return [text.get_text() for text in figure.findobj(Text)]


def _gid(figure, gid) -> list:
    return [artist for artist in figure.findobj() if artist.get_gid() == gid]


def test_conditional_gan_shows_both_pairs_and_no_noise_vector():
    figure = diagrams.conditional_gan()
    assert isinstance(figure, Figure)
    assert figure.get_size_inches()[0] == pytest.approx(10.0)
    texts = _texts(figure)
    assert {"pair (x, G(x))", "pair (x, y)", "fake", "real"} <= set(texts)
    assert texts.count("D") == 2  # the same D judges both pairs
    assert any("no noise vector" in text and "dropout" in text for text in texts)
    assert any("100 \u00d7 |y \u2212 G(x)|" in text for text in texts)  # lambda as Pix2Pix takes it by default
    assert any("10 \u00d7" in text for text in _texts(diagrams.conditional_gan(l1_weight=10)))
    assert not figure.findobj(matplotlib.image.AxesImage)


def test_conditional_gan_shows_the_images_given():
    x, fake, y = (np.full((8, 8, 3), value, np.float32) for value in (-1.0, 0.0, 1.0))
    figure = diagrams.conditional_gan(x, fake, y)
    shown = [image.get_array() for image in figure.findobj(matplotlib.image.AxesImage)]
    # x on both rows and in both pairs, G(x) and y alone and in their pairs
    assert sorted(int(image[0, 0, 0]) for image in shown) == [0, 0, 0, 0, 128, 128, 255, 255]


@pytest.mark.parametrize("image_size, ngf", [(256, 64), (64, 32)])
def test_generator_architectures_use_the_real_layer_sizes(image_size, ngf):
    figure = diagrams.generator_architectures(image_size, ngf)
    texts = _texts(figure)
    filters = generator_filters(image_size, ngf)
    for level, width in enumerate(filters[:-1], start=1):  # each encoder layer, and its mirror in both decoders
        side = image_size >> level
        assert texts.count(f"{side}x{side}x{width}") == 3  # twice in the encoders, once in the encoder-decoder
        assert f"{side}x{side}x({width}+{width})" in texts  # U-Net: the decoder's output and the skip, concatenated
    assert f"bottleneck 1x1x{filters[-1]}" in texts
    assert f"{image_size // 2}x{image_size // 2}x{ngf}" in texts
    assert f"{image_size // 2}x{image_size // 2}x{2 * ngf}" not in texts
    encoder_decoder, unet = figure.axes[:2]
    assert len(_gid(unet, "skip")) == len(filters) - 1
    assert not _gid(encoder_decoder, "skip")
    assert len(_gid(unet, "bottleneck")) == len(_gid(encoder_decoder, "bottleneck")) == 1


def test_generator_architectures_agree_with_a_built_generator():
    image_size, ngf = 32, 4
    unet = Generator(image_size, ngf)
    texts = _texts(diagrams.generator_architectures(image_size, ngf))
    for layer in unet.layers:
        if layer.name.startswith("enc") and isinstance(layer, layers.Conv2D):
            side, channels = layer.output.shape[1], layer.output.shape[-1]
            assert any(text.endswith(f"{side}x{side}x{channels}") for text in texts), layer.name
        if isinstance(layer, layers.Concatenate):  # a skip: channels doubled
            side, channels = layer.output.shape[1], layer.output.shape[-1]
            assert f"{side}x{side}x({channels // 2}+{channels // 2})" in texts, layer.name


def test_patchgan_fields_draws_the_real_receptive_fields():
    image = np.zeros((256, 256, 3), np.uint8)
    figure = diagrams.patchgan_fields(image)
    main, zoom = figure.axes
    expected = {0: 1, 1: 16, 3: 70, 5: 286}
    assert expected[3] == receptive_field(Discriminator(64, ndf=1, n_layers=3))
    for n, side in expected.items():
        boxes = _gid(figure, f"field{side}")
        assert len(boxes) == 2 and {box.axes for box in boxes} == {main, zoom}
        assert all((box.get_width(), box.get_height()) == (side, side) for box in boxes)
        corner = boxes[0].get_x()
        assert corner == int(corner) and corner + side / 2 == pytest.approx(128, abs=0.5)  # pixel-aligned, centred
        assert any(f"{side}x{side}: n_layers={n}" in text for text in _texts(figure))
    # the 286 box exceeds the 256 image: dashed, shown whole, and the legend says so
    big = _gid(main, "field286")[0]
    assert big.get_linestyle() not in ("-", "solid")
    assert main.get_xlim()[0] < big.get_x() and big.get_x() + 286 < main.get_xlim()[1]
    assert any("larger than the image" in text for text in _texts(figure))
    assert any("30x30 logits" in text for text in _texts(figure))  # the 70x70 PatchGAN's grid at 256 px
    # the 1x1 box is marked on the image and magnified: the zoom window holds it, a few pixels wide
    assert len(_gid(main, "marker1")) == 1
    left, right = sorted(zoom.get_xlim())
    assert left <= _gid(zoom, "field1")[0].get_x() < right and right - left <= 32


def test_patchgan_fields_follow_the_arguments():
    figure = diagrams.patchgan_fields(np.zeros((32, 32, 3), np.float32), fields={2: 34, 0: 1}, image_size=64)
    assert [box.get_width() for box in _gid(figure.axes[0], "field34")] == [34]
    assert _gid(figure.axes[0], "field34")[0].get_linestyle() in ("-", "solid")  # 34 < 64: inside the image
    assert list(figure.axes[0].images[0].get_extent()) == [0, 64, 64, 0]  # the image is shown at image_size pixels
    assert any(text.startswith("34x34: n_layers=2") for text in _texts(figure))


def test_train_step_dataflow_names_what_the_code_names():
    figure = diagrams.train_step_dataflow()
    texts = "\n".join(_texts(figure))
    source = inspect.getsource(pix2pix)
    for name in ("gen_optimizer", "disc_optimizer", "gen_tape", "stop_recording", "stop_gradient", "train_discriminator",
                 "training=True", "minimize"):
        assert name in texts and name in source, name
    for metric in pix2pix.METRICS:
        assert metric in texts
    assert "G's tape" in texts and "D's tape" in texts
    assert "(BCE(real, 1) + BCE(fake, 0)) / 2" in texts and "BCE(fake, 1)" in texts
    assert "gen_total = gen_gan + 100 x gen_l1" in texts
    assert "moves D's weights" in texts and "moves G's\nweights only" in texts
    # D's step is drawn above G's step, the order of train_step
    position = {text.get_text()[:3]: text.get_position()[1] for text in figure.findobj(Text)}
    assert position["(1)"] > position["(2)"] > position["(3)"]
    assert "gen_total = gen_gan + 7 x gen_l1" in _texts(diagrams.train_step_dataflow(l1_weight=7))
