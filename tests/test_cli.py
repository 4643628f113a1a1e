"""The command line: verbs, --help, one-line errors with exit status 2 (issue 2)."""

import subprocess
import sys

import pytest

from experiments.__main__ import VERBS, main


def test_top_level_help_lists_every_verb(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert f"  {verb}" in out


def test_unknown_verb_exits_2(capsys):
    assert main(["pretrian"]) == 2
    assert "valid verbs: prepare, vocab, pretrain" in capsys.readouterr().err


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as info:
        main([verb, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m experiments {verb}")


def test_unknown_key_exits_2_with_one_line_naming_valid_keys():
    # a real subprocess: what a user sees, with no traceback
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments",
            "pretrain",
            "configs/pretrain/tiny_cpu.yaml",
            "no.such.key=1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "unknown config key 'no.such.key'" in lines[0]
    assert "valid keys in <root>: ckpt_path, data, logging, model" in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_config_file_exits_2(capsys):
    assert main(["pretrain", "configs/pretrain/does_not_exist.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config file not found" in err


# ---------------------------------------------------------------------------------------------
# --print-config and --verbose on every verb (issue 13)

PRINT_CONFIG_ARGS = {  # one command line per verb; a new verb must add one
    "prepare": ["configs/pretrain/tiny_cpu.yaml", "data.write.scale=0.5"],
    "vocab": ["configs/data/vocab_in1k.yaml", "data.vocab.top_k=50"],
    "pretrain": ["configs/pretrain/tiny_cpu.yaml", "seed=3", "ckpt_path=/no/such.ckpt"],
    "transfer": ["configs/transfer/linear_fashion_mnist.yaml", "pretrained=runs/x"],
    "sweep": [
        "configs/sweeps/sampling_mini.yaml",
        "schedule.images_seen=640",
        "--transfer-set",
        "seed=2",
    ],
    "tables": ["configs/tables/mini.yaml", "runs_dir=elsewhere"],
    "reproduce": ["mini", "--dry-run", "--sweeps", "loss_mini"],
    "quickstart": [
        "data.source.num_images=999",
        *("--data", "synthetic", "--seeds", "4", "--ablation", "natural"),
    ],
    "bench": ["train", "--steps", "3"],
    "predict": ["--checkpoint", "runs/x", "a.png"],
}


def _printed(verb: str, capsys, *extra: str) -> str:
    assert main([verb, *PRINT_CONFIG_ARGS[verb], *extra, "--print-config"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def test_every_verb_has_print_config():
    assert set(PRINT_CONFIG_ARGS) == set(VERBS)


@pytest.mark.parametrize("verb", ["prepare", "pretrain", "transfer", "vocab"])
def test_print_config_round_trips_through_load_config(verb, tmp_path, capsys):
    from experiments.config import load_config

    out = _printed(verb, capsys, f"runs_dir={tmp_path / 'runs'}")
    printed = tmp_path / "printed.yaml"
    printed.write_text(out)
    config, *overrides = PRINT_CONFIG_ARGS[verb]
    expected = load_config(config, [*overrides, f"runs_dir={tmp_path / 'runs'}"])
    assert load_config(printed) == expected
    assert not (tmp_path / "runs").exists()  # no work done, not even a run folder


def test_print_config_of_tables_and_sweep_round_trip(tmp_path, capsys):
    from experiments.config import load_config
    from experiments.sweep_spec import expand, load_spec
    from experiments.tables import TablesConfig

    printed = tmp_path / "tables.yaml"
    printed.write_text(_printed("tables", capsys))
    tables = load_config(printed, schema=TablesConfig)
    assert tables == load_config("configs/tables/mini.yaml", ["runs_dir=elsewhere"], TablesConfig)
    assert tables.runs_dir == "elsewhere"

    # the printed spec alone plans the same runs as the spec plus the command's overrides
    printed = tmp_path / "sweep.yaml"
    printed.write_text(_printed("sweep", capsys))
    alone = expand(load_spec(printed))
    spec = load_spec("configs/sweeps/sampling_mini.yaml")
    given = expand(spec, ["schedule.images_seen=640"], transfer_overrides=["seed=2"])
    assert [r.name for r in alone] == [r.name for r in given] and len(alone) > 1
    assert [r.config() for r in alone] == [r.config() for r in given]
    assert all(r.config().schedule.images_seen == 640 for r in alone)
    assert [t.overrides for r in alone for t in r.transfers] == [
        t.overrides for r in given for t in r.transfers
    ]


def test_print_config_of_quickstart_is_one_document_per_run(capsys):
    import argparse

    import yaml
    from omegaconf import OmegaConf

    from experiments.config import RunConfig
    from experiments.quickstart import add_arguments, plan_from_args, pretrain_configs

    out = _printed("quickstart", capsys)
    docs = out.split("--- # ")[1:]
    titles = [d.split("\n", 1)[0] for d in docs]
    assert titles[:2] == ["pretrain-hashtag", "pretrain-hashtag-natural"]
    assert "transfer-random-s4-fashion_mnist-all" in titles and len(titles) == len(set(titles))
    assert len(list(yaml.safe_load_all(out))) == len(titles)
    first = OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(RunConfig), yaml.safe_load(docs[0].split("\n", 1)[1]))
    )
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    plan = plan_from_args(parser.parse_args(PRINT_CONFIG_ARGS["quickstart"]))
    assert first == pretrain_configs(plan)["hashtag"] and first.data.source.num_images == 999


@pytest.mark.parametrize("verb", ["bench", "predict"])
def test_print_config_of_verbs_without_a_config_prints_their_options(verb, capsys):
    import yaml

    options = yaml.safe_load(_printed(verb, capsys))
    if verb == "bench":
        assert options["bench"] == "train" and options["steps"] == 3
        assert options["out"] == "runs/bench/train.json"
    else:
        assert options == {"checkpoint": "runs/x", "images": ["a.png"], "top_k": 5}
    assert "print_config" not in options and "verbose" not in options


def test_print_config_reports_bad_input_in_one_line(capsys):
    assert (
        main(["pretrain", "configs/pretrain/tiny_cpu.yaml", "data.scal=1", "--print-config"]) == 2
    )
    assert capsys.readouterr().err.count("\n") == 1


def test_verbose_is_a_global_flag_before_or_after_the_verb(monkeypatch, capsys):
    from experiments import console

    monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
    assert main(["predict", "--checkpoint", "x", "a.png", "--print-config"]) == 0
    assert not console.is_verbose()
    for argv in (
        ["--verbose", "predict", "--checkpoint", "x", "a.png", "--print-config"],
        ["predict", "--checkpoint", "x", "a.png", "--print-config", "--verbose"],
    ):
        monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
        assert main(argv) == 0
        assert console.is_verbose()  # and so are the child processes a sweep starts
    capsys.readouterr()
