"""`python -m experiments vocab`: build a hashtag vocabulary from a corpus, or look tags up.

Build (writes ``vocab.tsv`` and ``vocab_report.json`` to ``--out``, prints a summary)::

    python -m experiments vocab configs/data/vocab_in1k.yaml [data.vocab.top_k=500 ...] [--out DIR]
    python -m experiments vocab <config> --tags-file corpus.jsonl    # no image source needed

The corpus is the configured source (``datamodules.sources.open_source(cfg.data)``) or, with
``--tags-file``, a JSONL file with one image per line: ``{"tags": [...]}`` and/or
``{"caption": "... #hashtags ..."}`` (optional ``"category"``).

Lookup (what the WordNet lexicon makes of each tag, no corpus)::

    python -m experiments vocab lookup '#UrsusArctos' crane qwzx --vocab in1k
    python -m experiments vocab lookup dog --vocab-file runs/vocab/x/vocab.tsv
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from datamodules.errors import UserInputError
from datamodules.hashtags import (
    AMBIGUITY_RULES,
    VOCABS,
    Vocabulary,
    build_vocabulary_from_config,
    category_name_drops,
    count_tag_categories,
    count_tags,
    explain,
    image_tags,
    label_all,
    label_stats,
    write_vocabulary,
)
from datamodules.io import iter_jsonl
from experiments.config import DataConfig, load_config

LOOKUP = "lookup"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = (
        "python -m experiments vocab <config.yaml> [key=value ...] [--out DIR] [--tags-file F]\n"
        "       python -m experiments vocab lookup TAG [TAG ...] [--vocab in1k|wordnet|raw] "
        "[--vocab-file vocab.tsv]"
    )
    parser.add_argument(
        "target", help=f"a data config YAML to build from, or '{LOOKUP}' to look tags up"
    )
    parser.add_argument(
        "rest", nargs="*", help="build: config overrides (data.vocab.name=in1k); lookup: the tags"
    )
    build = parser.add_argument_group("build")
    build.add_argument("--out", default="", help="output folder (default runs/vocab/<name>)")
    build.add_argument(
        "--tags-file", default="", help='JSONL corpus: {"tags": [...]} or {"caption": "..."}'
    )
    build.add_argument(
        "--category-spread",
        type=float,
        default=0.0,
        help="drop tags whose category entropy is >= this fraction of the maximum (0 = off)",
    )
    look = parser.add_argument_group("lookup")
    look.add_argument(
        "--vocab", choices=VOCABS, default=None, help="default: data.vocab.name's default (wordnet)"
    )
    look.add_argument(
        "--ambiguity",
        choices=AMBIGUITY_RULES,
        default=None,
        help="a tag with several noun senses: first sense in the vocabulary, or drop",
    )
    look.add_argument("--vocab-file", default="", help="also give each tag's id in this vocab.tsv")


def resolved_configs(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """``--print-config``: the data config a build reads, or a lookup's options."""
    from experiments.cli import options_config

    if args.target == LOOKUP:
        return options_config(args)
    return [("", load_config(args.target, args.rest))]


def run(args: argparse.Namespace) -> int:
    if args.target == LOOKUP:
        return run_lookup(args)
    return run_build(args)


# ---- build -----------------------------------------------------------------------------------
def read_tags_file(path: str | Path) -> tuple[list[list[str]], list[str | None]]:
    """Per-image normalized tags and categories from a JSONL corpus."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"--tags-file {path} not found")
    tag_lists: list[list[str]] = []
    categories: list[str | None] = []
    for n, obj in iter_jsonl(path):
        tags = obj.get("tags", []) if isinstance(obj, dict) else None
        caption = obj.get("caption") if isinstance(obj, dict) else None
        if not isinstance(tags, list) or not isinstance(caption, str | None):
            raise UserInputError(
                f'{path}:{n}: expected {{"tags": [..]}} and/or {{"caption": "..."}}'
            )
        tag_lists.append(image_tags([str(t) for t in tags], caption))
        categories.append(obj.get("category"))
    return tag_lists, categories


def read_source(data_cfg: DataConfig) -> tuple[list[list[str]], list[str | None]]:
    """Per-image normalized tags and categories of the configured source's records.

    A source that offers ``tags(i)`` (the synthetic world: tags without rendering pixels) is
    read through it; otherwise each record's ``tags`` and ``category`` are used.
    """
    from datamodules.sources import open_source

    records = open_source(data_cfg)
    tags_only = getattr(records, "tags", None)
    tag_lists, categories = [], []
    for i in tqdm(range(len(records)), desc=f"reading {data_cfg.source.name} tags", unit="img"):
        if callable(tags_only):
            tag_lists.append(image_tags(tags_only(i)))
            categories.append(None)
        else:
            rec = records[i]
            tag_lists.append(image_tags(rec.tags))
            categories.append(rec.category)
    return tag_lists, categories


def build(
    data_cfg: DataConfig,
    tag_lists: Sequence[Sequence[str]],
    categories: Sequence[str | None],
    category_spread: float = 0.0,
) -> tuple[Vocabulary, dict, list[list[int]]]:
    """Vocabulary, report (with the labels-per-image statistics) and every image's labels."""
    category_names = category_name_drops(data_cfg, tag_lists, categories)
    cat_counts = None
    if category_spread > 0:
        cat_counts = count_tag_categories(tag_lists, categories)
    vocab, report = build_vocabulary_from_config(
        count_tags(tag_lists),
        len(tag_lists),
        data_cfg.vocab,
        category_names=category_names,
        category_counts=cat_counts,
        max_category_spread=category_spread,
    )
    labels, _ = label_all(vocab, tag_lists)
    report["labels"] = label_stats(labels)
    return vocab, report, labels


