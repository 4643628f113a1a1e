"""`python -m experiments vocab`: lookup output and a build from a JSONL tags file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.__main__ import main

REPO = Path(__file__).resolve().parent.parent
IN1K = str(REPO / "configs" / "data" / "vocab_in1k.yaml")

CORPUS = [
    {"tags": ["Brown_bear", "#love"], "category": "animals"},
    {"caption": "A #bruin in the woods! #UrsusArctos #photooftheday"},
    {"tags": ["tench", "Tinca tinca", "crane"]},
    {"tags": ["qwzx"]},
    {"caption": "Ein #Bär am #Kran, #tench."},
]


@pytest.fixture
def tags_file(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in CORPUS) + "\n\n")
    return path


def test_lookup_prints_canonical_hashtag_synset_and_gloss(capsys):
    rc = main(["vocab", "lookup", "#UrsusArctos", "--vocab", "in1k", "crane", "qwzx", "love"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert (
        out[0]
        == "#UrsusArctos  ->  ursusarctos  =>  #brownbear  n02132136  [unambiguous, 1 noun sense]"
    )
    assert out[1] == "    large ferocious bear of Eurasia"
    assert out[2] == "    synonyms: #brownbear, #bruin, #ursusarctos"
    assert out[3] == "crane  ->  crane  =>  #crane  n03126707  [later_sense, 5 noun senses]"
    assert out[6] == "qwzx  ->  qwzx  =>  no label: not a WordNet noun"
    assert out[7] == "love  ->  love  =>  no label: stop tag (noise)"


def test_lookup_drop_rule_and_missing_tags(capsys):
    assert main(["vocab", "lookup", "crane", "--ambiguity", "drop"]) == 0
    assert (
        "no label: ambiguous (several noun senses), dropped by the rule" in capsys.readouterr().out
    )
    assert main(["vocab", "lookup"]) == 2
    assert "needs at least one tag" in capsys.readouterr().err


def test_build_from_tags_file_is_byte_identical(tags_file, tmp_path, capsys):
    args = ["data.vocab.min_count=1", "data.vocab.max_tag_share=0", "--tags-file", str(tags_file)]
    assert main(["vocab", IN1K, *args, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "vocabulary 'in1k': 3 labels" in out
    assert "1804 hashtags name 998 of 1000 synsets" in out
    assert "labelled images: 4 (unlabelled, dropped: 1)" in out
    tsv = (tmp_path / "a" / "vocab.tsv").read_text().splitlines()
    assert tsv[1:] == [
        "0\tbrownbear\tn02132136\tbrownbear,bruin,ursusarctos\t3",
        "1\ttench\tn01440764\ttench,tincatinca\t3",
        "2\tcrane\tn03126707\tcrane\t1",
    ]
    report = json.loads((tmp_path / "a" / "vocab_report.json").read_text())
    assert report["labels"]["histogram"] == [1, 3, 1]
    assert report["dropped"]["stop_list"] == [["love", 1], ["photooftheday", 1]]
    assert report["source"] == "tags-file:corpus.jsonl"

    assert main(["vocab", IN1K, *args, "--out", str(tmp_path / "b")]) == 0
    for name in ("vocab.tsv", "vocab_report.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()

    capsys.readouterr()
    assert (
        main(["vocab", "lookup", "bruin", "--vocab-file", str(tmp_path / "a" / "vocab.tsv")]) == 0
    )
    assert "label 0 (#brownbear)" in capsys.readouterr().out


def test_build_errors_are_one_line(tags_file, tmp_path, capsys):
    assert main(["vocab", IN1K, "data.vocab.name=imagenet", "--tags-file", str(tags_file)]) == 2
    err = capsys.readouterr().err  # checked by the config schema or by build_vocabulary
    assert "'imagenet'" in err and "in1k, wordnet, raw" in err and err.count("\n") == 1
    assert main(["vocab", IN1K, "data.vocab.min_count=50", "--tags-file", str(tags_file)]) == 2
    assert "the vocabulary is empty" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tags": ["dog"]}\n{oops\n')
    assert main(["vocab", IN1K, "--tags-file", str(bad)]) == 2
    assert "bad.jsonl:2: not valid JSON" in capsys.readouterr().err


def test_lookup_as_a_subprocess():
    result = subprocess.run(
        [sys.executable, "-m", "experiments", "vocab", "lookup", "Tinca_tinca", "--vocab", "in1k"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Tinca_tinca  ->  tincatinca  =>  #tench  n01440764")


class _TagsOnlyCorpus:
    """Stands in for a lazy source: tags(i) works, rendering (records[i]) must not happen."""

    def __init__(self, tag_lists):
        self.tag_lists = tag_lists

    def __len__(self):
        return len(self.tag_lists)

    def __getitem__(self, i):
        raise AssertionError("the vocab verb must not render images")

    def tags(self, i):
        return tuple(self.tag_lists[i])


def test_build_from_the_configured_source_reads_tags_only(tmp_path, monkeypatch, capsys):
    import datamodules.sources

    corpus = _TagsOnlyCorpus([["tench", "#Tinca_tinca"], ["brown_bear"], ["tench"], ["qwzx"]])
    monkeypatch.setattr(datamodules.sources, "open_source", lambda cfg: corpus, raising=False)
    out = tmp_path / "v"
    args = ["data.source.name=synthetic", "data.vocab.min_count=1", "data.vocab.max_tag_share=0"]
    assert main(["vocab", IN1K, *args, "--out", str(out)]) == 0
    assert "labelled images: 3 (unlabelled, dropped: 1)" in capsys.readouterr().out
    assert (out / "vocab.tsv").read_text().splitlines()[1:] == [
        "0\ttench\tn01440764\ttench,tincatinca\t3",
        "1\tbrownbear\tn02132136\tbrownbear,bruin,ursusarctos\t1",
    ]
    assert json.loads((out / "vocab_report.json").read_text())["source"] == "synthetic"
