"""The user's own model, data and task: `model=custom`, `data=custom`, `data=csv`, scikit-learn's
tables, `task=classification|regression`, `model.init_from` with a prefix, and the one-line errors
for bad input. The model and datasets are in tests/user_parts.py, imported by `_target_`."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import user_parts
from conftest import REPO, composed, run_train
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sweep.errors import ConfigError
from sweep.resolvers import direction_of
from sweep.train import data as datasets
from sweep.train.build import build
from sweep.train.job import train_job
from sweep.train.loop import batch_loss, train_batches
from sweep.train.models import build_model, load_backbone, parse_prefix
from sweep.train.task import Task, build_task, output_of

TESTS = str(REPO / "tests")
USER_ENV = {"PYTHONPATH": TESTS, "OMP_NUM_THREADS": "1"}  # user_parts importable, as a user's package would be
TINY = ["trainer.epochs=2", "trainer.threads=1"]
CUSTOM = [
    "model=custom",
    "model._target_=user_parts.Net",
    "data=custom",
    "data._target_=user_parts.blobs",
    "groups=single",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def write_csv(path: Path, header: list[str], rows: list[list]) -> str:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


def houses(path: Path, n: int = 400, seed: int = 0) -> tuple[str, np.ndarray]:
    """A regression CSV whose target (a price) is in the hundreds of thousands, plus a text column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    price = (x @ np.array([3.0, -2.0, 1.0]) + 0.2 * rng.normal(size=n)) * 1e5 + 5e5
    rows = [[*np.round(x[i], 4), ["north", "south"][i % 2], round(float(price[i]), 2)] for i in range(n)]
    return write_csv(path, ["rooms", "area", "age", "district", "price"], rows), price


# --------------------------------------------------------------------------- task


def test_model_output_may_be_a_tensor_a_tuple_or_have_logits():
    t = torch.randn(4, 3)
    assert output_of(t) is t and output_of((t, "aux")) is t and output_of(SimpleNamespace(logits=t)) is t
    with pytest.raises(TypeError, match="logits"):
        output_of("nothing")


def test_objective_direction_follows_the_metric_unless_set():
    assert direction_of("val/acc") == "maximize"
    assert direction_of("val/loss") == direction_of("val/rmse") == "minimize"
    assert composed().objective.direction == "maximize"
    assert composed("objective.metric=val/loss").objective.direction == "minimize"
    assert composed("objective.metric=val/loss", "objective.direction=maximize").objective.direction == "maximize"


def test_diabetes_selects_regression_and_a_minimised_rmse_in_sweeps_too():
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["data=diabetes", "search=lr"], return_hydra_config=True)
        assert cfg.task.name == "regression" and cfg.objective.metric == "val/rmse"
        assert cfg.hydra.sweeper.direction == "minimize"
        assert (
            compose(config_name="train", overrides=["data=diabetes", "task=classification"]).task.name
            == "classification"
        )  # the command line wins


def test_regression_loss_uses_the_standardised_target_and_rmse_its_units():
    y = torch.tensor([1000.0, 3000.0, 5000.0, 7000.0])
    task = build_task({"name": "regression"}, lambda: y)
    assert task.mean == pytest.approx(4000.0) and task.std == pytest.approx(y.std().item())
    perfect = ((y - task.mean) / task.std)[:, None]  # a (n, 1) output: reshaped to the target
    assert task.loss(perfect, y).item() == pytest.approx(0.0, abs=1e-10)
    model = torch.nn.Identity()
    off_by_100 = perfect + 100.0 / task.std
    metrics = task.evaluate(model, [(off_by_100, y)], torch.no_grad)
    assert metrics["val/rmse"] == pytest.approx(100.0, rel=1e-4)  # in the target's own units
    assert metrics["val/loss"] == pytest.approx((100.0 / task.std) ** 2, rel=1e-4)


def test_label_smoothing_and_a_custom_loss():
    logits, y = torch.tensor([[5.0, 0.0], [0.0, 5.0]]), torch.tensor([0, 1])
    plain, smooth = Task("classification"), Task("classification", label_smoothing=0.2)
    assert smooth.loss(logits, y) > plain.loss(logits, y)
    l1 = build_task({"name": "classification", "loss": {"_target_": "torch.nn.MultiMarginLoss"}})
    assert l1.loss(logits, y).item() == pytest.approx(torch.nn.MultiMarginLoss()(logits, y).item())


