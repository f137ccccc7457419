"""The trainer's parts on their own (loss, schedule, a step) and its checkpoints and disk
faults through real trainer processes on the tiny Llama."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import pathlib
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from core.datasets import add_dataset, split_dataset
from core.runs.config import RunConfig
from core.runs.launch import cancel_run, prepare_run, resume_run, start_trainer
from core.runs.rundir import RunPaths, iter_records, read_status
from core.training.batches import collate
from core.training.data import IGNORE_INDEX, ChatTokenizer, unpacked_rows
from core.training.disk import RESERVE_BYTES, DiskFull, DiskReserve, is_disk_full, require_free
from core.training.model import load_model
from core.training.objective import Objective, ObjectiveOutput, supervised_objective, token_losses
from core.training.optim import build_parts, lr_lambda
from core.training.trainer import Trainer
from store.datasets import DatasetRepository
from tests.conftest import write_jsonl
from tests.test_training import (
    _log,
    tiny_config,
    train_steps,
    training_rows,
    wait_final,
    wait_until,
)
from tui.cli import main

CPU = torch.device("cpu")


@pytest.fixture
def train_repository(workspace: Any, repository: DatasetRepository, tmp_path: Path) -> Any:
    source = write_jsonl(tmp_path / "support.jsonl", training_rows())
    add_dataset(workspace, repository, source, "support")
    split_dataset(repository, "support@1", val=0.2, test=0.0, seed=0)
    return repository


def tiny_model(tiny_model_dir: Path) -> tuple[Any, Any, RunConfig]:
    config = tiny_config(tiny_model_dir)
    torch.manual_seed(0)
    model, tokenizer = load_model(config, CPU, torch.float32)
    return model, tokenizer, config


def tiny_batch(tokenizer: Any, rows: int = 3) -> dict[str, torch.Tensor]:
    chat = ChatTokenizer(tokenizer, 256)
    packed = unpacked_rows(chat.tokenize_all(training_rows(1)[:rows]), tokenizer.pad_token_id)
    return collate(packed, CPU, tokenizer.pad_token_id)


# -- the objective -----------------------------------------------------------------------
def test_chunked_loss_equals_plain_cross_entropy_with_chunks_of_3(tiny_model_dir: Path) -> None:
    model, tokenizer, _ = tiny_model(tiny_model_dir)
    # A batch whose trained-token count is not a multiple of 3, so the last chunk is short
    # (which batch that is depends on the fixture rows' wording, not on the loss).
    for rows in (3, 2, 4, 5):
        batch = tiny_batch(tokenizer, rows)
        if int((batch["labels"][:, 1:] != IGNORE_INDEX).sum()) % 3 != 0:
            break
    assert "attention_mask" in batch, "rows of different lengths, so padding is masked too"
    with torch.no_grad():
        chunked, correct = token_losses(model, batch, with_accuracy=True, chunk_tokens=3)
        logits = model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            attention_mask=batch["attention_mask"],
        ).logits.float()
    shifted_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
    shifted_labels = batch["labels"][:, 1:].reshape(-1)
    plain = torch.nn.functional.cross_entropy(
        shifted_logits, shifted_labels, ignore_index=IGNORE_INDEX, reduction="sum"
    )
    trained = shifted_labels != IGNORE_INDEX
    assert int(trained.sum()) > 3 * 10 and int(trained.sum()) % 3 != 0, "many chunks, one short"
    torch.testing.assert_close(chunked, plain, rtol=1e-5, atol=1e-4)
    right = (shifted_logits.argmax(-1) == shifted_labels)[trained].sum()
    assert correct is not None and int(correct) == int(right)
    output = supervised_objective(model, batch)
    torch.testing.assert_close(output.loss_sum, plain, rtol=1e-5, atol=1e-4)
    assert output.metrics == {}


def test_a_step_changes_every_adapter_weight_and_no_base_weight(tiny_model_dir: Path) -> None:
    model, tokenizer, config = tiny_model(tiny_model_dir)
    parts = build_parts(config, model, CPU, torch.float32, total_steps=10)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    batch = tiny_batch(tokenizer)
    tokens = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    # Two steps: LoRA's B starts at zero, so A gets no gradient until B has moved once.
    for _ in range(2):
        loss: Any = supervised_objective(parts.forward_model, batch).loss_sum / tokens
        loss.backward()
        parts.optimizer.step()
        parts.scheduler.step()
        parts.optimizer.zero_grad(set_to_none=True)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    for name, param in model.named_parameters():
        changed = not torch.equal(param.detach(), before[name])
        assert changed == (name in trainable), name


# -- the lr schedule -----------------------------------------------------------------------
def schedule(tiny_model_dir: Path, **train: Any) -> list[float]:
    factor = lr_lambda(tiny_config(tiny_model_dir, **train), 10)
    return [round(factor(step), 6) for step in range(11)]


def test_lr_schedule_warms_up_then_decays_to_zero(tiny_model_dir: Path) -> None:
    cosine = schedule(tiny_model_dir, warmup=0.2, scheduler="cosine")
    assert cosine[:3] == [0.5, 1.0, 1.0]
    assert cosine[6] == 0.5 and cosine[10] == 0.0
    assert cosine[2:] == sorted(cosine[2:], reverse=True)
    expected = [round(0.5 * (1 + math.cos(math.pi * (s - 2) / 8)), 6) for s in range(2, 11)]
    assert cosine[2:] == expected
    linear = schedule(tiny_model_dir, warmup=2, scheduler="linear")
    assert linear == [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0]
    assert schedule(tiny_model_dir, warmup=0, scheduler="constant") == [1.0] * 11
    assert schedule(tiny_model_dir, warmup=3, scheduler="constant")[:4] == [
        0.333333,
        0.666667,
        1,
        1,
    ]


def test_a_run_logs_the_lr_the_schedule_gives(
    workspace: Any, train_repository: DatasetRepository, tiny_model_dir: Path
) -> None:
    config = tiny_config(tiny_model_dir, warmup=2, scheduler="linear", eval_every=1000)
    paths = prepare_run(workspace, train_repository, config).paths
    start_trainer(paths)
    assert wait_final(paths) == "succeeded", _log(paths)
    logged = {r["step"]: r["lr"] for r in iter_records(paths.events) if r["type"] == "train"}
    factor = lr_lambda(config, 6)
    # The lr a step used is the one before the scheduler stepped past it.
    assert logged == {step: pytest.approx(1e-3 * factor(step - 1)) for step in range(1, 7)}


# -- checkpoints: no pickle ------------------------------------------------------------------
class _TouchOnLoad:
    """Unpickling this creates `marker`: the shape of any code a crafted checkpoint runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (pathlib.Path.touch, (self.marker,))


