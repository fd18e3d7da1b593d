"""The whole TTS-VAR search through the CLI with model-based verifiers loaded from folders:
DINOv2 (PCA) for clustering and ImageReward for resampling and selection (tiny random weights)."""

from __future__ import annotations

import json

from ttsvar.cli import main


def test_tts_var_from_the_command_line_with_dinov2_and_imagereward(tiny_dirs, tmp_path):
    out = tmp_path / "search.png"
    code = main([
        "generate", "--random-model", "tiny", "--pn", "0.25M", "--prompt", "a red fox in the snow",
        "--strategy", "tts-var", "--n", "1", "--features", f"dinov2:{tiny_dirs['dinov2']}",
        "--reward", f"imagereward:{tiny_dirs['imagereward']}", "--fast-filters", "--out", str(out), "--device", "cpu",
    ])
    assert code == 0 and out.is_file()
    record = json.loads(out.with_suffix(".json").read_text())
    events = record["events"]
    assert [e["kind"] for e in events] == ["cluster", "cluster", "resample", "resample", "select"]
    assert events[0]["extractor"].startswith("dinov2") and events[2]["reward"] == "imagereward"
    assert len(events[2]["rewards"]) == 4 and len(set(events[2]["rewards"])) > 1


def test_unknown_family_is_a_clear_cli_error(tmp_path, capsys):
    code = main(["generate", "--random-model", "tiny", "--pn", "0.06M", "--prompt", "a cat", "--strategy", "best-of-n",
                 "--n", "2", "--reward", f"nosuchmodel:{tmp_path}", "--out", str(tmp_path / "x.png")])
    assert code == 2 and "nosuchmodel" in capsys.readouterr().err
