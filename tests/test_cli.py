"""`python -m ttsvar`: the commands users type, run in-process."""

from __future__ import annotations

import json
import shutil

import torch
from PIL import Image

from ttsvar.cli import main


def test_generate_with_a_random_model_writes_image_and_record(tmp_path, capsys):
    out = tmp_path / "cat.png"
    code = main(["generate", "--random-model", "tiny", "--pn", "0.06M", "--prompt", "a cat", "--strategy", "best-of-n",
                 "--n", "2", "--keep", "2", "--out", str(out), "--device", "cpu"])
    assert code == 0
    assert Image.open(out).size == (256, 256) and Image.open(tmp_path / "cat_1.png").size == (256, 256)
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["strategy"] == "best-of-n" and record["schedule"] == [2] * 7
    assert record["events"][-1]["kind"] == "select" and len(record["events"][-1]["rewards"]) == 2
    assert "random weights" in capsys.readouterr().out


def test_demo_runs_the_tts_var_search_on_the_world_model(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "--out", str(out), "--prompt", "a photo of two green triangles"]) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["model"] == "ttsvar-world" and record["prompt"] == "a photo of two green triangles"
    assert [e["kind"] for e in record["events"]] == ["cluster", "cluster", "resample", "resample", "select"]
    assert record["events"][0]["batch_before"] > len(record["events"][0]["kept"])  # it chose among candidates
    assert Image.open(out).size == (64, 64)
    printed = capsys.readouterr().out
    assert "(64x64, tts-var, N=1" in printed and "after scale" in printed and "the checker sees:" in printed


def test_the_demo_makes_the_folder_its_out_path_names(tmp_path):
    out = tmp_path / "new" / "folder" / "demo.png"
    assert main(["demo", "--out", str(out)]) == 0
    assert Image.open(out).size == (64, 64) and out.with_suffix(".json").is_file()


def test_an_out_path_without_an_image_extension_is_refused_before_the_search(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    assert "must name an image file" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_convert_writes_safetensors_once(reference_files, tmp_path, capsys):
    source = tmp_path / "transformer.pth"
    shutil.copy(reference_files.transformer_pth, source)
    assert main(["convert", str(source)]) == 0
    from safetensors.torch import load_file

    converted = load_file(str(tmp_path / "transformer.safetensors"))
    original = torch.load(source, weights_only=True)
    assert converted.keys() == original.keys() and all(torch.equal(converted[k], original[k]) for k in original)
    assert main(["convert", str(source)]) == 2
    assert "exists already" in capsys.readouterr().err


def test_user_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["generate", "--prompt", "a cat", "--out", str(tmp_path / "x.png")]) == 2
    assert "--transformer" in capsys.readouterr().err
    assert main(["generate", "--random-model", "tiny", "--pn", "0.06M", "--prompt", "a cat", "--strategy", "tts-var",
                 "--schedule", "8,4", "--out", str(tmp_path / "x.png")]) == 2
    assert "give exactly 7 counts" in capsys.readouterr().err
    assert main(["generate", "--random-model", "tiny", "--prompt", " ", "--out", str(tmp_path / "x.png")]) == 2
    assert "prompt is empty" in capsys.readouterr().err


def test_info_names_what_a_checkpoint_is(reference_files, capsys):
    assert main(["info", str(reference_files.transformer_safetensors)]) == 0
    assert "depth 4, width 128, 2 heads, 32-bit tokens" in capsys.readouterr().out
    assert main(["info", str(reference_files.vae_pth)]) == 0
    assert "32-bit codes, stride 16, base width 24" in capsys.readouterr().out
