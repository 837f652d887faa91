import pytest

keras = pytest.importorskip("keras")

from training.models import ARCHITECTURES, DEFAULT_ARCH, make_model  # noqa: E402


def test_thesis_cnn_matches_figure_8():
    model = make_model("thesis")
    assert model.count_params() == 32_116_743
    kinds = [layer.__class__.__name__ for layer in model.layers[2:]]
    assert kinds == [
        "Conv2D", "Conv2D", "BatchNormalization", "MaxPooling2D", "Dropout",
        "Conv2D", "Conv2D", "BatchNormalization", "MaxPooling2D", "Dropout",
        "Flatten", "Dense", "Dropout", "Dense",
    ]  # fmt: skip
    flatten = next(layer for layer in model.layers if layer.name.startswith("flatten"))
    assert flatten.output.shape[-1] == 30_976


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_model_maps_48x48_pixels_to_seven_probabilities(arch):
    model = make_model(arch)
    assert tuple(model.input.shape[1:]) == (48, 48, 1)
    assert model.output.shape[-1] == 7
    # Rescaling is inside the graph, so serving feeds raw 0..255 pixels.
    assert model.layers[1].__class__.__name__ == "Rescaling"


def test_default_is_smaller_than_the_thesis_cnn():
    assert make_model(DEFAULT_ARCH).count_params() < make_model("thesis").count_params() / 10


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture 'resnet9000'"):
        make_model("resnet9000")


def test_weight_decay_override_changes_the_penalty_not_the_weights():
    default, light = make_model("vgg_bn"), make_model("vgg_bn", weight_decay=1e-5)
    assert [w.shape for w in default.weights] == [w.shape for w in light.weights]
    conv = [layer for layer in light.layers if layer.__class__.__name__ == "Conv2D"]
    assert conv
    assert all(layer.kernel_regularizer.l2 == pytest.approx(1e-5) for layer in conv)
    # The thesis CNN has no penalty to override; it is built as published.
    assert make_model("thesis", weight_decay=1e-5).count_params() == 32_116_743


def test_dropout_override_changes_the_head_rate_not_the_weights():
    default, light = make_model("vgg_bn"), make_model("vgg_bn", dropout=0.2)
    assert [w.shape for w in default.weights] == [w.shape for w in light.weights]
    rates = [layer.rate for layer in light.layers if layer.__class__.__name__ == "Dropout"]
    assert rates == [pytest.approx(0.2)] * 2
    assert {layer.rate for layer in default.layers if hasattr(layer, "rate")} == {0.4}
    thesis = make_model("thesis", dropout=0.1)
    assert sorted(layer.rate for layer in thesis.layers if hasattr(layer, "rate")) == [
        0.25,
        0.25,
        0.5,
    ]