def test_resume_refuses_a_checkpoint_that_needs_pickle(
    workspace: Any, train_repository: DatasetRepository, tiny_model_dir: Path, tmp_path: Path
) -> None:
    prepared = prepare_run(workspace, train_repository, tiny_config(tiny_model_dir))
    paths = prepared.paths
    assert cancel_run(paths).state == "cancelled"
    marker = tmp_path / "pwned"
    crafted = paths.checkpoint(3) / "trainer_state.pt"
    crafted.parent.mkdir(parents=True)
    torch.save({"step": 3, "adapter": _TouchOnLoad(marker)}, crafted)
    # The payload is live: loading it the trusting way runs it.
    live_copy = tmp_path / "copy.pt"
    shutil.copy(crafted, live_copy)
    torch.load(live_copy, weights_only=False)
    assert marker.exists()
    marker.unlink()

    root = str(workspace.root)
    resumed = CliRunner().invoke(main, ["--workspace", root, "runs", "resume", paths.run_id])
    # `runs resume` follows the trainer, which refuses: exit 1 with the reason on screen.
    assert resumed.exit_code == 1, resumed.output
    assert "only pickle can load" in resumed.output
    assert wait_final(paths) == "failed", _log(paths)
    assert not marker.exists(), "the crafted checkpoint ran code"
    status = read_status(paths)
    assert status is not None and status.reason == "error"
    message = status.message or ""
    assert "only pickle can load" in message and str(paths.checkpoint(3)) in message
    assert "Delete" in message
    kinds = [r["type"] for r in iter_records(paths.events)]
    assert "start" not in kinds and "train" not in kinds, "the run did not start"
    assert kinds[-1] == "end"


