"""Every YAML under configs/ is run by a test, shrunk to seconds.

``REGISTRY`` names each file and how it is run; ``test_every_yaml_is_run_by_a_test`` fails when
a YAML is added under configs/ without an entry (or an entry names a file that is gone).

* pretrain: the whole config (optimizer, schedule, trainer settings, ``HashtagDataModule``
  built from its ``data`` section) through ``run_pretrain`` for ONE optimizer step on a small
  prepared FFCV folder (``tests.ffcv_pretrain.write_prepared``), then its validation. Overridden:
  the budget (``schedule.images_seen`` = one global batch), where the run goes (runs_dir, name),
  wandb off, one loader worker, and the machine (cpu, 1 device, 1 node, strategy auto). The
  ``paper_*`` files also get a tiny model (``TINY_MODEL``: one block per stage, 2 groups of
  width 4), after their own model is built on the ``meta`` device and its parameter count
  checked against the paper's table (88M, 193M, 466M, 829M with a 1000-way head; 32x4d: 44M).
* transfer: the whole config through ``run_transfer`` with random init (``pretrained=``), its
  own model, protocol, features, folds and batch size, on the 4-class fake target of
  ``tests.transfer_fakes`` written under the config's target name (the target files' cache is
  filled first, as ``tests/test_transfer.py`` does); fine-tuning for one batch of images.
* model: rx-tiny / rx-small built and run forward on a batch; rx101_* built on ``meta`` with
  the paper's parameter counts.
* data (sources): ``open_source`` of the config's data section, first record decoded: synthetic
  as is, the manifest example on docs/examples, webdataset on a two-sample tar written here,
  OpenClipart on a few of the installed SVGs (skipped without the Debian package, as
  ``tests/test_sources_openclipart.py``).
* data (vocabularies): ``python -m experiments vocab <yaml> --tags-file`` on a small corpus.
* sweeps: ``python -m experiments sweep <yaml> --dry-run``; the ``_*.yaml`` files are the
  shared parts that sweeps include through ``defaults:``, run with them.
* tables: ``tests/test_results_tables.py::test_shipped_tables_configs_run`` builds every
  tables config on a small runs index.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.config import CONFIGS_DIR, load_config

REPO = CONFIGS_DIR.parent

PAPER_MILLIONS = {4: 44, 8: 88, 16: 193, 32: 466, 48: 829}  # with a 1000-way head

REGISTRY = {
    **{f"pretrain/paper_rx101_32x{w}d.yaml": "paper_pretrain" for w in PAPER_MILLIONS},
    "pretrain/quickstart_openclipart.yaml": "pretrain",
    "pretrain/quickstart_synthetic.yaml": "pretrain",
    "pretrain/tiny_cpu.yaml": "pretrain",
    "transfer/finetune_openclipart.yaml": "transfer",
    "transfer/linear_fashion_mnist.yaml": "transfer",
    "transfer/linear_imagefolder.yaml": "transfer",
    "transfer/linear_openclipart_categories.yaml": "transfer",
    "transfer/linear_openclipart_images.yaml": "transfer",
    "transfer/linear_synthetic_in.yaml": "transfer",
    "model/rx-tiny.yaml": "model",
    "model/rx-small.yaml": "model",
    **{f"model/rx101_32x{w}d.yaml": "paper_model" for w in PAPER_MILLIONS},
    "data/openclipart.yaml": "source",
    "data/synthetic.yaml": "source",
    "data/manifest_example.yaml": "source",
    "data/webdataset_example.yaml": "source",
    "data/vocab_in1k.yaml": "vocab",
    "data/vocab_raw.yaml": "vocab",
    "data/vocab_wordnet.yaml": "vocab",
    "sweeps/_mini_synthetic.yaml": "sweep_part",
    "sweeps/_paper.yaml": "sweep_part",
    **{
        f"sweeps/{s}_{size}.yaml": "sweep"
        for s in ("noise", "sampling", "scale", "scale_vocab", "vocab", "width")
        for size in ("mini", "paper")
    },
    "sweeps/loss_mini.yaml": "sweep",
    "sweeps/exploratory/scale_in1k_mini.yaml": "sweep",
    "sweeps/scale_in1k_wide_mini.yaml": "sweep",
    "tables/mini.yaml": "tables",
    "tables/paper.yaml": "tables",
}


def _of(kind: str) -> list[str]:
    return sorted(k for k, v in REGISTRY.items() if v == kind)


def test_every_yaml_is_run_by_a_test():
    shipped = {p.relative_to(CONFIGS_DIR).as_posix() for p in CONFIGS_DIR.rglob("*.y*ml")}
    assert sorted(shipped - set(REGISTRY)) == [], "add these to REGISTRY with how they are run"
    assert sorted(set(REGISTRY) - shipped) == [], "REGISTRY names files that are gone"
    # every shared sweep part is included by a sweep that the dry-run test runs
    for part in _of("sweep_part"):
        name = Path(part).name
        users = [s for s in _of("sweep") if re.search(rf"defaults:.*\b{name}", _text(s))]
        assert users, f"{part}: no sweep includes it"
    # tables configs: run on a small index by test_results_tables (parametrized over the folder)
    from tests import test_results_tables

    params = test_results_tables.test_shipped_tables_configs_run.pytestmark[0].args[1]
    assert sorted(p.relative_to(CONFIGS_DIR).as_posix() for p in params) == _of("tables")


def _text(rel: str) -> str:
    return (CONFIGS_DIR / rel).read_text()


# --- models ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", _of("model"))
def test_small_model_configs_build_and_run(rel):
    from lightning_modules.backbones import build_resnext

    net = build_resnext(load_config(CONFIGS_DIR / rel).model, num_classes=10).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def _paper_width(rel: str) -> int:
    return int(re.search(r"32x(\d+)d", rel).group(1))


def _paper_millions(model_cfg) -> float:
    from lightning_modules.backbones import build_resnext, count_parameters

    with torch.device("meta"):  # no memory: 829M parameters would take 3.3 GB
        net = build_resnext(model_cfg, num_classes=1000)
    return count_parameters(net) / 1e6


@pytest.mark.parametrize("rel", _of("paper_model"))
def test_paper_model_configs_have_the_papers_parameter_counts(rel):
    expected = PAPER_MILLIONS[_paper_width(rel)]
    assert abs(_paper_millions(load_config(CONFIGS_DIR / rel).model) - expected) / expected < 0.01


# --- pretraining -----------------------------------------------------------------------------

TINY_MODEL = ["model.layers=[1,1,1,1]", "model.groups=2", "model.width_per_group=4"]
TINY_MODEL += ["model.stem_width=8", "model.base_planes=16"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from tests.ffcv_pretrain import write_prepared

    return write_prepared(tmp_path_factory.mktemp("prepared"), num_train=128, num_val=48)


@pytest.mark.slow
@pytest.mark.parametrize("rel", _of("paper_pretrain") + _of("pretrain"))
def test_pretrain_configs_run_one_step(rel, prepared, tmp_path):
    from datamodules.pretrain import HashtagDataModule
    from experiments.pretrain import run_pretrain

    path = CONFIGS_DIR / rel
    full = load_config(path)
    paper = REGISTRY[rel] == "paper_pretrain"
    if paper:  # the paper's model, on no memory, before a tiny one stands in for it
        expected = PAPER_MILLIONS[_paper_width(rel)]
        assert abs(_paper_millions(full.model) - expected) / expected < 0.01
    one_batch = full.data.loading.batch_size  # one step on one device, no accumulation
    cfg = load_config(
        path,
        [
            f"runs_dir={tmp_path / 'runs'}",
            "name=one-step",
            "logging.wandb=false",
            "data.loading.num_workers=1",
            f"schedule.images_seen={one_batch}",
            "trainer.accelerator=cpu",
            "trainer.devices=1",
            "trainer.num_nodes=1",
            "trainer.strategy=auto",
            *(TINY_MODEL if paper else []),
        ],
    )
    torch.set_num_threads(1)
    run = run_pretrain(cfg, HashtagDataModule(cfg.data, cfg.seed, prepared_dir=prepared))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["images_seen"] == one_batch
    assert metrics["axes"]["model"] == full.model.name
    written = load_config(run / "config.yaml")
    assert (written.optim, written.schedule.decay) == (full.optim, full.schedule.decay)
    assert written.data.loading.resolution == full.data.loading.resolution


# --- transfer --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("rel", _of("transfer"))
def test_transfer_configs_run(rel, tmp_path):
    from datamodules.transfer import ensure_target_files
    from experiments.transfer import TARGET_SEED, run_transfer
    from tests.transfer_fakes import NUM_CLASSES, fake_load_target

    path = CONFIGS_DIR / rel
    full = load_config(path, ["transfer.target_root=x"])
    overrides = [
        f"runs_dir={tmp_path / 'runs'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.loading.num_workers=1",
        "logging.wandb=false",
        "pretrained=",
        f"transfer.target_root={tmp_path / 'images'}",
    ]
    if full.transfer.protocol == "finetune":
        overrides.append(f"transfer.images_seen={full.transfer.batch_size}")
    cfg = load_config(path, overrides)
    ensure_target_files(cfg.transfer, cfg.data, seed=TARGET_SEED, load_fn=fake_load_target)
    torch.set_num_threads(1)
    metrics = json.loads((run_transfer(cfg) / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["num_classes"] == NUM_CLASSES
    assert (metrics["protocol"], metrics["target"]) == (
        full.transfer.protocol,
        full.transfer.target,
    )
    assert metrics["folds"] == max(1, full.transfer.folds) and metrics["model"] == full.model.name
    assert 0.0 <= metrics["top1"] <= 1.0


# --- data: sources and vocabularies ----------------------------------------------------------


def _webdataset_tar(path: Path) -> Path:
    from PIL import Image

    with tarfile.open(path, "w") as tar:
        for i, tags in enumerate((["cat", "tabby"], ["dog"])):
            png = io.BytesIO()
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(png, format="PNG")
            meta = json.dumps({"tags": tags, "caption": "a #pet"}).encode()
            for ext, data in (("png", png.getvalue()), ("json", meta)):
                info = tarfile.TarInfo(f"{i:05d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def _small_svg_root(root: Path, held_out: list[str]) -> Path:
    """Four small SVGs of each held-out category and of two pretraining categories."""
    from datamodules.sources.openclipart import DEFAULT_SVG_ROOT

    src = Path(DEFAULT_SVG_ROOT)
    if not src.is_dir():
        pytest.skip("Debian package openclipart-svg not installed")
    kept = sorted(d.name for d in src.iterdir() if d.is_dir() and d.name not in held_out)[:2]
    for cat in [*held_out, *kept]:
        small = sorted(p for p in (src / cat).rglob("*.svg") if p.stat().st_size < 20000)[:4]
        for p in small:
            dest = root / p.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, dest)
    return root


@pytest.mark.parametrize("rel", _of("source"))
def test_source_configs_open_and_decode(rel, tmp_path, monkeypatch):
    from datamodules.sources import open_source
    from datamodules.sources.base import load_rgb

    overrides = [f"data.cache_dir={tmp_path / 'cache'}"]
    if "webdataset" in rel:
        overrides.append(f"data.source.webdataset={_webdataset_tar(tmp_path / 'shard.tar')}")
    if "openclipart" in rel:
        from datamodules.sources import openclipart

        held_out = load_config(CONFIGS_DIR / rel).data.source.holdout_categories
        svg = _small_svg_root(tmp_path / "svg", held_out)
        monkeypatch.setenv(openclipart.SVG_ROOT_ENV, str(svg))
    if "manifest" in rel:
        monkeypatch.chdir(REPO)  # the example names docs/examples/ relative to the repository
    cfg = load_config(CONFIGS_DIR / rel, overrides)
    records = open_source(cfg.data)
    assert len(records) >= 1
    rgb = load_rgb(records[0])
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


# every tag three times or more (min_count 3), none in most images (max_tag_share)
VOCAB_CORPUS = [["tench"], ["crane"], ["brown_bear", "#love"], ["goldfish"], ["hen"], ["bruin"]] * 3


@pytest.mark.parametrize("rel", _of("vocab"))
def test_vocab_configs_build(rel, tmp_path, capsys):
    from experiments.__main__ import main

    tags = tmp_path / "tags.jsonl"
    tags.write_text("".join(json.dumps({"tags": t}) + "\n" for t in VOCAB_CORPUS))
    out = tmp_path / "vocab"
    assert main(["vocab", str(CONFIGS_DIR / rel), "--tags-file", str(tags), "--out", str(out)]) == 0
    rows = (out / "vocab.tsv").read_text().splitlines()[1:]
    assert len(rows) >= 2, capsys.readouterr().out


# --- sweeps ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", _of("sweep"))
def test_sweeps_dry_run(rel, tmp_path, capsys):
    from experiments.__main__ import main

    runs = tmp_path / "runs"
    assert main(["sweep", str(CONFIGS_DIR / rel), f"runs_dir={runs}", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\d+ pretraining runs, \d+ transfer runs", out)
    assert not runs.exists()
