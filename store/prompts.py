"""Typed reads and writes of prompts (table `prompts`): versioned system prompt, few-shot turns
and generation settings. A new version is stored only when the content's sha256 changes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from store.db import Store
from store.errors import NotFoundError


@dataclass(frozen=True, slots=True)
class FewShot:
    user: str
    assistant: str


@dataclass(frozen=True, slots=True)
class PromptRecord:
    name: str
    version: int
    system: str | None
    few_shot: tuple[FewShot, ...]
    max_new_tokens: int
    temperature: float
    stop: tuple[str, ...]
    sha256: str
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "system": self.system,
            "few_shot": [{"user": s.user, "assistant": s.assistant} for s in self.few_shot],
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "stop": list(self.stop),
            "sha256": self.sha256,
            "created_at": self.created_at.isoformat(),
        }


_COLUMNS = "name, version, system, few_shot, max_new_tokens, temperature, stop, sha256, created_at"


def _from_row(row: Sequence[Any]) -> PromptRecord:
    shots = json.loads(row[3]) if row[3] else []
    return PromptRecord(
        name=str(row[0]),
        version=int(row[1]),
        system=row[2],
        few_shot=tuple(FewShot(str(s["user"]), str(s["assistant"])) for s in shots),
        max_new_tokens=int(row[4]),
        temperature=float(row[5]),
        stop=tuple(str(s) for s in (json.loads(row[6]) if row[6] else [])),
        sha256=str(row[7]),
        created_at=row[8],
    )


def parse_prompt_ref(ref: str) -> tuple[str, int | None]:
    """'name' or 'name@3' → (name, version or None for the latest)."""
    text = ref.strip()
    name, at, version = text.rpartition("@")
    if not at:
        return text, None
    digits = version.lstrip("v")
    if not name or not digits.isdigit():
        raise NotFoundError(f"{ref!r} is not a prompt reference; use NAME or NAME@VERSION")
    return name, int(digits)


class PromptRepository:
    """Every query the prompt commands need; each method opens and closes its own connection."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def list_prompts(self) -> list[PromptRecord]:
        """The latest version of every prompt, by name."""
        with self.store.reading() as connection:
            rows = connection.execute(
                f"""SELECT {_COLUMNS} FROM prompts p
                    WHERE version = (SELECT max(version) FROM prompts q WHERE q.name = p.name)
                    ORDER BY name"""
            ).fetchall()
        return [_from_row(row) for row in rows]

    def versions(self, name: str) -> list[PromptRecord]:
        with self.store.reading() as connection:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM prompts WHERE name = ? ORDER BY version", [name]
            ).fetchall()
        return [_from_row(row) for row in rows]

    def prompt(self, ref: str) -> PromptRecord:
        name, number = parse_prompt_ref(ref)
        versions = self.versions(name)
        if not versions:
            known = [record.name for record in self.list_prompts()]
            hint = f" Known prompts: {', '.join(known[:20])}." if known else ""
            raise NotFoundError(
                f"No prompt named {name!r}.{hint} Add one with `ftod prompt add {name} "
                "--file prompt.yaml`."
            )
        if number is None:
            return versions[-1]
        for record in versions:
            if record.version == number:
                return record
        listed = ", ".join(str(record.version) for record in versions)
        raise NotFoundError(f"prompt {name} has no version {number} (versions: {listed})")

    def add_prompt(
        self,
        *,
        name: str,
        system: str | None,
        few_shot: Sequence[FewShot],
        max_new_tokens: int,
        temperature: float,
        stop: Sequence[str],
        sha256: str,
        created_at: datetime | None = None,
    ) -> tuple[PromptRecord, bool]:
        """Store a new version unless the latest has the same sha256; (record, created)."""
        with self.store.writing() as connection:
            latest = connection.execute(
                f"SELECT {_COLUMNS} FROM prompts WHERE name = ? ORDER BY version DESC LIMIT 1",
                [name],
            ).fetchone()
            if latest is not None and latest[7] == sha256:
                return _from_row(latest), False
            version = 1 if latest is None else int(latest[1]) + 1
            connection.execute(
                """INSERT INTO prompts (name, version, system, few_shot, max_new_tokens,
                       temperature, stop, sha256, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    name,
                    version,
                    system,
                    json.dumps([{"user": s.user, "assistant": s.assistant} for s in few_shot]),
                    max_new_tokens,
                    temperature,
                    json.dumps(list(stop)),
                    sha256,
                    created_at or datetime.now(),
                ],
            )
        return self.prompt(f"{name}@{version}"), True
