"""Transfer: target files, features, BN recalibration, fine-tuning, run_transfer and its errors.

The targets here are small fakes (``fake_load_target``: coloured class patterns with noise),
written through the real FFCV path; the synthetic-world comparison of pretrained vs random
features lives in the slow test at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.errors import UserInputError
from datamodules.target_files import TargetSpec, _build_target
from datamodules.transfer import (
    TargetDataModule,
    check_target,
    ensure_target_files,
)
from experiments.config import RunConfig, load_config
from lightning_modules.backbone_loading import load_backbone
from lightning_modules.backbones import build_resnext, feature_dim, normalize_images
from lightning_modules.features import extract_split_features, recalibrate_batchnorm
from lightning_modules.finetune import FineTuner
from tests.transfer_fakes import NUM_CLASSES, fake_load_target

RES = 16


def _cfg(tmp_path: Path, *overrides: str) -> RunConfig:
    return load_config(
        None,
        [
            f"runs_dir={tmp_path / 'runs'}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.loading.num_workers=1",
            "data.write.mode=raw",
            "logging.wandb=false",
            "model.layers=[1,1,1,1]",
            "model.width_per_group=2",
            "model.groups=4",
            "model.stem_width=8",
            "transfer.target=fake",
            f"transfer.resolution={RES}",
            "transfer.batch_size=32",
            *overrides,
        ],
    )


AXES = {"source": "synthetic", "images": 100, "vocab": "raw", "sampling": "sqrt", "seed": 0}


def make_pretrain_run(runs_dir: Path, cfg: RunConfig, name: str = "pre") -> Path:
    """A run dir shaped like run_pretrain's: checkpoints/last.ckpt (HashtagPretrainer layout:
    ``net.*`` weights, the config in hparams) and a complete metrics.json with axes."""
    from experiments.config import to_dict
    from experiments.rundir import RunDir

    run = RunDir.create(runs_dir, name)
    torch.manual_seed(123)
    net = build_resnext(cfg.model, num_classes=5)
    ckpt = {
        "hyper_parameters": {"config": to_dict(cfg), "vocab_size": 5, "hashtags": list("abcde")},
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
    }
    torch.save(ckpt, run.checkpoints / "last.ckpt")
    run.write_metrics({"status": "complete", "kind": "pretrain", "name": name, "axes": AXES})
    return run.path


@pytest.fixture(scope="module")
def fake_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("target")
    cfg = _cfg(tmp)
    files = ensure_target_files(cfg.transfer, cfg.data, seed=0, load_fn=fake_load_target)
    return tmp, files


# --- target files -------------------------------------------------------------------------------


def test_check_target_rejects_single_class_and_empty_split():
    with pytest.raises(UserInputError, match="at least 2"):
        check_target("t", ["a"], np.zeros(3, int), np.zeros(2, int))
    with pytest.raises(UserInputError, match="val split is empty"):
        check_target("t", ["a", "b"], np.array([0, 1]), np.array([], int))
    with pytest.raises(UserInputError, match="single class"):
        check_target("t", ["a", "b"], np.array([1, 1]), np.array([0, 1]))


def test_target_files_written_once_and_read_back(fake_files):
    tmp, files = fake_files
    assert files.num_classes == NUM_CLASSES
    assert (files.num_train, files.num_val) == (160, 64)
    assert files.train_counts == [40] * NUM_CLASSES
    mtime = files.train.stat().st_mtime_ns
    cfg = _cfg(tmp)
    again = ensure_target_files(cfg.transfer, cfg.data, seed=0, load_fn=fake_load_target)
    assert again.dir == files.dir and files.train.stat().st_mtime_ns == mtime
    # read back through FFCV: images exactly as written (raw mode, whole-image crop)
    dm = TargetDataModule(files, resolution=RES, batch_size=64, num_workers=1)
    images, labels = next(iter(dm.eval_loader("val")))
    expected = fake_load_target("fake", image_size=RES, seed=0, cache_dir="").val[:64]
    assert images.dtype == torch.uint8 and images.shape == (64, 3, RES, RES)
    assert labels.tolist() == [c for _, c in expected]
    assert torch.equal(images[3].permute(1, 2, 0), torch.from_numpy(expected[3][0]))


def test_features_from_a_shuffled_ffcv_loader_keep_their_labels(fake_files):
    """Every feature row extracted through FFCV (shuffled, buffers reused across batches)
    carries the label of the image it came from: match rows to in-memory features."""
    tmp, files = fake_files
    cfg = _cfg(tmp)
    net = load_backbone("", cfg.model, seed=0).net
    cpu = torch.device("cpu")
    dm = TargetDataModule(files, resolution=RES, batch_size=8, num_workers=1, seed=3)
    x_ffcv, y_ffcv = extract_split_features(net, dm.eval_loader("train", shuffle=True), "all", cpu)
    items = fake_load_target("fake", image_size=RES, seed=0, cache_dir="").train
    images = torch.stack([torch.from_numpy(im).permute(2, 0, 1) for im, _ in items])
    x_mem, _ = extract_split_features(net, [(images, torch.zeros(len(items)))], "all", cpu)
    nearest = torch.cdist(torch.from_numpy(x_ffcv), torch.from_numpy(x_mem)).argmin(1).numpy()
    assert len(set(nearest.tolist())) == len(items)  # a permutation of the train images
    assert y_ffcv.tolist() == [items[i][1] for i in nearest]


@pytest.mark.parametrize(
    "target, match", [("one_class", "at least 2"), ("no_val", "no val images")]
)
def test_bad_targets_raise_user_errors(tmp_path, target, match):
    # the checks run before anything is written; in-process here (ensure_target_files runs the
    # same function in a spawned process, which re-raises the same UserInputError)
    cfg = _cfg(tmp_path, f"transfer.target={target}")
    spec = TargetSpec.from_config(cfg.transfer, cfg.data, seed=0)
    with pytest.raises(UserInputError, match=match):
        _build_target(spec, str(tmp_path), str(tmp_path / "out"), 1, fake_load_target)
    assert not (tmp_path / "out").exists()


# --- networks -----------------------------------------------------------------------------------


def test_bn_recalibration_sets_cumulative_batch_statistics(tmp_path):
    cfg = _cfg(tmp_path)
    net = load_backbone("", cfg.model, seed=0).net
    gen = torch.Generator().manual_seed(0)
    batches = [
        (torch.randint(0, 256, (8, 3, RES, RES), dtype=torch.uint8, generator=gen), torch.zeros(8))
        for _ in range(4)
    ]
    used = recalibrate_batchnorm(net, batches, max_images=24, device=torch.device("cpu"))
    assert used == 24  # stops after three of the four batches
    x = normalize_images(torch.cat([b[0] for b in batches])[:24])
    with torch.no_grad():
        stem = net.conv1(x)
    # momentum=None: the plain average of the three equal batches' means = the mean over all 24
    expected = stem.mean(dim=(0, 2, 3))
    assert torch.allclose(net.bn1.running_mean, expected, atol=1e-4)
    assert not net.training


def test_features_have_the_backbone_width(tmp_path):
    cfg = _cfg(tmp_path)
    net = load_backbone("", cfg.model, seed=0).net
    batches = [(torch.randint(0, 256, (5, 3, RES, RES), dtype=torch.uint8), torch.arange(5))] * 2
    for stages in ("last", "all"):
        x, y = extract_split_features(net, batches, stages, torch.device("cpu"))
        assert x.shape == (10, feature_dim(net, stages)) and x.dtype == np.float32
        assert y.tolist() == list(range(5)) * 2


def test_random_init_depends_on_seed_and_weights_file_loads(tmp_path):
    cfg = _cfg(tmp_path)
    a = load_backbone("", cfg.model, seed=0)
    b = load_backbone("", cfg.model, seed=1)
    assert a.init == "random" and a.pretrain_run == ""
    assert not torch.equal(a.net.conv1.weight, b.net.conv1.weight)
    path = tmp_path / "weights.pth"
    torch.save(b.net.state_dict(), path)
    c = load_backbone(str(path), cfg.model, seed=0)
    assert (c.init, c.pretrain_run) == ("weights-file", "weights")
    assert torch.equal(c.net.conv1.weight, b.net.conv1.weight)


def test_mismatched_weights_file_is_a_user_error(tmp_path):
    cfg = _cfg(tmp_path)
    other = build_resnext(_cfg(tmp_path, "model.layers=[1,2,1,1]").model, num_classes=3)
    path = tmp_path / "other.pth"
    torch.save(other.state_dict(), path)
    with pytest.raises(UserInputError, match="does not match the backbone"):
        load_backbone(str(path), cfg.model, seed=0)
    with pytest.raises(UserInputError, match="no such file"):
        load_backbone(str(tmp_path / "missing.pth"), cfg.model, seed=0)


def test_pretraining_run_loads_with_its_axes_and_a_mismatch_is_a_user_error(tmp_path):
    cfg = _cfg(tmp_path)
    run = make_pretrain_run(tmp_path / "runs", cfg)
    bb = load_backbone(str(run), cfg.model, seed=0)
    assert (bb.init, bb.pretrain_run, bb.pretrain_axes) == ("hashtag", "pre", AXES)
    assert bb.identity.startswith("ckpt:") and "last.ckpt" in bb.identity
    wider = _cfg(tmp_path, "model.width_per_group=4").model
    with pytest.raises(UserInputError, match="width_per_group"):
        load_backbone(str(run / "checkpoints" / "last.ckpt"), wider, seed=0)


def test_finetuner_param_groups_and_a_few_steps(tmp_path):
    import lightning as L

    cfg = _cfg(tmp_path)
    net = load_backbone("", cfg.model, seed=0).net
    model = FineTuner(net, 3, lr=0.1, backbone_lr_mult=0.1, total_steps=20)
    opt = model.configure_optimizers()["optimizer"]
    head = {id(p) for p in model.net.fc.parameters()}
    for group in opt.param_groups:
        is_head = {id(p) for p in group["params"]} <= head
        assert group["initial_lr"] == pytest.approx(0.1 if is_head else 0.01)
    data = fake_load_target("fake", image_size=RES, seed=0, cache_dir="").train
    images = torch.stack([torch.from_numpy(im).permute(2, 0, 1) for im, _ in data])
    labels = torch.tensor([c for _, c in data]) % 3
    loader = torch.utils.data.DataLoader(list(zip(images, labels)), batch_size=32, shuffle=True)
    trainer = L.Trainer(
        max_steps=20,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, loader, loader)
    assert float(trainer.callback_metrics["val/top1"]) > 0.6
    assert float(trainer.callback_metrics["val/top5"]) == 1.0  # 3 classes: top-k caps at 3


# --- run_transfer -------------------------------------------------------------------------------


@pytest.mark.slow
def test_linear_run_writes_metrics_and_skips_when_complete(fake_files, capsys):
    from experiments.transfer import run_transfer

    tmp, files = fake_files
    cfg = _cfg(tmp, "transfer.features=all", "transfer.bn_recalibrate=true", "seed=1")
    run = run_transfer(cfg)
    metrics = json.loads((run / "metrics.json").read_text())
    assert run.name == "random-rx-tiny__linear-fake-all-bnrecal_seed-1"
    assert metrics["status"] == "complete" and metrics["kind"] == "transfer"
    assert (metrics["init"], metrics["pretrain_run"], metrics["pretrain_axes"]) == (
        "random",
        "",
        {},
    )
    assert (metrics["num_classes"], metrics["num_train"], metrics["num_val"]) == (4, 160, 64)
    assert metrics["top1"] > 0.8  # the classes differ in colour: random features suffice
    assert metrics["top5"] == 1.0
    assert metrics["bn_recalibration_images"] == 160
    probe = metrics["probe"][0]
    # separable colours: every strength scores top-1 1.0 held out, the loss tie-break picks the
    # weakest, so the grid is extended three decades down and the choice stays at its edge
    assert probe["heldout_top1"] == [1.0] * len(probe["grid"]) and len(probe["grid"]) == 9
    assert probe["l2"] == min(probe["grid"]) and probe["at_edge"]
    assert probe["extensions"] == pytest.approx([1e-5, 1e-6, 1e-7])
    assert list((tmp / "cache" / "features").glob("*.npz"))
    capsys.readouterr()
    assert run_transfer(cfg) == run
    assert "complete; skipping" in capsys.readouterr().out


@pytest.mark.slow
def test_finetune_run_end_to_end(fake_files):
    from experiments.transfer import run_transfer

    tmp, files = fake_files
    pre = make_pretrain_run(tmp / "pretrain_runs", _cfg(tmp))
    cfg = _cfg(
        tmp,
        f"pretrained={pre}",
        "transfer.protocol=finetune",
        "transfer.images_seen=1280",
        "transfer.lr=0.05",
        "transfer.backbone_lr_mult=1.0",
    )
    run = run_transfer(cfg)
    metrics = json.loads((run / "metrics.json").read_text())
    assert run.name == "pre__finetune-fake_seed-0"
    assert (metrics["init"], metrics["pretrain_run"], metrics["pretrain_axes"]) == (
        "hashtag",
        "pre",
        AXES,
    )
    assert metrics["protocol"] == "finetune" and metrics["finetune"]["steps"] == 40
    # lr 0.1 over 20 steps diverged (loss 17) and ended at chance or 1.0 by thread count; this
    # schedule reaches 1.0 with 1 and 2 threads
    assert metrics["top1"] > 0.9  # chance is 0.25
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_cli_reports_bad_weights_on_one_line(tmp_path, capsys):
    from experiments.__main__ import main

    path = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    code = main(
        [
            "transfer",
            str(Path("configs/transfer/linear_fashion_mnist.yaml")),
            f"pretrained={path}",
            f"runs_dir={tmp_path}",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "does not match the backbone" in err
    assert "\n" not in err


# --- the point of pretraining -------------------------------------------------------------------


@pytest.mark.slow
def test_hashtag_pretrained_features_beat_random_on_synthetic_in(tmp_path):
    """A tiny HashtagPretrainer (multi-label softmax on the synthetic world's raw hashtags,
    ~300 steps) gives penultimate features that probe far better on ``synthetic_in`` (50
    concept classes from a separate image stream) than a random network's, batch-norm
    recalibrated on the target for fairness. (A random net's features pooled from *all*
    stages are a stronger baseline that a pretraining this short does not beat.)"""
    from datamodules.sources import load_target
    from experiments.pretrain import run_pretrain
    from lightning_modules.linear_probe import linear_probe
    from tests.synthetic_pretrain import SyntheticTagsDataModule

    size, cpu = 32, torch.device("cpu")
    cfg = load_config(
        "configs/model/rx-tiny.yaml",
        [
            f"runs_dir={tmp_path}",
            "name=pre",
            "logging.wandb=false",
            "data.loading.batch_size=32",
            "schedule.images_seen=9600",
            "schedule.warmup_images=320",
            "trainer.checkpoint_every_n_steps=1000",
            "trainer.accelerator=cpu",
            "optim.base_lr=0.4",
        ],
    )
    dm = SyntheticTagsDataModule(num_train=2048, num_val=128, image_size=size, batch_size=32)
    run = run_pretrain(cfg, dm)

    target = load_target("synthetic_in", image_size=size, seed=0, cache_dir="", max_per_class=30)

    def batches(split, n):
        for i in range(0, n, 128):
            items = [split[k] for k in range(i, min(n, i + 128))]
            images = torch.from_numpy(np.stack([im for im, _ in items])).permute(0, 3, 1, 2)
            yield images.contiguous(), torch.tensor([c for _, c in items])

    train = list(batches(target.train, len(target.train)))
    val = list(batches(target.val, 500))
    top1 = {}
    for name, pretrained in (("pretrained", str(run)), ("random", "")):
        net = load_backbone(pretrained, cfg.model, seed=0).net
        if not pretrained:
            recalibrate_batchnorm(net, train, max_images=1000, device=cpu)
        xt, yt = extract_split_features(net, train, "last", cpu)
        xv, yv = extract_split_features(net, val, "last", cpu)
        res = linear_probe(xt, yt, xv, yv, 50, [1e-3, 1e-2, 1e-1, 1.0], seed=0)
        top1[name] = res.top1
    print(top1)
    assert top1["pretrained"] > top1["random"] + 0.04, top1
