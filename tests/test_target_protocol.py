"""The transfer protocol's leaks, each closed (issue 14 section 1, items 3-6).

Copies inside a target are dropped or kept in one fold; BN re-estimation for a k-fold probe
sees only the fold's training part; OpenClipart's two targets are named for what they are and
never enter pretraining; a transfer's held-out split is the pretraining run's.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from datamodules import dedup
from datamodules.errors import UserInputError
from datamodules.target_files import dedup_within_target, ensure_target_files
from experiments.config import DataConfig, load_config
from lightning_modules.linear_probe import outer_folds
from tests.transfer_fakes import NUM_CLASSES, copies_load_target, fake_load_target

RES = 16


def _cfg(tmp_path, *overrides):
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


def _sigs(items):
    return dedup.compute_signatures(rgb for rgb, _ in items)


# --- copies inside a target ---------------------------------------------------------------------


def test_duplicate_groups_join_chains_and_exact_copies():
    rng = np.random.default_rng(0)
    base = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
    near = base[0].copy()
    near[0, 0] ^= 1  # one pixel off: not exact, but the same picture
    sigs = dedup.compute_signatures([base[0], base[1], near, base[2], base[1].copy(), base[3]])
    groups = dedup.duplicate_groups(sigs, hamming=4)
    assert groups.tolist() == [0, 1, 0, 3, 1, 5]


def test_within_target_dedup_drops_conflicts_and_val_copies_keeps_lookalikes():
    data = copies_load_target("copies", image_size=RES, seed=0, cache_dir="")
    train_y = np.array([y for _, y in data.train])
    val_y = np.array([y for _, y in data.val])
    found = dedup_within_target(_sigs(data.train), _sigs(data.val), train_y, val_y, hamming=4)
    rep = found["report"]
    # the 4 pictures stored under two labels: all 8 copies dropped
    assert rep["dropped_conflicting_labels"] == 8
    dropped_train = sorted(set(range(len(train_y))) - set(found["train_keep"].tolist()))
    assert dropped_train == [0, 1, 2, 3, 80, 81, 82, 83]
    # val images copying train images (same label) are dropped from val only
    assert rep["dropped_val_copies_of_train"] == 6
    assert found["val_keep"].tolist() == list(range(6, 40))
    # same-label copies inside train stay, in one group
    keep = found["train_keep"].tolist()
    g = dict(zip(keep, found["train_groups"].tolist()))
    assert g[16] == g[20] == g[21]
    # near look-alikes (these class gradients are) are grouped, never dropped
    assert rep["images_in_near_duplicate_groups"] > 20 and len(keep) == 84 - 8


def test_target_files_record_groups_and_dedup_report(tmp_path):
    cfg = _cfg(tmp_path, "transfer.target=copies")
    files = ensure_target_files(cfg.transfer, cfg.data, seed=0, load_fn=copies_load_target)
    assert (files.num_train, files.num_val) == (84 - 8, 40 - 6)
    groups = files.groups()
    assert len(groups["train"]) == files.num_train and len(groups["val"]) == files.num_val
    assert files.dedup_within["dropped_conflicting_labels"] == 8


def test_runs_writing_one_target_at_once_keep_one_whole_copy(tmp_path):
    """Two jobs of a parallel sweep may write the same target together: each builds in a
    folder of its own and renames it into place; both read the same complete files, and an
    older version's half-written folder is replaced."""
    from concurrent.futures import ThreadPoolExecutor

    cfg = _cfg(tmp_path, "transfer.target=copies")
    with ThreadPoolExecutor(2) as pool:
        both = list(
            pool.map(
                lambda _: ensure_target_files(
                    cfg.transfer, cfg.data, seed=0, load_fn=copies_load_target
                ),
                range(2),
            )
        )
    assert both[0].dir == both[1].dir and both[0].num_train == both[1].num_train == 84 - 8
    assert [p.name for p in both[0].dir.parent.iterdir()] == [both[0].dir.name]  # no leftovers
    (both[0].dir / "meta.json").unlink()  # as a run that died mid-write left it
    again = ensure_target_files(cfg.transfer, cfg.data, seed=0, load_fn=copies_load_target)
    assert (again.dir / "meta.json").is_file() and again.num_train == 84 - 8


