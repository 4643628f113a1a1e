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
    assert "valid keys in <root>: data, logging, model" in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_config_file_exits_2(capsys):
    assert main(["pretrain", "configs/pretrain/does_not_exist.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config file not found" in err