# --------------------------------------------------------------------------- data


def test_csv_features_are_standardised_with_training_statistics_and_labels_become_indices(tmp_path):
    rng = np.random.default_rng(1)
    rows = [[float(rng.normal(50, 10)), float(rng.normal(-3, 0.1)), ["cat", "dog", "eel"][i % 3]] for i in range(90)]
    path = write_csv(tmp_path / "pets.csv", ["weight", "temp", "species"], rows)
    data = datasets.load({"name": "csv", "path": path, "target": "species", "val_fraction": 0.2, "seed": 0})
    assert data.kind == "classification" and data.num_classes == 3 and data.num_features == 2
    assert torch.allclose(data.x_train.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(data.x_train.std(0, unbiased=False), torch.ones(2), atol=1e-4)
    assert not torch.allclose(data.x_val.mean(0), torch.zeros(2), atol=1e-3)  # val scaled by train's stats
    assert sorted(set(data.y_train.tolist()) | set(data.y_val.tolist())) == [0, 1, 2]


def test_csv_regression_target_keeps_its_units(tmp_path):
    path, price = houses(tmp_path / "houses.csv")
    data = datasets.load({"name": "csv", "path": path, "target": "price", "task": "regression"})
    assert data.kind == "regression" and data.num_outputs == 1 and data.num_features == 3  # district left out
    assert data.y_train.abs().mean() > 1e4


@pytest.mark.parametrize(
    "cfg, key, says",
    [
        ({"name": "csv", "path": "/no/such.csv", "target": "price"}, "data.path", "existing CSV"),
        ({"name": "custom", "_target_": "user_parts.nothing_here"}, "data._target_", "has no nothing_here"),
        ({"name": "custom", "_target_": "no_such_package.fn"}, "data._target_", "no module no_such_package"),
        ({"name": "custom", "_target_": "user_parts.only_one"}, "data._target_", "returns (train, val)"),
        ({"name": "custom", "_target_": "user_parts.bare_items"}, "data._target_", "(input, target) pairs"),
        ({"name": "custom", "_target_": "user_parts.blobs", "colour": "red"}, "data._target_", "colour"),
    ],
)
def test_bad_data_is_a_config_error_naming_the_key(cfg, key, says):
    with pytest.raises(ConfigError) as err:
        datasets.load(cfg)
    assert str(err.value).startswith(f"{key}=") and says in str(err.value) and "\n" not in str(err.value)


def test_csv_without_the_target_column_names_the_columns_it_has(tmp_path):
    path, _ = houses(tmp_path / "houses.csv", n=20)
    with pytest.raises(ConfigError) as err:
        datasets.load({"name": "csv", "path": path, "target": "cost"})
    assert "rooms, area, age, district, price" in str(err.value)


def test_tensor_datasets_take_the_indexed_path_and_others_a_dataloader():
    fast = datasets.load({"name": "custom", "_target_": "user_parts.tensor_blobs"})
    slow = datasets.load({"name": "custom", "_target_": "user_parts.blobs"})
    assert isinstance(fast, datasets.TensorData) and isinstance(slow, datasets.UserDatasets)
    assert fast.num_classes == slow.num_classes == 3 and fast.num_features == slow.num_features == 8
    a = list(train_batches(fast, 32, torch.device("cpu"), 0))
    b = list(train_batches(slow, 32, torch.device("cpu"), 0))
    assert len(a) == len(b) == 6 and sum(len(y) for _, y in b) == 180


def test_dict_inputs_reach_the_model_as_keywords():
    data = datasets.load({"name": "custom", "_target_": "user_parts.blobs", "as_dict": True})
    batch = next(iter(train_batches(data, 16, torch.device("cpu"), 0)))
    assert set(batch[0]) == {"x", "scale"} and batch[0]["x"].shape == (16, 8)
    loss = batch_loss(user_parts.DictNet(), batch, Task())
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_sklearn_tables_read_without_importing_sklearn():
    shapes = {"wine": (178, 13, 3), "breast_cancer": (569, 30, 2), "iris": (150, 4, 3)}
    for name, (n, d, k) in shapes.items():
        data = datasets.load({"name": name})
        assert (data.n_train + data.n_val, data.num_features, data.num_classes) == (n, d, k), name
    diabetes = datasets.load({"name": "diabetes"})
    assert diabetes.kind == "regression" and diabetes.num_features == 10 and diabetes.y_train.max() > 100


# --------------------------------------------------------------------------- models


def test_custom_model_gets_only_the_configured_arguments():
    net = build_model({"_target_": "user_parts.Net", "width": 5, "init_from": None, "init_prefix": None})
    assert net.features[0].out_features == 5 and net.features[0].in_features == 8  # its own default
    with pytest.raises(ConfigError, match=r"model._target_=.*unexpected keyword argument 'depth'"):
        build_model({"_target_": "user_parts.Net", "depth": 3})


def test_shipped_models_get_the_data_sizes_by_interpolation():
    cfg = composed("data=iris", "trainer.threads=1")
    b = build(cfg)
    assert b.model.head.out_features == 3 and b.model.backbone[0].in_features == 4
    assert cfg.data.num_classes == 3 and cfg.data.num_features == 4  # written into the config


@pytest.mark.parametrize(
    "spec, pairs",
    [
        ("backbone.", {"backbone.": "backbone."}),
        ("encoder.:features.", {"encoder.": "features."}),
        (None, {"": ""}),
        ({"enc.": "features.", "cls.": "classifier."}, {"enc.": "features.", "cls.": "classifier."}),
    ],
)
def test_init_prefix_syntax(spec, pairs):
    assert parse_prefix(spec) == pairs


def test_init_from_a_plain_state_dict_with_a_prefix_mapping(tmp_path):
    torch.manual_seed(0)
    src = user_parts.Net(width=16)
    path = tmp_path / "encoder.pt"
    torch.save({f"encoder.{k}": v for k, v in src.features.state_dict().items()}, path)  # a plain state dict
    dst = user_parts.Net(width=16, num_classes=5)
    head_before = dst.classifier.weight.detach().clone()
    report = load_backbone(dst, str(path), "encoder.:features.")
    assert report == {"missing": [], "unexpected": []}
    assert torch.equal(dst.features[0].weight, src.features[0].weight)
    assert torch.equal(dst.classifier.weight, head_before)
    with pytest.raises(ConfigError, match="none of its keys"):
        load_backbone(user_parts.Net(width=16), str(path), "backbone.")


# --------------------------------------------------------------------------- end to end


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.slow
def test_own_model_and_datasets_train_end_to_end(tmp_path):
    out = tmp_path / "job"
    proc = run_train(*CUSTOM, "+model.width=16", *TINY, f"hydra.run.dir={out}", env=USER_ENV, check=True)
    text = proc.stdout + proc.stderr
    assert "epoch 2/2" in text and f"tensorboard --logdir {out}" in text
    status = OmegaConf.load(out / "status.yaml")
    assert status.status == "complete" and status.value > 0.8
    state = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert set(state) == {"features.0.weight", "features.0.bias", "classifier.weight", "classifier.bias"}
    assert state["features.0.weight"].shape == (16, 8)
    # the checkpoint of the user's model starts another run of it
    proc = run_train(
        *CUSTOM,
        "+model.width=16",
        *TINY,
        f"model.init_from={out / 'checkpoint.pt'}",
        "model.init_prefix=features.",
        f"hydra.run.dir={tmp_path / 'again'}",
        env=USER_ENV,
        check=True,
    )
    assert "loaded 2 tensors (features. -> features.)" in (tmp_path / "again" / "train.log").read_text()


@pytest.mark.slow
def test_dict_inputs_and_logits_outputs_end_to_end(tmp_path):
    run_train(
        "model=custom",
        "model._target_=user_parts.DictNet",
        "+model.out=logits",
        "data=custom",
        "data._target_=user_parts.blobs",
        "+data.as_dict=true",
        "data.num_workers=1",
        "groups=single",
        *TINY,
        f"hydra.run.dir={tmp_path}",
        env=USER_ENV,
        check=True,
    )
    assert OmegaConf.load(tmp_path / "status.yaml").value > 0.8


@pytest.mark.slow
def test_csv_regression_reports_rmse_in_the_targets_units(tmp_path):
    path, price = houses(tmp_path / "houses.csv")
    out = tmp_path / "job"
    run_train(
        "data=csv",
        f"data.path={path}",
        "data.target=price",
        "task=regression",
        "trainer.epochs=15",
        "trainer.threads=1",
        "optimizer.lr=0.01",
        f"hydra.run.dir={out}",
        env=USER_ENV,
        check=True,
    )
    s = scalars(out / "tensorboard")
    rmse = [v for _, v in s["val/rmse"]]
    assert "val/acc" not in s and len(rmse) == 15
    # in dollars: far above 1 (standardised units), and well under the spread of the prices
    assert 1e3 < rmse[-1] < 0.5 * price.std() and rmse[-1] < rmse[0]
    status = OmegaConf.load(out / "status.yaml")
    assert status.value == pytest.approx(rmse[-1], rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, metric, at_least, at_most",
    [
        ("wine", "val/acc", 0.8, 1.0),
        ("iris", "val/acc", 0.6, 1.0),
        ("breast_cancer", "val/acc", 0.8, 1.0),
        ("diabetes", "val/rmse", 30.0, 100.0),
    ],
)
def test_sklearn_tables_smoke(tmp_path, monkeypatch, name, metric, at_least, at_most):
    """Smoke runs: each table trains a few epochs in-process and its metric is in a sane range."""
    monkeypatch.chdir(tmp_path)
    cfg = composed(f"data={name}", "trainer.epochs=5", "trainer.threads=1", "groups=single")
    value = train_job(cfg)
    assert cfg.objective.metric == metric and at_least <= value <= at_most


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, says",
    [
        (["data=custom", "data._target_=user_parts.nope"], "data._target_='user_parts.nope'"),
        (["data=custom", "data._target_=user_parts.only_one"], "returns (train, val)"),
        (["data=custom", "data._target_=user_parts.bare_items"], "(input, target) pairs"),
        (["model=custom", "model._target_=no_pkg.Net"], "model._target_='no_pkg.Net'"),
        (["data=csv", "data.path=CSV", "data.target=cost", "task=regression"], "rooms, area, age, district, price"),
        (["data=csv", "data.path=/no/such/file.csv", "data.target=price"], "data.path='/no/such/file.csv'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_training(tmp_path, args, says):
    path, _ = houses(tmp_path / "houses.csv", n=20)
    args = [a.replace("data.path=CSV", f"data.path={path}") for a in args]
    out = tmp_path / "job"
    proc = run_train(*args, *TINY, f"hydra.run.dir={out}", env=USER_ENV)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and says in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and not (out / "tensorboard").exists()


@pytest.mark.slow
def test_init_from_a_plain_state_dict_end_to_end(tmp_path):
    torch.manual_seed(0)
    src = user_parts.Net(width=16)
    path = tmp_path / "pretrained.pt"
    torch.save({f"encoder.{k}": v for k, v in src.features.state_dict().items()}, path)
    out = tmp_path / "job"
    run_train(
        *CUSTOM,
        "+model.width=16",
        *TINY,
        f"model.init_from={path}",
        "model.init_prefix=encoder.:features.",
        f"hydra.run.dir={out}",
        env=USER_ENV,
        check=True,
    )
    log = (out / "train.log").read_text()
    assert "loaded 2 tensors (encoder. -> features.); missing none; unexpected none" in log


def test_a_size_the_data_does_not_know_is_an_error_naming_the_key_to_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(user_parts.Blobs, "classes", None)  # a dataset that does not say its classes
    cfg = composed("data=custom", "data._target_=user_parts.blobs", "groups=single")
    with pytest.raises(ConfigError, match=r"data.num_outputs=None .*model.num_classes.*set data.num_classes="):
        build(cfg)
    cfg = composed("data=custom", "data._target_=user_parts.blobs", "groups=single", "data.num_classes=3")
    assert build(cfg).model.head.out_features == 3