def test_outer_folds_keep_each_group_in_one_fold():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 40)
    groups = np.arange(len(y))
    groups[rng.choice(len(y), 30, replace=False)] = 7  # a big group of copies, across classes
    for train, ev in outer_folds(y, 3, 5, seed=0, groups=groups):
        assert not set(groups[train]) & set(groups[ev])
    # without groups, plain stratified k-fold spreads that group over folds
    spread = [set(groups[ev]) for _, ev in outer_folds(y, 3, 5, seed=0)]
    assert sum(7 in s for s in spread) > 1


# --- BN re-estimation per fold ------------------------------------------------------------------


def test_per_fold_bn_statistics_never_see_the_fold_scored(tmp_path):
    """Changing the images a fold is scored on leaves that fold's features of its training
    images unchanged: its BN statistics came from its training part only (the old protocol
    re-estimated them on the whole train split, which k-fold scores)."""
    from lightning_modules import features as transfer
    from lightning_modules.backbone_loading import load_backbone

    cfg = _cfg(tmp_path, "transfer.folds=4", "transfer.bn_recalibrate=true", "seed=3")
    files = ensure_target_files(cfg.transfer, cfg.data, seed=0, load_fn=fake_load_target)
    first = transfer.per_fold_bn_features(cfg, load_backbone("", cfg.model, cfg.seed), files)
    train0, eval0 = first["fold0_train"], first["fold0_eval"]

    images, labels = transfer._target_images(cfg, files)
    altered = images.clone()
    altered[torch.as_tensor(eval0)] = 255 - altered[torch.as_tensor(eval0)]
    cfg2 = dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, cache_dir=str(tmp_path / "c2"))
    )
    files2 = dataclasses.replace(files)
    orig = transfer._target_images
    try:
        transfer._target_images = lambda c, f: (altered, labels)
        second = transfer.per_fold_bn_features(cfg2, load_backbone("", cfg.model, cfg.seed), files2)
    finally:
        transfer._target_images = orig
    assert np.array_equal(second["fold0_eval"], eval0)
    np.testing.assert_allclose(second["fold0_x"][train0], first["fold0_x"][train0], atol=1e-5)
    # ...while a fold whose training part held those images did change
    assert not np.allclose(
        second["fold1_x"][first["fold1_train"]], first["fold1_x"][first["fold1_train"]]
    )
    assert int(first["bn_images0"]) == len(train0)


def test_kfold_probe_with_per_fold_bn_runs_end_to_end(tmp_path):
    from experiments.transfer import run_transfer

    cfg = _cfg(
        tmp_path, "transfer.folds=3", "transfer.bn_recalibrate=true", "transfer.features=all"
    )
    ensure_target_files(cfg.transfer, cfg.data, seed=0, load_fn=fake_load_target)
    import json

    run = run_transfer(cfg)
    m = json.loads((run / "metrics.json").read_text())
    assert m["bn_recalibration"] == "per fold, on its training part"
    assert len(m["bn_recalibration_images"]) == 3 and len(m["fold_top1"]) == 3
    assert m["fold_grouping"].startswith("near-duplicate groups")
    assert 0.0 <= m["top1"] <= 1.0 and m["num_classes"] == NUM_CLASSES


# --- OpenClipart targets and the held-out split -------------------------------------------------


def test_old_openclipart_target_name_says_what_it_became():
    from datamodules.sources import load_target

    with pytest.raises(UserInputError, match="openclipart_images .* openclipart_categories"):
        load_target("openclipart", image_size=16, seed=0, cache_dir="")


def test_transfer_adopts_the_pretraining_split_and_refuses_another(tmp_path):
    from experiments.transfer import heldout_data_config

    run_split = {"source": "openclipart", "holdout_fraction": 0.3, "holdout_categories": ["food"]}
    cfg = _cfg(tmp_path, "transfer.target=openclipart_categories")
    adopted = heldout_data_config(cfg, run_split)
    assert adopted.source.holdout_fraction == 0.3 and adopted.source.holdout_categories == ["food"]
    explicit = _cfg(
        tmp_path, "transfer.target=openclipart_images", "data.source.holdout_fraction=0.1"
    )
    with pytest.raises(UserInputError, match="holdout_fraction=0.1 differs .* 0.3"):
        heldout_data_config(explicit, run_split)
    # other targets, random init and other sources are left alone
    fm = _cfg(tmp_path, "transfer.target=fashion_mnist", "data.source.holdout_fraction=0.1")
    assert heldout_data_config(fm, run_split) is fm.data
    assert heldout_data_config(cfg, None) is cfg.data
    assert DataConfig().source.holdout_categories == []