def _summary(vocab: Vocabulary, report: dict, paths: Sequence[Path]) -> str:
    lines = [f"vocabulary '{report['vocab']}': {len(vocab)} labels"]
    lex = report.get("lexicon")
    if lex:
        lines.append(
            f"  lexicon: {lex['hashtags_before_merge']} hashtags name {lex['synsets_after_merge']}"
            f" of {lex['synset_set']} synsets ({lex['ambiguous_hashtags']} ambiguous, rule "
            f"{report['params']['ambiguity']})"
        )
    m, c, lab = report["merge"], report["corpus"], report["labels"]
    lines.append(
        f"  corpus: {c['images']} images, {c['distinct_tags']} distinct tags; "
        f"{m['hashtags_before_merge']} hashtags -> {m['labels_after_merge']} labels after merge"
    )
    lines.append(
        f"  labelled images: {lab['labelled']} (unlabelled, dropped: {lab['unlabelled']}), "
        f"{lab['mean_labels']:.2f} labels per labelled image"
    )
    d = report["dropped"]
    lines.append(
        f"  dropped: {len(d['stop_list'])} stop tags, {len(d['category_name'])} category "
        f"names, {len(d['max_tag_share'])} over "
        f"max_tag_share, {len(d['category_spread'])} spread over categories, "
        + ", ".join(
            f"{d[k]['hashtags']} {k}"
            for k in (
                "not_a_wordnet_noun",
                "outside_vocabulary_synsets",
                "below_min_count",
                "beyond_top_k",
            )
        )
    )
    if d["category_name"]:
        lines.append(
            "  category names dropped: "
            + ", ".join(f"#{t} ({c}, {n} images)" for t, c, n in d["category_name"])
        )
    if report["zipf"]:
        lines.append(
            f"  Zipf exponent {report['zipf']['exponent']:.3f} (r2 {report['zipf']['r2']:.3f})"
        )
    top = ", ".join(f"#{h} {n}" for h, n in zip(vocab.hashtags[:10], vocab.counts[:10]))
    lines.append(f"  most frequent: {top}")
    lines += [f"  wrote {p}" for p in paths]
    return "\n".join(lines)


def run_build(args: argparse.Namespace) -> int:
    cfg = load_config(args.target, args.rest)
    if args.tags_file:
        tag_lists, categories = read_tags_file(args.tags_file)
        source = f"tags-file:{Path(args.tags_file).name}"
    else:
        tag_lists, categories = read_source(cfg.data)
        source = cfg.data.source.name
    vocab, report, _ = build(cfg.data, tag_lists, categories, args.category_spread)
    report["source"] = source
    default_name = f"{Path(args.tags_file).stem if args.tags_file else cfg.data.source.name}-"
    out = Path(args.out or f"runs/vocab/{default_name}{cfg.data.vocab.name}")
    paths = write_vocabulary(out, vocab, report)
    print(_summary(vocab, report, paths))
    return 0


# ---- lookup ----------------------------------------------------------------------------------
def _describe(info: dict) -> str:
    why = {
        "not_a_wordnet_noun": "not a WordNet noun",
        "outside_vocabulary_synsets": "no sense of it is in this vocabulary's synsets",
        "ambiguous_dropped": "ambiguous (several noun senses), dropped by the rule",
        "stop_tag": "stop tag (noise)",
        "empty": "nothing left after normalization",
    }
    shown = info["normalized"] or "''"
    head = f"{info['tag']}  ->  {shown}"
    if info["hashtag"] is None:
        return f"{head}  =>  no label: {why.get(info['status'], info['status'])}"
    if info["synset"] is None:
        return f"{head}  =>  #{info['hashtag']} (raw vocabulary: the hashtag is its own label)"
    senses = f"{info['senses']} noun sense{'s' if info['senses'] != 1 else ''}"
    return (
        f"{head}  =>  #{info['hashtag']}  {info['synset']}  [{info['status']}, {senses}]\n"
        f"    {info['gloss']}\n    synonyms: {', '.join('#' + s for s in info['synonyms'])}"
    )


def run_lookup(args: argparse.Namespace) -> int:
    if not args.rest:
        raise UserInputError("vocab lookup needs at least one tag: vocab lookup TAG [TAG ...]")
    defaults = DataConfig().vocab
    vocab_file = Vocabulary.load(args.vocab_file) if args.vocab_file else None
    for tag in args.rest:
        info = explain(
            tag,
            vocab=args.vocab or defaults.name,
            ambiguity=args.ambiguity or defaults.ambiguity,
            stop_tags=defaults.stop_tags,
        )
        print(_describe(info))
        if vocab_file is not None:
            i = vocab_file.id_of(tag)
            where = f"label {i} (#{vocab_file.hashtags[i]})" if i is not None else "no label"
            print(f"    in {args.vocab_file}: {where}")
    return 0
