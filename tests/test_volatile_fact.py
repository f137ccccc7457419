"""The knowledge audit: the volatile_fact check, its audit object, drift, CLI and screen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.checks.volatile_fact import (
    KINDS,
    AuditBuilder,
    KnowledgeAudit,
    compile_terms,
    find_volatile_facts,
    row_date,
    topic_of,
)
from core.datasets import add_dataset, split_dataset
from core.findings import Finding
from core.knowledge_audit import audit_version
from core.scan import CheckOptions, check_file
from store.errors import InputError
from tests.conftest import chat

ROOT = Path(__file__).resolve().parent.parent


def kinds_in(text: str, terms: tuple[str, ...] = ()) -> set[str]:
    return {match.kind for match in find_volatile_facts(text, compile_terms(terms))}


POSITIVES: dict[str, list[str]] = {
    "price": [
        "The Pro plan is $49 per month.",
        "Shipping costs €12.50 to Germany.",
        "It is billed at 49 USD per user.",
        "A replacement cable is £9.99.",
        "Enterprise starts at $1,200 a year.",
        "The fee is EUR 15 per transfer.",
    ],
    "date": [
        "The promotion ends March 3, 2025.",
        "Your plan renews on 2025-03-03.",
        "The feature ships in Q3 2026.",
        "Please migrate by April 2026.",
        "The old API is retired on 1 July 2025.",
        "Prices change from 01/09/2025 onwards.",
    ],
    "policy_duration": [
        "You can return it within 30 days.",
        "Every account starts with a 14-day trial.",
        "Invoices are kept for 90 days.",
        "Disputes must be raised no later than 45 days after the charge.",
        "We answer every ticket within 24 hours.",
        "All devices carry a 2-year limited warranty.",
        "The refund window is 14 days.",
    ],
    "version": [
        "Please update to version 4.1.",
        "The fix is in v2.3.1.",
        "Use API v3 for new integrations.",
        "It was added in release 2025.4.",
        "The app needs iOS 17.2 or later.",
        "Install firmware 1.0.8 from the settings page.",
    ],
    "url": [
        "See https://example.com/pricing for details.",
        "Read the guide at http://help.example.org/setup.",
        "Visit www.example.com/returns to start.",
    ],
    "plan_name": [
        "That is included in the Growth plan.",
        "SSO needs the Business tier.",
        "Offline mode is part of the Pro Plus edition.",
        "Switch to the premium plan for priority support.",
    ],
}

LOOK_ALIKES: dict[str, list[str]] = {
    "order, ticket, invoice and row numbers": [
        "Your order #48213 has shipped.",
        "I have updated ticket 4521 for you.",
        "Invoice INV-88123 is attached to this email.",
        "Row 17 of the import has an empty name.",
    ],
    "HTTP and error codes": [
        "The page returns HTTP 404 because the link moved.",
        "Error code 500 means our server hiccupped; please retry.",
        "An E1021 error means the filter needs cleaning.",
    ],
    "steps and list numbering": [
        "Step 3: open Settings and choose Security.",
        "1. Unplug the router. 2. Wait. 3. Plug it back in.",
    ],
    "how long an operation takes": [
        "It takes about 3 minutes to sync.",
        "Wait 30 seconds, then press the button again.",
        "Hold the reset button for 10 seconds.",
        "The first backup can take 2 hours on a slow connection.",
    ],
    "file sizes": [
        "The update is a 2.5 GB download.",
        "Attachments up to 25 MB are accepted by the form.",
    ],
    "counts of the user's own things": [
        "You have 3 devices linked to your account.",
        "I can see 12 orders on your profile.",
    ],
    "keyboard shortcuts": [
        "Press Ctrl+S to save your draft.",
        "Cmd+Shift+4 takes a screenshot of part of the screen.",
    ],
    "plain words near the keywords": [
        "We plan to call you back this afternoon.",
        "The plan is simple: reset, then pair again.",
        "You can set up a payment plan with our billing team.",
    ],
}


@pytest.mark.parametrize(
    ("kind", "text"), [(kind, text) for kind, texts in POSITIVES.items() for text in texts]
)
def test_each_kind_is_found(kind: str, text: str) -> None:
    assert kind in kinds_in(text)


@pytest.mark.parametrize(
    ("group", "text"), [(group, text) for group, texts in LOOK_ALIKES.items() for text in texts]
)
def test_look_alikes_are_not_volatile_facts(group: str, text: str) -> None:
    assert kinds_in(text) == set(), group


def test_user_terms_are_plan_names_case_insensitively() -> None:
    text = "Covered by Acme Care for the first year."
    assert kinds_in(text) == set()
    assert kinds_in(text, ("acme care",)) == {"plan_name"}
    assert [m.value for m in find_volatile_facts(text, compile_terms(["acme care"]))] == [
        "Acme Care"
    ]


def test_a_url_swallows_the_date_and_version_inside_it() -> None:
    matches = find_volatile_facts("Download it from https://example.com/v2.3.1/2025-03-03/app.")
    assert [(m.kind, m.value) for m in matches] == [
        ("url", "https://example.com/v2.3.1/2025-03-03/app")
    ]


# A planted set written apart from the examples above: each sentence holds one fact of its
# kind, wrapped in support-answer prose; the look-alikes are the classes the issue lists.
PLANTED: dict[str, list[str]] = {
    "price": [
        "Good news: the annual plan works out to $99 a year.",
        "The extended warranty costs $29.99 per device.",
        "Express delivery is a flat £4.50.",
        "Our team seats are 12 EUR each per month.",
        "The adapter is on sale for ¥2,980 this week.",
        "A repair outside warranty is usually around $150.",
        "Storage add-ons start at 5 dollars a month.",
        "The upgrade fee is US$19 for existing customers.",
        "Premium support adds €8 per agent.",
        "That bundle is listed at 250 CAD.",
    ],
    "date": [
        "Support for the old app ends on June 30, 2025.",
        "Our new return policy took effect 2024-11-01.",
        "We expect the fix to land in Q1 2026.",
        "Orders placed before Jan 15, 2025 keep the old price.",
        "The offer is valid until December 2025.",
        "Data exports will be available from 3rd March 2025.",
        "Price changes were announced in February 2024.",
        "The beta closes in H2 2025.",
        "The warehouse relocates by the end of 2025.",
        "Your account was migrated on Sept 4, 2024.",
    ],
    "policy_duration": [
        "Refunds reach your card within 5-7 business days.",
        "You may cancel within 14 days of purchase.",
        "Chat transcripts are retained for 30 days.",
        "Unused credits expire after 12 months.",
        "Every plan includes a 30-day money-back guarantee.",
        "Exchanges are accepted up to 60 days after delivery.",
        "Backups are stored for 7 days on the free tier.",
        "We ship replacements within 48 hours.",
        "There is a 3-month grace period for late payments.",
        "You have 30 days to return an opened item.",
    ],
    "version": [
        "This was fixed in version 3.2.",
        "Please upgrade the hub to firmware 2.14.1.",
        "The SDK v5 changed the login call.",
        "Android 14 is supported from app version 7.1.",
        "The desktop client 4.0.2 adds dark mode.",
        "Use v1.9 of the plugin with older sites.",
        "Our API v2 is deprecated.",
        "The bug appears in release 2024.12.",
        "Make sure Python 3.11 is installed.",
        "It needs macOS 14 or newer.",
    ],
    "url": [
        "Our status page is at https://status.example.com.",
        "You can book a call at https://example.com/book?topic=billing.",
        "Download the manual from www.example.net/manuals.",
        "The form lives at http://forms.example.com/rma.",
        "Track it on https://track.example.com/parcel/ABC123.",
        "More at www.example.org.",
        "Our pricing page (https://example.com/pricing) lists every option.",
        "Log in at https://app.example.com/login and open Billing.",
        "See http://example.com/faq#returns for the details.",
        "The changelog is at https://docs.example.com/changelog/.",
    ],
    "plan_name": [
        "The Starter plan allows three users.",
        "Move to the Team tier to get shared inboxes.",
        "Audit logs are only in the Enterprise edition.",
        "The Family Plus package covers five devices.",
        "Priority routing is part of the Scale plan.",
        "The Basic plan has no phone support.",
        "You are on the Unlimited plan already.",
        "The Creator Pro tier adds 4K export.",
        "The Student edition is free with a school email.",
        "Our Gold membership includes free returns.",
    ],
}
PLANTED_LOOK_ALIKES: list[str] = [
    "Order 558812 left our warehouse this morning.",
    "I have reopened ticket #90311 for you.",
    "Invoice 2291 is the one with the duplicate charge.",
    "Line 42 of your CSV has an extra comma.",
    "A 403 error means the session expired; sign in again.",
    "Status code 502 is a temporary gateway problem.",
    "Error 0x80070005 means access was denied.",
    "Step 2 is to open the app and tap Devices.",
    "3. Tap Save to finish.",
    "First, 1) unplug it, 2) wait, 3) plug it in.",
    "Charging fully takes around 90 minutes.",
    "Please wait 10 seconds before turning it back on.",
    "The sync usually takes a few minutes, about 5 minutes at most.",
    "Restarting takes about 2 minutes.",
    "Leave it unplugged for 30 seconds.",
    "The firmware file is 48 MB.",
    "Your export is 1.2 GB, so it may take a while to download.",
    "Photos larger than 10 MB are resized.",
    "You have 4 active subscriptions.",
    "I can see 2 pending returns on your account.",
    "There are 7 items in your cart.",
    "Press Ctrl+Z to undo.",
    "Use Alt+Tab to switch windows.",
    "Press Cmd+K to open search.",
    "Press F5 to refresh the page.",
    "We plan to send the replacement today.",
    "The plan for today: reset the router, then test again.",
    "Any data plan works with the hotspot.",
    "Please plan for the technician to arrive between 9 and 12.",
    "It supports 2.4 GHz networks only.",
    "Set the thermostat to 21 degrees.",
    "The battery is rated at 5000 mAh.",
    "It has 3 speed settings.",
    "Your tracking number is 1Z999AA10123456784.",
    "Reply with option 2 to speak to an agent.",
    "It charges at 65 W over USB-C.",
    "Your last 4 digits are 4242.",
    "The X200 works on all floors.",
    "Room 12 is where the pickup desk is.",
    "Please allow a few days for the courier to collect it.",
]


def test_planted_set_recall_per_kind_and_look_alike_rate() -> None:
    for kind, texts in PLANTED.items():
        found = sum(1 for text in texts if kind in kinds_in(text))
        recall = found / len(texts)
        assert recall >= 0.9, (kind, recall, [t for t in texts if kind not in kinds_in(t)])
    flagged = [text for text in PLANTED_LOOK_ALIKES if kinds_in(text)]
    assert len(flagged) / len(PLANTED_LOOK_ALIKES) <= 0.03, flagged
    assert set(PLANTED) == set(KINDS)


def test_topic_is_the_content_words_before_the_fact() -> None:
    text = "Sorry about that. Refunds are accepted within 30 days of purchase."
    match = find_volatile_facts(text)[0]
    assert topic_of(text, match) == "refund accepted"
    trial = "Every new account gets a 14-day trial."
    assert topic_of(trial, find_volatile_facts(trial)[0]) == "trial"


def test_row_dates_come_from_metadata_created_at_or_timestamp() -> None:
    assert row_date({}, {"date": "2023-05-06"}) == "2023-05-06"
    assert row_date({"created_at": "2024-02-03T10:00:00Z"}, {}) == "2024-02-03"
    assert row_date({"timestamp": 1_700_000_000}, None) == "2023-11-14"
    assert row_date({"timestamp": "soon"}, {"date": True}) is None


def refund_rows() -> list[dict[str, Any]]:
    old = "Refunds are accepted within 30 days of purchase."
    new = "Refunds are accepted within 14 days of purchase."
    return [
        chat("Can I get my money back?", old, date="2022-03-01"),
        chat("What is the refund policy?", old, date="2022-11-20"),
        chat("How long do I have for a refund?", old, date="2023-06-15"),
        chat("Refund deadline?", new, date="2025-01-10"),
        chat("Can I still return this?", new, date="2025-04-02"),
        chat(
            "Where is my parcel?", "It is with the courier and arrives tomorrow.", date="2025-04-03"
        ),
    ]


def test_the_refund_window_drift_is_one_entry_with_two_values(
    jsonl_file: Callable[..., Path],
) -> None:
    report = check_file(jsonl_file(refund_rows()))
    audit = report.knowledge_audit
    assert audit is not None
    assert (audit.assistant_turns, audit.turns_with_volatile_facts) == (6, 5)
    assert audit.share == pytest.approx(5 / 6, abs=1e-4)
    assert audit.by_kind["policy_duration"] == 5
    assert audit.drift == [
        {
            "kind": "policy_duration",
            "topic": "refund accepted",
            "values": [
                {
                    "value": "30 days",
                    "count": 3,
                    "first_date": "2022-03-01",
                    "last_date": "2023-06-15",
                },
                {
                    "value": "14 days",
                    "count": 2,
                    "first_date": "2025-01-10",
                    "last_date": "2025-04-02",
                },
            ],
        }
    ]
    assert audit.top_facts[0] == ("policy_duration", "within 30 days", 3)


def test_undated_rows_or_values_seen_together_are_not_drift(
    jsonl_file: Callable[..., Path],
) -> None:
    undated = [
        chat("Refund?", "Refunds are accepted within 30 days."),
        chat("Refund now?", "Refunds are accepted within 14 days."),
    ]
    audit = check_file(jsonl_file(undated)).knowledge_audit
    assert audit is not None and audit.drift == []
    same_day = [
        chat("Cable?", "The cable costs $9.", date="2025-01-01"),
        chat("Charger?", "The cable costs $19.", date="2025-01-01"),
    ]
    audit = check_file(jsonl_file(same_day, name="same.jsonl")).knowledge_audit
    assert audit is not None and audit.drift == []


def test_findings_carry_kind_and_value_and_other_checks_do_not() -> None:
    builder = AuditBuilder.for_terms(())
    findings = builder.add_turns(7, ["It is $49, or see www.example.com/p.", "Fine."], None)
    assert [(f.check, f.severity, f.lines, f.kind, f.value) for f in findings] == [
        ("volatile_fact", "warning", (7,), "price", "$49"),
        ("volatile_fact", "warning", (7,), "url", "www.example.com/p"),
    ]
    payload = findings[0].as_json()
    assert payload["kind"] == "price" and payload["value"] == "$49"
    plain = Finding("pii", "warning", (1,), "an email address").as_json()
    assert list(plain) == ["check", "severity", "lines", "message"]


def test_parts_of_a_parallel_scan_merge_into_the_whole() -> None:
    texts = [("Refunds within 30 days.", "2022-01-01"), ("Refunds within 14 days.", "2025-01-01")]
    whole = AuditBuilder.for_terms(())
    for line, (text, date) in enumerate(texts, start=1):
        whole.add_turns(line, [text], date)
    first, second = AuditBuilder.for_terms(()), AuditBuilder.for_terms(())
    first.add_turns(1, [texts[0][0]], texts[0][1])
    second.add_turns(2, [texts[1][0]], texts[1][1])
    first.merge(second)
    assert first.build() == whole.build()
    assert len(whole.build().drift) == 1


def run_ftod(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    env.pop("FTOD_WORKSPACE", None)
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_data_check_json_carries_the_audit_and_terms(
    tmp_path: Path, jsonl_file: Callable[..., Path]
) -> None:
    rows = [
        *refund_rows(),
        chat("Which plan has SSO?", "SSO is part of Acme Care Plus.", date="2025-05-01"),
    ]
    path = jsonl_file(rows)
    result = run_ftod("data", "check", str(path), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    audit = payload["knowledge_audit"]
    assert list(audit) == [
        "assistant_turns",
        "turns_with_volatile_facts",
        "share",
        "by_kind",
        "drift",
        "top_facts",
    ]
    assert set(audit["by_kind"]) == set(KINDS)
    assert audit["by_kind"]["plan_name"] == 0
    volatile = [f for f in payload["findings"] if f["check"] == "volatile_fact"]
    assert {(f["kind"], f["value"]) for f in volatile} == {
        ("policy_duration", "within 30 days"),
        ("policy_duration", "within 14 days"),
    }
    assert all(f["severity"] == "warning" and f["lines"] for f in volatile)
    assert all("kind" not in f for f in payload["findings"] if f["check"] != "volatile_fact")

    flagged = run_ftod(
        "data", "check", str(path), "--json", "--volatile-term", "Acme Care", cwd=tmp_path
    )
    assert json.loads(flagged.stdout)["knowledge_audit"]["by_kind"]["plan_name"] == 1
    empty = run_ftod("data", "check", str(path), "--volatile-term", " ", cwd=tmp_path)
    assert empty.returncode == 2 and "--volatile-term" in empty.stderr


def test_workspace_settings_terms_count_in_data_add(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    assert run_ftod("init", cwd=project).returncode == 0
    (project / ".ftod" / "settings.toml").write_text(
        '[audit]\nvolatile_terms = ["Acme Care"]\n', encoding="utf-8"
    )
    from tests.conftest import write_jsonl

    path = write_jsonl(project / "d.jsonl", [chat("Warranty?", "You have Acme Care on it.")])
    checked = run_ftod("data", "check", str(path), "--json", cwd=project)
    assert json.loads(checked.stdout)["knowledge_audit"]["by_kind"]["plan_name"] == 1
    added = run_ftod("data", "add", str(path), "--name", "d", "--json", cwd=project)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["warnings"] == 1


def test_audit_version_reads_the_store_whole_or_one_split(
    tmp_path: Path, workspace: Any, repository: Any
) -> None:
    from tests.conftest import write_jsonl

    rows = [chat(f"Question {index}?", f"Answer {index}, sent on time.") for index in range(20)]
    rows += refund_rows()
    rows.append({"messages": [{"role": "user", "content": "hi"}], "created_at": "2025-01-01"})
    source = write_jsonl(tmp_path / "data.jsonl", rows)
    outcome = add_dataset(workspace, repository, source, "support", CheckOptions())
    version_id = outcome.version.version_id
    report = outcome.report
    assert report is not None and report.knowledge_audit is not None
    stored = audit_version(repository, version_id)
    assert isinstance(stored, KnowledgeAudit)
    assert stored == report.knowledge_audit
    assert stored.as_json()["drift"][0]["topic"] == "refund accepted"

    with pytest.raises(InputError) as no_split:
        audit_version(repository, version_id, split="train")
    assert no_split.value.field == "split"
    split_dataset(repository, "support", val=0.25, test=0.25, seed=3)
    parts = [audit_version(repository, version_id, split=name) for name in ("train", "val", "test")]
    assert sum(part.assistant_turns for part in parts) == stored.assistant_turns
    assert sum(part.turns_with_volatile_facts for part in parts) == 5
    with pytest.raises(InputError):
        audit_version(repository, version_id, split="holdout")
    assert audit_version(repository, version_id, terms=("on time",)).by_kind["plan_name"] == 20


def test_the_demo_dataset_gives_a_sensible_audit() -> None:
    """The book's story: the support answers recite prices and return windows."""
    demo = ROOT / "sample_runs" / "support_tickets" / "support_tickets.jsonl"
    audit = check_file(demo).knowledge_audit
    assert audit is not None
    assert 0.2 <= audit.share <= 0.6, audit.share
    ranked = sorted(audit.by_kind, key=lambda kind: -audit.by_kind[kind])
    assert ranked[:2] == ["policy_duration", "price"]
    assert all(audit.by_kind[kind] > 0 for kind in KINDS)
    assert ("policy_duration", "within 30 days") in {(k, v) for k, v, _ in audit.top_facts}
    assert audit.drift == []  # the demo's rows carry no dates


async def test_the_version_screen_shows_the_audit(
    tmp_path: Path, workspace: Any, repository: Any
) -> None:
    from textual.widgets import Static, TabbedContent

    from tests.conftest import write_jsonl
    from tests.tui.helpers import make_app, plain, press, settle
    from tui.screens.version import VersionScreen

    source = write_jsonl(tmp_path / "data.jsonl", refund_rows())
    add_dataset(workspace, repository, source, "refunds", CheckOptions())
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "enter")
        screen = app.screen
        assert isinstance(screen, VersionScreen)
        await press(pilot, "6")
        assert screen.query_one("#version-tabs", TabbedContent).active == "audit"
        panel = screen.query_one("#audit-panel", Static)
        assert panel.region.height > 0
        shown = plain(panel.content, width=76)  # type: ignore[arg-type]
        assert "83.3% of assistant turns (5 of 6)" in shown
        assert "policy_duration 5" in shown
        assert "within 30 days" in shown
        assert "refund accepted" in shown
        assert "refund accepted (policy_duration)" in shown
        assert "30 days  2022-03-01 → 2023-06-15      3" in shown
        assert "14 days  2025-01-10 → 2025-04-02      2" in shown
