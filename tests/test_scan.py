"""The full check of a file: cross-row checks, leakage, lengths, summaries, bad input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.scan import CheckOptions, CheckReport, check_file
from store.errors import InputError
from tests.conftest import SYSTEM, chat, clean_rows


def by_check(report: CheckReport, check: str) -> list[tuple[int, ...]]:
    return [f.lines for f in report.findings if f.check == check]


def test_clean_rows_have_no_findings(jsonl_file: Callable[..., Path]) -> None:
    report = check_file(jsonl_file(clean_rows()))
    assert report.findings == []
    assert report.rows == report.valid_rows == 10


def test_exact_duplicates_after_whitespace_normalisation(jsonl_file: Callable[..., Path]) -> None:
    rows: list[Any] = clean_rows()
    copy = chat(
        "Where is my parcel?   Tracking says it left the depot on Monday. ",
        "It is with the local courier now and should be delivered by  Thursday evening.",
        label="shipping",
    )
    rows.append(copy)
    report = check_file(jsonl_file(rows))
    assert by_check(report, "exact_duplicate") == [(1, 11)]
    assert by_check(report, "near_duplicate") == []


def test_near_duplicates_are_grouped(jsonl_file: Callable[..., Path]) -> None:
    rows: list[Any] = clean_rows()
    rows.append(
        chat(
            "Where is my parcel? Tracking says it left the depot on monday!",
            "It is with the local courier now and should be delivered by Thursday evening. Thanks!",
        )
    )
    report = check_file(jsonl_file(rows))
    assert by_check(report, "near_duplicate") == [(1, 11)]
    assert by_check(report, "exact_duplicate") == []


def test_shared_system_prompt_does_not_make_rows_alike(jsonl_file: Callable[..., Path]) -> None:
    long_system = {"role": "system", "content": "You are Acme's support agent. " * 40}
    rows = []
    for row in clean_rows():
        row["messages"][0] = long_system
        rows.append(row)
    report = check_file(jsonl_file(rows), CheckOptions(max_seq_len=100_000))
    assert report.findings == []


def test_contradiction_same_question_different_answer(jsonl_file: Callable[..., Path]) -> None:
    rows: list[Any] = clean_rows()
    rows.append(
        chat(
            "What is your return window for shoes that do not fit?",
            "Shoes cannot be returned once they have been delivered.",
            label="refund",
        )
    )
    rows.append(
        chat(
            "what is your return window for shoes that don't fit",
            "We do not accept any returns on footwear, sorry.",
            label="refund",
        )
    )
    report = check_file(jsonl_file(rows))
    assert by_check(report, "contradiction") == [(9, 11, 12)]
    assert all(f.severity == "error" for f in report.findings if f.check == "contradiction")


def test_same_question_with_different_label_is_a_contradiction(
    jsonl_file: Callable[..., Path],
) -> None:
    rows: list[Any] = clean_rows()
    user, assistant = (
        "Does the X200 vacuum work on thick carpets?",
        "It does: switch it to turbo mode, which raises suction for deep pile carpets.",
    )
    rows.append(chat(user, assistant + " ", label="tech"))
    report = check_file(jsonl_file(rows))
    assert by_check(report, "contradiction") == [(6, 11)]


def test_pii_finding_has_spans(jsonl_file: Callable[..., Path]) -> None:
    rows: list[Any] = clean_rows()
    rows.append(
        chat(
            "Reach me at jane.doe@example.org or +44 20 7946 0958, card 4111 1111 1111 1111",
            "Thanks, I will call you back today.",
        )
    )
    rows.append(
        chat(
            "Order ORD-2024-558812 cost $1,299.99 on 2024-03-15, app v2.14.1, ticket INC0012345",
            "Thanks, tracking 1Z999AA10123456784 shows it in transit.",
        )
    )
    report = check_file(jsonl_file(rows))
    pii = [f for f in report.findings if f.check == "pii"]
    assert [f.lines for f in pii] == [(11,)]
    assert pii[0].severity == "error"  # a card number is an error, not a warning
    kinds = {span.kind for span in pii[0].spans}
    assert kinds == {"email", "phone", "payment_card"}
    text = rows[10]["messages"][1]["content"]
    email = next(s for s in pii[0].spans if s.kind == "email")
    assert email.message_index == 1 and text[email.start : email.end] == "jane.doe@example.org"


def test_too_long_estimated_and_labelled(jsonl_file: Callable[..., Path]) -> None:
    rows: list[Any] = clean_rows()
    rows.append(chat("Please summarise this log.", "word " * 3000))
    report = check_file(jsonl_file(rows), CheckOptions(max_seq_len=2048))
    too_long = [f for f in report.findings if f.check == "too_long"]
    assert [f.lines for f in too_long] == [(11,)]
    assert "(estimated)" in too_long[0].message
    assert report.summary["tokens"]["total"]["max"] > 2048


def test_too_long_with_a_real_tokenizer(
    jsonl_file: Callable[..., Path], tiny_tokenizer_dir: Path
) -> None:
    rows: list[Any] = clean_rows()
    report = check_file(
        jsonl_file(rows), CheckOptions(max_seq_len=30, tokenizer_dir=tiny_tokenizer_dir)
    )
    assert report.token_counting.startswith("tokenizer")
    too_long = [f for f in report.findings if f.check == "too_long"]
    assert too_long and all("(estimated)" not in f.message for f in too_long)
    from transformers import AutoTokenizer

    tokenizer: Any = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    encoded: Any = tokenizer.apply_chat_template(rows[0]["messages"], tokenize=True)
    expected = len(encoded["input_ids"])
    first = next(f for f in too_long if f.lines == (1,))
    assert first.message.startswith(f"{expected} tokens")


def test_bad_tokenizer_folder_is_input_error(
    jsonl_file: Callable[..., Path], tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="tokenizer"):
        check_file(jsonl_file(clean_rows()), CheckOptions(tokenizer_dir=tmp_path))


def test_leakage_against_other_file(jsonl_file: Callable[..., Path]) -> None:
    train = clean_rows()
    held_out: list[Any] = [
        chat(
            "How do I turn on two-factor authentication for my account?",
            "Go to Settings, then Security, and choose 'Enable 2FA'. Scan the QR code with your app.",
        ),
        chat(
            "Is the X300 dishwasher quiet enough for an open-plan flat?",
            "Yes: it runs at 39 dB in eco mode.",
        ),
        chat(
            "why was I charged twice for the same subscription this month",
            "A duplicate charge is usually a pending authorisation that drops off in a few days.",
        ),
    ]
    other = jsonl_file(train, name="train.jsonl")
    report = check_file(jsonl_file(held_out, name="eval.jsonl"), CheckOptions(against=(other,)))
    leaks = [f for f in report.findings if f.check == "leakage"]
    assert [(f.lines, f.other.lines if f.other else None) for f in leaks] == [
        ((1,), (4,)),
        ((3,), (5,)),
    ]
    assert leaks[0].other is not None and leaks[0].other.path == str(other)
    assert report.as_json()["findings"][0]["other"] == {"path": str(other), "lines": [4]}


def test_summary(jsonl_file: Callable[..., Path]) -> None:
    rows: list[Any] = clean_rows()
    rows.append(chat("Hello?", "Hi! How can I help?", system=False))
    report = check_file(jsonl_file(rows))
    summary = report.summary
    assert summary["labels"]["shipping"] == 2 and summary["slices"] == {"task": 10}
    assert summary["roles"] == {"system": 10, "user": 11, "assistant": 11}
    assert summary["missing_system_share"] == pytest.approx(1 / 11, abs=1e-3)
    assert sum(bucket["count"] for bucket in summary["tokens"]["histogram"]) == 11
    assert summary["turns"]["max"] == 3


# -- bad input: never a traceback; unusable files raise InputError (exit 2) --------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        check_file(tmp_path / "absent.jsonl")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="folder"):
        check_file(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.jsonl").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        check_file(tmp_path / "e.jsonl")


def test_blank_lines_only(tmp_path: Path) -> None:
    (tmp_path / "b.jsonl").write_bytes(b"\n  \n\r\n")
    with pytest.raises(InputError, match="blank"):
        check_file(tmp_path / "b.jsonl")


def test_binary_file(tmp_path: Path) -> None:
    (tmp_path / "b.jsonl").write_bytes(bytes(range(256)) * 10)
    with pytest.raises(InputError, match="binary"):
        check_file(tmp_path / "b.jsonl")


def test_gzip_file(tmp_path: Path) -> None:
    import gzip

    (tmp_path / "d.jsonl.gz").write_bytes(gzip.compress(b'{"messages": []}\n'))
    with pytest.raises(InputError, match="compressed"):
        check_file(tmp_path / "d.jsonl.gz")


def test_no_usable_rows(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="line 1"):
        check_file(tmp_path / "d.csv")


def test_bom_crlf_and_truncated_last_line(tmp_path: Path) -> None:
    import json

    lines = [json.dumps(row) for row in clean_rows()[:3]]
    data = (
        b"\xef\xbb\xbf"
        + "\r\n".join(lines).encode()
        + b"\r\n"
        + b'{"messages": [{"role": "user", "con'
    )
    (tmp_path / "d.jsonl").write_bytes(data)
    report = check_file(tmp_path / "d.jsonl")
    assert report.rows == 4 and report.valid_rows == 3
    assert [(f.check, f.lines) for f in report.findings] == [("invalid_json", (4,))]
    assert "truncated" in report.findings[0].message


def test_invalid_utf8_line_is_reported_with_its_line(tmp_path: Path) -> None:
    import json

    good = json.dumps(clean_rows()[0]).encode()
    (tmp_path / "d.jsonl").write_bytes(
        good
        + b"\n"
        + b'{"messages": "\xff\xfe"}'
        + b"\n"
        + good.replace(b"parcel", b"packet")
        + b"\n"
    )
    report = check_file(tmp_path / "d.jsonl")
    invalid = [f for f in report.findings if f.check == "invalid_json"]
    assert [f.lines for f in invalid] == [(2,)]
    assert "UTF-8" in invalid[0].message


def test_a_50mb_single_line(tmp_path: Path) -> None:
    import json

    row = chat("Summarise:", "x" * (50 * 1024 * 1024))
    (tmp_path / "big.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(clean_rows()[0]) + "\n")
    report = check_file(tmp_path / "big.jsonl")
    assert [(f.check, f.lines) for f in report.findings] == [("too_long", (1,))]


def test_wrong_types_at_every_level(jsonl_file: Callable[..., Path]) -> None:
    rows: list[Any] = [
        "[]",
        "null",
        "42",
        '"text"',
        '{"messages": null}',
        '{"messages": {"role": "user"}}',
        '{"messages": [null]}',
        '{"messages": [{"role": "user", "content": [1, 2]}]}',
        '{"messages": [{"role": ["user"], "content": "x"}]}',
        '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "tool_calls": [1]}]}',
        '{"messages": [{"role": "user", "content": "x", "name": 5}, {"role": "assistant", "content": "y"}]}',
        *clean_rows()[:2],
    ]
    report = check_file(jsonl_file(rows))
    assert {f.lines[0] for f in report.findings if f.check == "invalid_schema"} == set(range(1, 12))
    assert report.valid_rows == 2


def test_prompt_completion_and_parquet(tmp_path: Path) -> None:
    import polars as pl

    rows = [
        {"prompt": user, "completion": assistant}
        for user, assistant in [
            ("Translate 'cat' into French.", "chat"),
            ("Translate 'dog' into French.", "chien"),
            ("Translate 'house' into German.", "Haus"),
        ]
    ]
    from tests.conftest import write_jsonl

    jsonl = check_file(write_jsonl(tmp_path / "pc.jsonl", rows))
    assert jsonl.valid_rows == 3 and jsonl.findings == []
    pl.DataFrame(rows).write_parquet(tmp_path / "pc.parquet")
    parquet = check_file(tmp_path / "pc.parquet")
    assert parquet.source_format == "parquet" and parquet.valid_rows == 3
    chats = [
        chat(u, a)
        for u, a in [
            ("Hi, is the shop open on Sunday?", "Yes, from 10 to 4."),
            ("Do you ship to Norway?", "We do, in 3-5 days."),
        ]
    ]
    chats[1]["messages"].append({"role": "user", "content": "thanks"})
    pl.DataFrame(chats).write_parquet(tmp_path / "chat.parquet")
    report = check_file(tmp_path / "chat.parquet")
    assert [(f.check, f.lines) for f in report.findings] == [("role_order", (2,))]


def test_parquet_without_usable_columns(tmp_path: Path) -> None:
    import polars as pl

    pl.DataFrame({"text": ["a"]}).write_parquet(tmp_path / "t.parquet")
    with pytest.raises(InputError, match="messages"):
        check_file(tmp_path / "t.parquet")


def test_system_constant_is_exported() -> None:
    assert SYSTEM["role"] == "system"


def test_parallel_scan_matches_serial_scan(tmp_path: Path) -> None:
    """Worker processes over byte ranges give the same report as one process."""
    import json

    rows: list[Any] = []
    for copy in range(6):
        for index, row in enumerate(clean_rows()):
            row["messages"][1]["content"] += f" (batch {copy}, item {index * 7 + copy})"
            rows.append(row)
    rows[5] = "{broken"
    rows.insert(20, rows[3])
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    data = ("\ufeff" + "\r\n".join(lines) + "\r\n\n").encode() + b'{"messages": [{"ro'
    (tmp_path / "d.jsonl").write_bytes(data)
    serial = check_file(tmp_path / "d.jsonl", CheckOptions(workers=1))
    parallel = check_file(tmp_path / "d.jsonl", CheckOptions(workers=3))
    assert parallel.as_json() == serial.as_json()
    assert {f.check for f in serial.findings} >= {"invalid_json", "exact_duplicate"}
    assert serial.rows == len(rows) + 1


def test_parallel_add_stores_every_part(tmp_path: Path, workspace: Any, repository: Any) -> None:
    import json

    from core.datasets import add_dataset

    rows = [json.dumps(r) for r in clean_rows()] * 3
    (tmp_path / "d.jsonl").write_text("\n".join(rows) + "\n")
    outcome = add_dataset(workspace, repository, tmp_path / "d.jsonl", "d", CheckOptions(workers=2))
    stored = repository.examples_page(outcome.version.version_id, limit=100)
    assert [row.line for row in stored] == list(range(1, 31))
    assert list((workspace.root / "tmp").iterdir()) == []


def test_parallel_scan_falls_back_when_workers_cannot_start(tmp_path: Path) -> None:
    """A host program read from stdin cannot be re-imported by spawned workers: the scan
    must fall back to one process, not hang or fail."""
    import json
    import subprocess
    import sys

    rows = [json.dumps(r) for r in clean_rows()]
    (tmp_path / "d.jsonl").write_text("\n".join(rows) + "\n")
    program = (
        "from pathlib import Path\n"
        "from core.scan import CheckOptions, check_file\n"
        f"report = check_file(Path({str(tmp_path / 'd.jsonl')!r}), CheckOptions(workers=2))\n"
        "print(report.rows, report.valid_rows)\n"
    )
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-"],
        input=program,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["10", "10"]


def test_a_shared_instruction_template_does_not_make_rows_alike(tmp_path: Path) -> None:
    """Classification-style rows repeat a long instruction in the user turn; like a shared
    system prompt, it must not make distinct examples near-duplicates or contradictions."""
    from tests.conftest import write_jsonl

    instruction = (
        "Classify the customer message below into exactly one of: shipping, refund, billing, "
        "account, product, tech. Answer with the label only.\n\nMessage: "
    )
    messages = [
        ("Where is my parcel?", "shipping"),
        ("I want my money back for the kettle.", "refund"),
        ("Why did you charge me twice?", "billing"),
        ("I cannot log in anymore.", "account"),
        ("Is the X200 waterproof?", "product"),
        ("The app crashes on start.", "tech"),
        ("My order has not arrived yet.", "shipping"),
        ("Please refund the broken lamp.", "refund"),
        ("Can I get an invoice copy?", "billing"),
        ("How do I reset my password?", "account"),
    ]
    rows: list[Any] = [
        chat(instruction + text, label, label=label, system=False) for text, label in messages
    ]
    # One true near-duplicate and one true contradiction among them.
    rows.append(
        chat(instruction + "Where is my parcel??", "shipping", label="shipping", system=False)
    )
    rows.append(
        chat(instruction + "The app crashes on start.", "product", label="product", system=False)
    )
    report = check_file(write_jsonl(tmp_path / "cls.jsonl", rows))
    found = {(f.check, f.lines) for f in report.findings}
    # The contradiction's dialogs differ only in the one-word answer: near-identical too.
    assert found == {
        ("near_duplicate", (1, 11)),
        ("contradiction", (6, 12)),
        ("near_duplicate", (6, 12)),
    }


def test_sharegpt_parquet(tmp_path: Path) -> None:
    import polars as pl

    rows = [
        {
            "conversations": [
                {"from": "human", "value": f"Question {i} about lamps?"},
                {"from": "gpt", "value": f"Answer {i}."},
            ]
        }
        for i in range(3)
    ]
    pl.DataFrame(rows).write_parquet(tmp_path / "sharegpt.parquet")
    report = check_file(tmp_path / "sharegpt.parquet")
    assert report.valid_rows == 3 and report.findings == []


# -- plain bad input through the real CLI: a finding or exit 2, never an internal error ---


def run_ftod(*args: str, workspace: Path | None = None) -> Any:
    import os
    import subprocess
    import sys

    prefix = ["--workspace", str(workspace)] if workspace is not None else []
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *prefix, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )


def nested_metadata(levels: int) -> str:
    """A chat row whose metadata is `levels` deep (the object itself is one level)."""
    inner = "[" * (levels - 1) + "]" * (levels - 1)
    return json_row(chat("How deep does this go?", "Deep enough."), metadata=f'{{"x": {inner}}}')


def json_row(row: dict[str, Any], **raw_fields: str) -> str:
    """`row` as a JSON line with fields spliced in as raw JSON text (too deep to dump)."""
    import json

    body = json.dumps(row)[:-1]
    return body + "".join(f', "{key}": {value}' for key, value in raw_fields.items()) + "}"


def deep_rows() -> list[Any]:
    deep = "[" * 300 + "]" * 300
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "ARGS"}}
        ],
    }
    import json

    tool_call_row = json.dumps(
        {"messages": [SYSTEM, {"role": "user", "content": "Look it up"}, call]}
    ).replace('"ARGS"', f'{{"a": {deep}}}')
    return [
        *clean_rows(),
        nested_metadata(255),  # 11: one level more than orjson writes
        json_row(chat("Which tools?", "These."), tools=f"[{deep}]"),  # 12
        tool_call_row,  # 13: tool-call arguments
        nested_metadata(1100),  # 14: deeper than orjson reads
        nested_metadata(254),  # 15: the deepest orjson writes: a valid row
    ]


def test_rows_nested_too_deeply_are_findings_and_the_rest_is_checked(
    jsonl_file: Callable[..., Path],
) -> None:
    import json

    result = run_ftod("data", "check", str(jsonl_file(deep_rows())), "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["rows"] == 15 and report["valid_rows"] == 11
    found = {f["lines"][0]: (f["check"], f["message"]) for f in report["findings"]}
    assert sorted(found) == [11, 12, 13, 14]
    assert all(check == "invalid_schema" for check, _ in found.values())
    assert all(message.startswith("nested too deeply") for _, message in found.values())
    assert "'metadata' has more than 254 levels" in found[11][1]
    assert "tools item 1 has more than 254 levels" in found[12][1]
    assert "message 3 has more than 254 levels" in found[13][1]
    assert "more than 1024 levels" in found[14][1]


def test_data_add_stores_a_file_with_too_deep_rows(
    tmp_path: Path, jsonl_file: Callable[..., Path]
) -> None:
    import json

    assert run_ftod("init", str(tmp_path / "proj")).returncode == 0
    workspace = tmp_path / "proj"
    path = jsonl_file(deep_rows())
    added = run_ftod("data", "add", str(path), "--name", "deep", workspace=workspace)
    assert added.returncode == 0, added.stderr
    shown = json.loads(run_ftod("data", "show", "deep", "--json", workspace=workspace).stdout)
    schema_lines = sorted(
        line for f in shown["findings"] if f["check"] == "invalid_schema" for line in f["lines"]
    )
    assert schema_lines == [11, 12, 13, 14]


def test_integer_wider_than_64_bits_is_a_schema_finding(jsonl_file: Callable[..., Path]) -> None:
    import json

    rows: list[Any] = [
        *clean_rows(),
        chat("Order status?", "Shipped.", order_id=123456789012345678901234567890),  # 11
        {**chat("Which tool?", "This one."), "tools": [{"type": "function", "n": -(2**63) - 1}]},
        # Look-alikes that are fine: the widest 64-bit integer, a large float, digits in text.
        chat("Biggest id?", "That one.", id=2**64 - 1),
        chat("A large ratio?", "Very.", ratio=1e30),
        chat("A long code?", "Noted.", code="e5 123456789012345678901234567890"),
    ]
    result = run_ftod("data", "check", str(jsonl_file(rows)), "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert [(f["check"], f["lines"], f["message"]) for f in report["findings"]] == [
        ("invalid_schema", [11], "integer too large (> 64 bits) in metadata.order_id"),
        ("invalid_schema", [12], "integer too large (> 64 bits) in tools[0].n"),
    ]
    assert report["rows"] == 15 and report["valid_rows"] == 13


def test_split_field_names_that_cannot_be_a_path_exit_2(
    tmp_path: Path, jsonl_file: Callable[..., Path]
) -> None:
    workspace = tmp_path / "proj"
    run_ftod("init", str(workspace))
    path = jsonl_file(clean_rows())
    assert run_ftod("data", "add", str(path), "--name", "d", workspace=workspace).returncode == 0
    for option, name, message in [
        ("--group-by", 'a"b', "cannot contain"),
        ("--group-by", "", "needs a metadata field name"),
        ("--group-by", "a..b", "empty field name around a dot"),
        ("--group-by", "a.", "empty field name around a dot"),
        ("--stratify", ".label", "empty field name around a dot"),
    ]:
        result = run_ftod("data", "split", "d", option, name, workspace=workspace)
        assert result.returncode == 2, (name, result.stderr)
        assert message in result.stderr and "Internal error" not in result.stderr, name
    # The same dataset splits with field names that are paths.
    split = run_ftod(
        "data", "split", "d", "--group-by", "label", "--stratify", "label", workspace=workspace
    )
    assert split.returncode == 0, split.stderr
