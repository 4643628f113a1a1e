"""OpenClipart folder names never become hashtags: dropped by WordNet lemma and synset (not by
string), through the one rule both vocabulary builders use, and listed in the report.

Real WordNet (Debian wordnet-base) and real OpenClipart folder names (``animals``, ``plants``,
``buildings``, ``tools``: folders of /usr/share/openclipart/svg).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from datamodules import prepare
from datamodules.hashtags import category_name_tags, count_tag_categories
from datamodules.sources.openclipart import svg_root
from datamodules.wordnet import load_wordnet
from experiments.__main__ import main
from experiments.config import DataConfig
from tests.data_configs import data_config

REPO = Path(__file__).resolve().parent.parent
WORDNET = str(REPO / "configs" / "data" / "vocab_wordnet.yaml")
FOLDERS = ("animals", "plants", "buildings", "tools")
# (category, tags) per image: names, inflections and synonyms of the folders, and tags that
# name something else (cat, rose, house, hammer) or a synonym of a sense the folder does not
# mean (cock: tool's vulgar sense, here on a rooster; works: plant's industrial sense)
CORPUS = [
    ("animals", ["animal", "cat", "Beast"]),
    ("animals", ["Animals", "cat", "cock"]),
    ("animals", ["animal", "cock", "fauna"]),
    ("plants", ["plant", "rose", "flora"]),
    ("plants", ["plants", "rose"]),
    ("buildings", ["building", "house", "edifice"]),
    ("buildings", ["Buildings", "house"]),
    ("tools", ["tool", "hammer"]),
    ("tools", ["tools", "hammer", "works"]),
    ("tools", ["hammer", "cock"]),
    (None, ["works", "cat"]),
    (None, ["works", "rose"]),
]
DROPPED = {
    "animal": "animals",
    "animals": "animals",
    "beast": "animals",
    "fauna": "animals",
    "plant": "plants",
    "plants": "plants",
    "flora": "plants",
    "building": "buildings",
    "buildings": "buildings",
    "edifice": "buildings",
    "tool": "tools",
    "tools": "tools",
}
KEPT = {"cat", "cock", "rose", "house", "hammer", "works"}


def _tags(tags):
    return [t.lower() for t in tags]


def test_the_folders_are_real_openclipart_folders():
    root = svg_root()
    if not root.is_dir():
        pytest.skip(f"{root} not installed (Debian openclipart-svg)")
    assert set(FOLDERS) <= {p.name for p in root.iterdir() if p.is_dir()}


def test_category_names_by_lemma_and_synset_on_real_wordnet():
    wn = load_wordnet()
    assert wn.morphy("animals") == ("animal",) and wn.morphy("geese") == ("goose",)
    tags = [_tags(t) for _, t in CORPUS]
    cats = [c for c, _ in CORPUS]
    dropped = category_name_tags(FOLDERS, count_tag_categories(tags, cats), wn)
    assert dropped == DROPPED
    # a name form is dropped wherever it occurs; a synonym only where its folder dominates
    elsewhere = count_tag_categories([["plant"], ["plant"], ["flora"], ["flora"]], ["tools"] * 4)
    assert category_name_tags(FOLDERS, elsewhere, wn) == {"plant": "plants"}


def _data(**vocab) -> DataConfig:
    return data_config(
        {
            "source": {"name": "openclipart"},
            "vocab": {"name": "wordnet", "min_count": 1, "max_tag_share": 0.0, **vocab},
        }
    )


def _check_report(report: dict, vocab_hashtags: list[str]) -> None:
    assert sorted(set(DROPPED) & set(vocab_hashtags)) == []
    rows = report["dropped"]["category_name"]
    assert {t: c for t, c, _ in rows} == DROPPED
    counts = Counter(t for _, tags in CORPUS for t in _tags(tags))
    assert {t: n for t, _, n in rows} == {t: counts[t] for t in DROPPED}
    assert KEPT <= set(vocab_hashtags)


def test_vocab_cli_drops_and_reports_category_names(tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"tags": t, "category": c}) + "\n" for c, t in CORPUS))
    out = tmp_path / "vocab"
    args = ["data.source.name=openclipart", "data.vocab.min_count=1", "data.vocab.max_tag_share=0"]
    assert main(["vocab", WORDNET, *args, "--tags-file", str(corpus), "--out", str(out)]) == 0
    report = json.loads((out / "vocab_report.json").read_text())
    hashtags = [line.split("\t")[1] for line in (out / "vocab.tsv").read_text().splitlines()[1:]]
    _check_report(report, hashtags)
    assert "#animal (animals, 2 images)" in capsys.readouterr().out


def test_prepare_vocab_stage_drops_and_reports_category_names(tmp_path):
    scan = tmp_path / "scan"
    scan.mkdir()
    rows = [{"id": f"i{k}", "tags": _tags(t), "category": c} for k, (c, t) in enumerate(CORPUS)]
    (scan / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts = Counter(t for r in rows for t in r["tags"])
    (scan / "tag_counts.json").write_text(json.dumps(counts))
    out = tmp_path / "vocab"
    out.mkdir()
    prepare._build_vocab(_data(), scan, out, progress=False)
    report = json.loads((out / "vocab_report.json").read_text())
    hashtags = [line.split("\t")[1] for line in (out / "vocab.tsv").read_text().splitlines()[1:]]
    _check_report(report, hashtags)
    assert json.loads((out / "stage.json").read_text())["category_names"] == DROPPED
    # off by the knob, and for sources without folders
    prepare._build_vocab(_data(drop_category_names=False), scan, out, progress=False)
    assert json.loads((out / "vocab_report.json").read_text())["dropped"]["category_name"] == []
    assert "animal" in (out / "vocab.tsv").read_text()
