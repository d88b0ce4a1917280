"""The params loader names the dotted key for every kind of mistake."""

from pathlib import Path

import pytest

from pipeline.params import ParamsError, load_params, parse_params

REPO = Path(__file__).resolve().parents[1]


def test_repository_params_parse():
    params = load_params(REPO / "params.yaml")
    assert set(params.tasks) == {"edges", "normals", "segmentation"}
    assert params.sampling["edges"].strategy == "edge_biased"
    assert params.sampling["segmentation"].strategy == "stratified"


def _set(d: dict, dotted: str, value) -> dict:
    *head, last = dotted.split(".")
    node = d
    for part in head:
        node = node[part]
    node[last] = value
    return d


@pytest.mark.parametrize(
    ("dotted", "value", "message"),
    [
        ("sampling.pixels_per_imag", 5, "sampling.pixels_per_imag: unknown key"),
        ("model.hiden", [3], "model.hiden: unknown key"),
        ("train.lr", "fast", "train.lr: expected float"),
        ("train.iterations", 2.5, "train.iterations: expected int"),
        ("sampling.pixels_per_image", 0, "sampling.pixels_per_image"),
        ("sampling.positive_fraction", 1.5, "sampling.positive_fraction"),
        ("model.layers", ["conv1_2", "conv6_1"], "model.layers"),
        ("sampling.strategy.edges", "random", "sampling.strategy.edges"),
        ("tasks.depth", {"dataset": "synthetic"}, "tasks.depth: unknown task"),
        ("tasks.edges.dataset", "nyud", "tasks.edges.dataset"),
        ("data.synthetic.image_size", 4, "data.synthetic.image_size"),
        ("evaluate.scales", [], "evaluate.scales"),
        ("train.scale", [1.2, 0.8], "train.scale"),
        ("train.crop", 16, "train.crop"),  # fc7 is tapped: stride 32
        ("train.rotate", 200, "train.rotate must be in"),
        ("train.rotate", "some", "train.rotate: expected float"),
        ("tasks.normals.train", {"iteratons": 5}, "tasks.normals.train.iteratons: unknown key"),
        ("tasks.normals.train", {"lr": "high"}, "tasks.normals.train.lr: expected float"),
        ("tasks.normals.train", {"lr_steps": [5, 2]}, "tasks.normals.train.lr_steps"),
        ("tasks.normals.train", {"crop": 64}, "tasks.normals.train.crop: augmentation is shared"),
        ("tasks.normals.train", 5, "tasks.normals.train: expected a mapping"),
    ],
)
def test_bad_values_name_the_key(tiny_params_dict, dotted, value, message):
    with pytest.raises(ParamsError, match=message.replace(".", r"\.")):
        parse_params(_set(tiny_params_dict, dotted, value))


def test_unknown_section(tiny_params_dict):
    tiny_params_dict["trian"] = {}
    with pytest.raises(ParamsError, match="trian: unknown section"):
        parse_params(tiny_params_dict)


def test_task_train_overrides_apply_to_that_task_only(tiny_params_dict):
    tiny_params_dict["tasks"]["normals"]["train"] = {"iterations": 7, "lr_steps": [5]}
    params = parse_params(tiny_params_dict)
    assert params.task_train["normals"].iterations == 7
    assert params.task_train["normals"].lr_steps == (5,)
    assert params.task_train["edges"].iterations == params.train.iterations
    assert params.task_train["edges"].lr_steps == params.train.lr_steps
    assert params.task_train["normals"].lr == params.train.lr  # not overridden: inherited
