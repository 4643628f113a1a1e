"""Config composition, overrides and the one-line errors (issue 2)."""

from pathlib import Path

import pytest

from datamodules.errors import UserInputError
from experiments.config import RunConfig, load_config, to_yaml


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_are_typed_dataclasses():
    cfg = load_config()
    assert isinstance(cfg, RunConfig)
    assert cfg.data.loading.sampling == "sqrt"
    assert cfg.model.loss == "softmax"
    assert isinstance(cfg.schedule.images_seen, int)


def test_yaml_composes_with_defaults_chain_and_overrides(tmp_path):
    base = "data:\n  write:\n    scale: 0.5\n  vocab:\n    name: in1k\nseed: 3\n"
    write(tmp_path / "base.yaml", base)
    child = write(
        tmp_path / "child.yaml", "defaults: [base.yaml]\ndata:\n  vocab:\n    name: raw\n"
    )
    cfg = load_config(
        child, ["data.vocab.top_k=100", "pretrained=/x/y.ckpt", "model.layers=[1,2,2,1]"]
    )
    assert cfg.data.write.scale == 0.5  # from base
    assert cfg.data.vocab.name == "raw"  # child wins over base
    assert cfg.data.vocab.top_k == 100  # override wins over both
    assert cfg.seed == 3
    assert cfg.transfer.pretrained == "/x/y.ckpt"  # alias
    assert cfg.model.layers == [1, 2, 2, 1]
    assert load_config(child, ["pretrained="]).transfer.pretrained == ""  # random init
    # the resolved config round-trips through YAML
    again = load_config(write(tmp_path / "resolved.yaml", to_yaml(cfg)))
    assert again == cfg


def test_shipped_configs_compose():
    configs = sorted(Path("configs").rglob("*.yaml"))
    run_configs = [p for p in configs if p.parts[1] in ("pretrain", "data", "model", "transfer")]
    assert run_configs, "no run configs shipped under configs/"
    for path in run_configs:
        load_config(path)  # raises on an unknown key or a wrong type


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["no.such.key=1"],
            "unknown config key 'no.such.key'; valid keys in <root>: ckpt_path, data,",
        ),
        (
            ["data.write.scal=0.1"],
            "unknown config key 'data.write.scal'; valid keys in data.write: jpeg_quality,",
        ),
        (["data.write.scale=lots"], "bad value for 'data.write.scale'"),
        (["data.loading.sampling=sqroot"], "valid choices: natural, sqrt, uniform"),
        (["seed"], "must look like key=value"),
    ],
)
def test_bad_overrides_raise_one_line_errors(overrides, expected):
    with pytest.raises(UserInputError) as info:
        load_config(None, overrides)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_bad_files_raise_one_line_errors(tmp_path):
    with pytest.raises(UserInputError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad_key = write(tmp_path / "bad.yaml", "model:\n  widht: 8\n")
    with pytest.raises(
        UserInputError, match="unknown config key 'model.widht'.*valid keys in model"
    ):
        load_config(bad_key)
    bad_type = write(tmp_path / "type.yaml", "schedule:\n  images_seen: many\n")
    with pytest.raises(UserInputError, match="bad value for 'schedule.images_seen'"):
        load_config(bad_type)
    cycle = write(tmp_path / "cycle.yaml", "defaults: [cycle.yaml]\n")
    with pytest.raises(UserInputError, match="cycle"):
        load_config(cycle)


def test_ckpt_path_and_tensorboard_are_typed_keys():
    cfg = load_config(None, ["ckpt_path=runs/a/checkpoints/last.ckpt", "logging.tensorboard=true"])
    assert cfg.ckpt_path == "runs/a/checkpoints/last.ckpt" and cfg.logging.tensorboard is True
    assert load_config().ckpt_path == "" and load_config().logging.tensorboard is False
    with pytest.raises(UserInputError, match="bad value for 'logging.tensorboard'"):
        load_config(None, ["logging.tensorboard=sometimes"])
