"""Published WSL/SWSL weights by name: timm's layout and shapes, a local file round trip, the
missing-file hint, and a transfer run that names the weights instead of the model."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.models import get_pretrained_cfg

from datamodules.errors import UserInputError
from experiments.config import ModelConfig, load_config
from lightning_modules.backbone_loading import describe, load_backbone, pretrained_label
from lightning_modules.backbones import build_resnext
from lightning_modules.published_weights import (
    PUBLISHED,
    WEIGHTS_DIR_ENV,
    find_file,
    lookup,
    model_for,
    weights_dir,
)

WSL_8D = lookup("resnext101_32x8d_wsl")
ARCHS = sorted({entry.timm_name.split(".")[0] for entry in PUBLISHED})


def _timm_model(arch: str) -> torch.nn.Module:
    """timm's network for ``arch`` without weights. timm 1.0.31 registers no resnext101_32x48d
    (only its pretrained config): build it as timm's resnext101_32x32d is built, 48 wide."""
    if timm.is_model(arch):
        return timm.create_model(arch, pretrained=False)
    from timm.models.resnet import Bottleneck, ResNet

    assert arch == "resnext101_32x48d", arch
    return ResNet(block=Bottleneck, layers=(3, 4, 23, 3), cardinality=32, base_width=48)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_key_and_shape_matches_timms_model(arch):
    entry = next(e for e in PUBLISHED if e.timm_name.startswith(arch + "."))
    with torch.device("meta"):  # the 48d network (829M parameters) costs no memory
        theirs = _timm_model(arch)
        ours = build_resnext(model_for(entry.label, ModelConfig()), num_classes=1000)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()
    }


@pytest.mark.parametrize("entry", PUBLISHED, ids=lambda e: e.label)
def test_names_and_file_names_are_timms(entry):
    arch = entry.timm_name.split(".")[0]
    width = re.fullmatch(r"resnext101_32x(\d+)d", arch).group(1)
    assert {lookup(name) for name in entry.names} == {entry}
    assert {pretrained_label(name) for name in entry.names} == {entry.label}
    cfg = model_for(entry.old_timm_name, ModelConfig())
    assert cfg.width_per_group == int(width) and cfg.name == f"rx101-32x{width}d"
    assert (list(cfg.layers), cfg.groups, cfg.stem_width, cfg.small_input) == (
        [3, 4, 23, 3],
        32,
        64,
        False,
    )
    pretrained_cfg = get_pretrained_cfg(entry.timm_name)
    if timm.is_model(arch):  # timm drops the config of its unregistered 32x48d
        assert pretrained_cfg.url.rsplit("/", 1)[1] == entry.original_file


def test_old_timm_names_map_to_their_own_width():
    # timm's deprecated aliases send ig_resnext101_32x{16,32,48}d to the 32x8d weights
    assert lookup("ig_resnext101_32x48d").timm_name == "resnext101_32x48d.fb_wsl_ig1b_ft_in1k"
    assert lookup("resnext101_32x8d") is None and lookup("resnext101_32x4d_wsl") is None
    tiny = ModelConfig()
    assert model_for("runs/some_run", tiny) is tiny and model_for("", tiny) is tiny


def test_folder_from_the_environment_and_file_order(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_DIR_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert weights_dir() == tmp_path / "home" / ".cache" / "wsl-scale" / "weights"
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
    assert weights_dir() == tmp_path
    safetensors_name, pth_name, hub_name = WSL_8D.file_names
    assert hub_name == "ig_resnext101_32x8-c38310e5.pth"
    (tmp_path / hub_name).touch()
    assert find_file(WSL_8D) == tmp_path / hub_name
    (tmp_path / safetensors_name).touch()
    assert find_file(WSL_8D) == tmp_path / safetensors_name


def test_a_missing_file_says_where_to_put_it_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "weights"))
    with pytest.raises(UserInputError) as err:
        load_backbone("resnext101_32x16d.fb_wsl_ig1b_ft_in1k", ModelConfig(), seed=0)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("transfer.pretrained=resnext101_32x16d_wsl: no weights file in ")
    assert f"{WEIGHTS_DIR_ENV}={tmp_path / 'weights'}" in msg
    for name in (
        "resnext101_32x16d.fb_wsl_ig1b_ft_in1k.safetensors",
        "resnext101_32x16d.fb_wsl_ig1b_ft_in1k.pth",
        "ig_resnext101_32x16-c6f796b0.pth",
    ):
        assert name in msg


