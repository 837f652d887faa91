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
