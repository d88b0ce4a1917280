"""The params loader names the dotted key for every kind of mistake."""

from pathlib import Path

import pytest

from pipeline.params import ParamsError, load_params, parse_params

REPO = Path(__file__).resolve().parents[1]


def test_repository_params_parse():
    params = load_params(REPO / "params.yaml")
    assert set(params.tasks) == {"edges", "normals", "segmentation"}
    assert params.sampling["edges"].strategy == "edge_biased"
    assert params.sampling["segmentation"].strategy == "uniform"  # the paper: uniform sufficed for segmentation
    assert params.sampling["edges"].draws == "auto"
    assert params.augment["edges"].rotate > 0 and params.augment["normals"].rotate == 0  # edges rotate, per task
    assert params.evaluate.nms  # the edges benchmark as the paper runs it: NMS, then thinning


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
        ("sampling.augment.scale", [1.2, 0.8], "sampling.augment.scale"),
        ("sampling.augment.crop", 16, "sampling.augment.crop"),  # fc7 is tapped: stride 32
        ("sampling.augment.rotate", 200, "sampling.augment.rotate must be in"),
        ("sampling.augment.rotate", "some", "sampling.augment.rotate: expected float"),
        ("sampling.augment.flop", True, "sampling.augment.flop: unknown key"),
        ("sampling.draws", "many", "sampling.draws must be an integer or 'auto'"),
        ("sampling.draws", 0, "sampling.draws must be >= 1"),
        ("tasks.edges.augment", {"rotate": 200}, "tasks.edges.augment.rotate must be in"),
        ("tasks.edges.augment", {"crop": 16}, "tasks.edges.augment.crop"),
        ("tasks.edges.augment", {"spin": 3}, "tasks.edges.augment.spin: unknown key"),
        ("tasks.edges.model", {"head": "deep"}, "tasks.edges.model.head"),
        ("tasks.edges.model", 3, "tasks.edges.model: expected a mapping"),
        ("train.crop", 64, "train.crop: augmentation is decided by the sample stage"),
        ("tasks.normals.train", {"iteratons": 5}, "tasks.normals.train.iteratons: unknown key"),
        ("tasks.normals.train", {"lr": "high"}, "tasks.normals.train.lr: expected float"),
        ("tasks.normals.train", {"lr_steps": [5, 2]}, "tasks.normals.train.lr_steps"),
        ("tasks.normals.train", {"crop": 64}, "tasks.normals.train.crop: unknown key"),
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


def test_task_augment_and_model_overrides_apply_to_that_task_only(tiny_params_dict):
    tiny_params_dict["tasks"]["edges"]["augment"] = {"rotate": 22.5}
    tiny_params_dict["tasks"]["normals"]["model"] = {"hidden": [8], "head_std_last": 0.005}
    params = parse_params(tiny_params_dict)
    assert params.augment["edges"].rotate == 22.5 and params.augment["segmentation"].rotate == 0.0
    assert params.augment["edges"].crop == params.augment["normals"].crop == 32  # the shared default
    assert params.task_model["normals"].hidden == (8,) and params.task_model["normals"].head_std_last == 0.005
    assert params.task_model["edges"].hidden == params.model.hidden == (16,)