def test_resume_from_a_real_checkpoint_matches_the_uninterrupted_run(
    workspace: Any, train_repository: DatasetRepository, tiny_model_dir: Path
) -> None:
    config = tiny_config(tiny_model_dir, max_steps=6, save_every=3, eval_every=3)
    reference = prepare_run(workspace, train_repository, config).paths
    start_trainer(reference)
    assert wait_final(reference) == "succeeded", _log(reference)
    expected = train_steps(reference)
    saved = torch.load(reference.checkpoint(3) / "trainer_state.pt", weights_only=True)
    python_rng = saved["rng"]["python"]["state"]
    assert isinstance(python_rng, list) and all(type(v) is int for v in python_rng)

    # A second run of the same config, given the reference's step-3 checkpoint: as if it
    # had been stopped right after writing it.
    resumed = prepare_run(workspace, train_repository, config).paths
    shutil.copytree(reference.checkpoint(3), resumed.checkpoint(3))
    start_trainer(resumed)
    assert wait_final(resumed) == "succeeded", _log(resumed)
    steps = train_steps(resumed)
    assert sorted(steps) == [4, 5, 6]
    assert steps == {step: expected[step] for step in (4, 5, 6)}, "bit-identical losses"
    (start,) = [r for r in iter_records(resumed.events) if r["type"] == "start"]
    assert start["resumed_from"] == 3


# -- a full disk -------------------------------------------------------------------------------
NO_SPACE_HOOK = """
import errno, os
import torch

_save = torch.save


def save_on_a_full_disk(obj, f, *args, **kwargs):
    if str(f).endswith("trainer_state.pt"):
        with open(f, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
    return _save(obj, f, *args, **kwargs)


torch.save = save_on_a_full_disk
"""


def assert_failed_for_a_full_disk(paths: RunPaths) -> None:
    status = read_status(paths)
    assert status is not None and status.state == "failed", _log(paths)
    assert status.reason == "error"
    message = status.message or ""
    assert message.startswith(f"the disk is full: free space under {paths.root} and resume")
    end = list(iter_records(paths.events))[-1]
    assert end["type"] == "end" and end["state"] == "failed" and end["message"] == message
    leftovers = [p.name for p in paths.root.rglob(".*")]
    assert leftovers == [], "temp files and the disk reserve removed"


def test_a_checkpoint_that_hits_a_full_disk_fails_the_run_saying_so(
    workspace: Any,
    train_repository: DatasetRepository,
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(NO_SPACE_HOOK)
    config = tiny_config(tiny_model_dir, max_steps=6, save_every=3, eval_every=1000)
    paths = prepare_run(workspace, train_repository, config).paths
    with monkeypatch.context() as patched:
        patched.setenv(
            "PYTHONPATH", os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")])
        )
        start_trainer(paths)
        assert wait_final(paths) == "failed", _log(paths)
    assert_failed_for_a_full_disk(paths)
    assert sorted(train_steps(paths)) == [1, 2, 3], "the steps before the checkpoint"
    assert not paths.checkpoints.exists() or list(paths.checkpoints.iterdir()) == []

    # Space freed (the hook gone): resume finishes the run.
    resume_run(paths)
    assert wait_final(paths) == "succeeded", _log(paths)
    assert (paths.adapter / "adapter_model.safetensors").is_file()


def _can_mount_tmpfs(tmp_path: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)])
    if mounted.returncode != 0:
        return False
    subprocess.run(["umount", str(probe)], check=True)
    return True


