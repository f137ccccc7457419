"""A truncated or damaged model.safetensors / tokenizer.json is refused with a clear message and
exit 2: by `train`'s pre-launch check (which never reads the weights) and before any load."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from core.model_files import check_model_files, check_safetensors
from core.runs.config import parse_run_config
from core.runs.validate import validate_model
from store.errors import InputError
from tests.conftest import clean_rows, write_jsonl
from tui.cli import main

BASE_MODEL = Path(__file__).resolve().parent.parent / "sample_runs" / "base_model"


def damaged_copy(tmp_path: Path, name: str, keep: float = 0.5) -> Path:
    folder = tmp_path / f"damaged-{name}"
    shutil.copytree(BASE_MODEL, folder)
    whole = (folder / name).read_bytes()
    (folder / name).write_bytes(whole[: int(len(whole) * keep)])
    return folder


def test_the_sample_model_is_whole() -> None:
    check_model_files(BASE_MODEL)


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json"])
def test_the_pre_launch_check_refuses_a_truncated_file(tmp_path: Path, name: str) -> None:
    folder = damaged_copy(tmp_path, name)
    config = parse_run_config({"base_model": str(folder), "dataset": "support@1"})
    with pytest.raises(InputError, match=f"{name}: .*incomplete or damaged") as caught:
        validate_model(config, allow_download=False)
    assert caught.value.exit_code == 2


def test_train_exits_2_on_a_truncated_model(workspace: Any, tmp_path: Path) -> None:
    def ftod(*args: str) -> Any:
        return CliRunner().invoke(main, ["--workspace", str(workspace.root), *args])

    data = write_jsonl(tmp_path / "support.jsonl", clean_rows())
    assert ftod("data", "add", str(data), "--name", "support").exit_code == 0
    assert ftod("data", "split", "support@1", "--val", "0.2").exit_code == 0
    folder = damaged_copy(tmp_path, "model.safetensors", keep=0.999)
    config = tmp_path / "run.yaml"
    config.write_text(f"base_model: {folder}\ndataset: support@1\n")
    result = ftod("train", str(config))
    assert result.exit_code == 2, result.output
    assert "model.safetensors" in result.output and "incomplete or damaged" in result.output


def header_file(path: Path, header: object, data_bytes: int) -> Path:
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"\0" * data_bytes)
    return path


def test_safetensors_headers(tmp_path: Path) -> None:
    tensor = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    check_safetensors(header_file(tmp_path / "whole.safetensors", {"w": tensor}, 8))
    cases = [
        (header_file(tmp_path / "short.safetensors", {"w": tensor}, 7), "where its header"),
        (header_file(tmp_path / "list.safetensors", [1], 0), "not a JSON object"),
        (
            header_file(tmp_path / "offsets.safetensors", {"w": {"data_offsets": "x"}}, 0),
            "no valid data_offsets",
        ),
    ]
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"\1\2")
    cases.append((tiny, "too short"))
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    cases.append((huge, "header claims"))
    for path, message in cases:
        with pytest.raises(InputError, match=message):
            check_safetensors(path)


def test_a_shard_index_naming_a_missing_shard(tmp_path: Path) -> None:
    folder = tmp_path / "sharded"
    folder.mkdir()
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w": "model-00001-of-00002.safetensors"}})
    )
    with pytest.raises(InputError, match=r"model-00001-of-00002\.safetensors"):
        check_model_files(folder)
