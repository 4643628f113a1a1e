"""ResNeXt backbones: the paper's parameter counts, torchvision layout, weights, features."""

import dataclasses

import pytest
import torch
from torchvision.models import resnext50_32x4d

from datamodules.errors import UserInputError
from experiments.config import ModelConfig
from lightning_modules.backbones import (
    STAGES,
    build_resnext,
    count_parameters,
    extract_features,
    feature_dim,
    load_weights,
    normalize_images,
    resnext101_32xd,
)

TINY = ModelConfig(
    layers=[1, 1, 1, 1],
    groups=2,
    width_per_group=4,
    stem_width=8,
    small_input=True,
    zero_init_residual=True,
)


@pytest.mark.parametrize("width,paper_millions", [(8, 88), (16, 193), (32, 466), (48, 829)])
def test_parameter_counts_match_the_paper(width, paper_millions):
    with torch.device("meta"):
        net = resnext101_32xd(width, num_classes=1000)
    assert abs(count_parameters(net) / 1e6 - paper_millions) / paper_millions < 0.01


def test_default_stem_is_torchvision_layout():
    from torchvision.models import resnext101_32x8d

    with torch.device("meta"):
        ours, theirs = resnext101_32xd(8), resnext101_32x8d()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }


def test_small_variant_stem_and_zero_init():
    net = build_resnext(TINY, num_classes=10)
    assert net.conv1.out_channels == 8 and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, torch.nn.Identity)
    assert all(
        float(b.bn3.weight.detach().abs().sum()) == 0 for s in (net.layer1, net.layer4) for b in s
    )
    out = net(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 10)


def test_extract_features_shapes_and_last_matches_head_input():
    net = build_resnext(TINY, num_classes=10).eval()
    x = torch.randn(3, 3, 16, 16)
    last = extract_features(net, x, "last")
    every = extract_features(net, x, "all")
    assert last.shape == (3, feature_dim(net, "last")) == (3, 2048)
    assert every.shape == (3, feature_dim(net, "all")) == (3, 256 + 512 + 1024 + 2048)
    torch.testing.assert_close(net.fc(last), net(x))
    torch.testing.assert_close(every[:, -2048:], last)


def test_load_weights_from_torchvision_layout_skips_head(tmp_path):
    cfg = ModelConfig(
        layers=[3, 4, 6, 3],
        groups=32,
        width_per_group=4,
        stem_width=64,
        small_input=False,
        zero_init_residual=False,
    )
    source = resnext50_32x4d()  # 1000-way head, torchvision's own class
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    net = build_resnext(cfg, num_classes=17)
    info = load_weights(net, path)
    assert info["head_skipped"]
    torch.testing.assert_close(net.layer3[2].conv2.weight, source.layer3[2].conv2.weight)
    assert net.fc.out_features == 17


def test_load_weights_mismatch_lists_missing_and_unexpected(tmp_path):
    state = build_resnext(TINY, num_classes=10).state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["layer2.0.conv1.weight"]
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(UserInputError) as err:
        load_weights(build_resnext(TINY, num_classes=10), path)
    msg = str(err.value)
    assert "missing keys (1): layer2.0.conv1.weight" in msg
    assert "unexpected keys (1): extra.weight" in msg


def test_load_weights_missing_file_is_user_error(tmp_path):
    with pytest.raises(UserInputError, match="not found"):
        load_weights(build_resnext(TINY, 4), tmp_path / "nope.pth")


def test_normalize_images_imagenet_stats():
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = normalize_images(x, channels_last=True)
    expected = (1.0 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(out[0, :, 0, 0], expected)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_bad_layers_is_user_error():
    bad = dataclasses.replace(TINY, layers=[1, 1, 1])
    with pytest.raises(UserInputError, match="model.layers"):
        build_resnext(bad, 4)


def test_base_planes_scales_every_stage_and_the_head():
    cfg = ModelConfig(
        layers=[1, 1, 1, 1], groups=8, width_per_group=8, stem_width=16, base_planes=16
    )
    net = build_resnext(cfg, num_classes=7)
    widths = [getattr(net, stage)[0].conv3.out_channels for stage in STAGES]
    assert widths == [64, 128, 256, 512]  # 16, 32, 64, 128 planes x expansion 4
    assert net.fc.in_features == 512 and net.fc.out_features == 7
    out = net(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 7)


def test_load_weights_from_safetensors_strips_prefixes(tmp_path):
    from safetensors.torch import save_file

    source = build_resnext(TINY, num_classes=10)
    path = tmp_path / "w.safetensors"
    save_file({f"module.{k}": v for k, v in source.state_dict().items()}, str(path))
    net = build_resnext(TINY, num_classes=10)
    info = load_weights(net, path)
    assert info["loaded"] == len(source.state_dict()) and not info["head_skipped"]
    for key, value in source.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key


def test_unreadable_safetensors_is_user_error(tmp_path):
    path = tmp_path / "w.safetensors"
    torch.save(build_resnext(TINY, num_classes=10).state_dict(), path)  # a torch file, misnamed
    with pytest.raises(UserInputError, match="cannot read as a safetensors file"):
        load_weights(build_resnext(TINY, 10), path)