def test_a_real_full_disk_mid_run_fails_it_as_disk_full(
    workspace: Any, train_repository: DatasetRepository, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The run directory on a 16 MiB tmpfs, filled while the trainer logs steps."""
    if not _can_mount_tmpfs(tmp_path):
        pytest.skip("needs root and tmpfs mounts to make a small filesystem")
    runs_dir = workspace.runs_dir
    runs_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(runs_dir)], check=True)
    try:
        config = tiny_config(tiny_model_dir, max_steps=5000, save_every=1000, eval_every=1000)
        paths = prepare_run(workspace, train_repository, config).paths
        start_trainer(paths)
        wait_until(lambda: len(train_steps(paths)) >= 3, what="three logged steps")
        with (runs_dir / "ballast").open("wb") as ballast, contextlib.suppress(OSError):
            while True:
                ballast.write(b"\0" * 65536)
                ballast.flush()
        assert wait_final(paths) == "failed", _log(paths)
        status = read_status(paths)
        assert status is not None and status.pid is not None
        wait_until(lambda: not Path(f"/proc/{status.pid}").exists(), timeout=30, what="exit")
        assert_failed_for_a_full_disk(paths)
        assert len(train_steps(paths)) < 5000
    finally:
        subprocess.run(["umount", "-l", str(runs_dir)])


def test_disk_full_is_recognised_in_each_writers_clothes(tmp_path: Path) -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(RuntimeError("I/O error: No space left on device (os error 28)"))
    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as quota:
            raise RuntimeError("unexpected pos 576 vs 534") from quota
    except RuntimeError as wrapped:
        assert is_disk_full(wrapped), "found through the cause"
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(RuntimeError("size mismatch for lora_A"))
    with pytest.raises(DiskFull):
        require_free(tmp_path, shutil.disk_usage(tmp_path).free + 2**40)
    reserve = DiskReserve(tmp_path / ".disk-reserve")
    reserve.claim()
    assert reserve.path.stat().st_size == RESERVE_BYTES
    reserve.release()
    reserve.release()
    assert not reserve.path.exists()


def _train_in_process(paths: RunPaths, objective: Objective) -> int:
    # The trainer installs its own signal handlers; this process's go back afterwards.
    handlers = {
        sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    }
    try:
        return Trainer(paths, objective=objective).run_to_end()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def test_an_objective_plugs_in_with_its_loss_and_its_own_metric(
    workspace: Any, train_repository: DatasetRepository, tiny_model_dir: Path
) -> None:
    def halved_with_a_count(model: Any, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        trained = (batch["labels"][:, 1:] != IGNORE_INDEX).sum().float()
        return ObjectiveOutput(supervised_objective(model, batch).loss_sum * 0.5, {"seen": trained})

    config = tiny_config(tiny_model_dir, max_steps=2, eval_every=1000, save_every=1000)
    plain = prepare_run(workspace, train_repository, config).paths
    custom = prepare_run(workspace, train_repository, config).paths
    assert _train_in_process(plain, supervised_objective) == 0, _log(plain)
    assert _train_in_process(custom, halved_with_a_count) == 0, _log(custom)
    plain_steps = [r for r in iter_records(plain.events) if r["type"] == "train"]
    custom_steps = [r for r in iter_records(custom.events) if r["type"] == "train"]
    assert custom_steps[0]["loss"] == plain_steps[0]["loss"] * 0.5, "the objective's loss is logged"
    assert [r["seen"] for r in custom_steps] == [1.0, 1.0], "metrics are averaged per loss token"
    assert "seen" not in plain_steps[0]