def test_cli_missing_file_is_one_error_line(tmp_path, monkeypatch, capsys):
    from experiments.__main__ import main

    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
    code = main(
        [
            "transfer",
            "configs/transfer/linear_imagefolder.yaml",
            "pretrained=resnext101_32x8d_wsl",
            f"transfer.target_root={tmp_path / 'images'}",
            f"runs_dir={tmp_path / 'runs'}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: transfer.pretrained=resnext101_32x8d_wsl: no weights file in ")
    assert "resnext101_32x8d.fb_wsl_ig1b_ft_in1k.safetensors" in err
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def wsl_8d_file(tmp_path_factory) -> Path:
    """A timm-layout ``.safetensors`` of resnext101_32x8d (random weights, ~350 MB) under the
    name the weights folder expects."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    state = timm.create_model("resnext101_32x8d", pretrained=False).state_dict()
    path = folder / WSL_8D.file_names[0]
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_a_timm_safetensors_file_loads_by_name(wsl_8d_file, monkeypatch):
    from safetensors.torch import load_file

    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(wsl_8d_file.parent))
    bb = load_backbone("resnext101_32x8d_wsl", ModelConfig(), seed=0)  # rx-tiny's config
    expected = load_file(str(wsl_8d_file))
    loaded = bb.net.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    sha = hashlib.sha256(wsl_8d_file.read_bytes()).hexdigest()
    assert (bb.init, bb.pretrain_run) == ("weights-file", "resnext101_32x8d_wsl")
    assert describe(bb) == {
        "init": "weights-file",
        "pretrain_run": "resnext101_32x8d_wsl",
        "pretrain_axes": {},
        "weights_file": str(wsl_8d_file),
        "weights_sha256": sha,
    }


@pytest.mark.slow
def test_transfer_by_name_picks_the_model_config(wsl_8d_file, tmp_path, monkeypatch):
    from datamodules.transfer import ensure_target_files
    from experiments.transfer import run_transfer
    from tests.transfer_fakes import fake_load_target

    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(wsl_8d_file.parent))
    overrides = [
        f"runs_dir={tmp_path / 'runs'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.loading.num_workers=1",
        "data.write.mode=raw",
        "logging.wandb=false",
        "transfer.target=fake",
        f"transfer.target_root={tmp_path / 'unused'}",
        "transfer.resolution=32",
        "transfer.batch_size=32",
    ]
    cfg = load_config("configs/transfer/linear_imagefolder.yaml", overrides)
    ensure_target_files(cfg.transfer, cfg.data, seed=0, load_fn=fake_load_target)
    assert cfg.model.name == "rx-tiny"
    cfg = load_config(
        "configs/transfer/linear_imagefolder.yaml", [*overrides, "pretrained=resnext101_32x8d_wsl"]
    )
    run = run_transfer(cfg)
    assert run.name == "resnext101_32x8d_wsl__linear-fake-last_seed-0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["model"], metrics["feature_dim"], metrics["pretrain_run"]) == (
        "rx101-32x8d",
        2048,
        "resnext101_32x8d_wsl",
    )
    assert metrics["weights_file"] == str(wsl_8d_file)
    written = load_config(run / "config.yaml")
    assert (written.model.width_per_group, written.model.stem_width) == (8, 64)


def test_an_unknown_name_lists_the_published_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserInputError, match="no such file") as err:
        load_backbone("resnext101_32x4d_wsl", ModelConfig(), seed=0)  # 32x4d: SWSL only
    assert "resnext101_32x8d_wsl, resnext101_32x16d_wsl" in str(err.value)
    assert "resnext101_32x4d_swsl" in str(err.value)
