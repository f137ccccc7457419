"""Prompts: reading a prompt YAML file, storing it as a version, and building the messages a
model sees for one example (prompt system + few-shot turns + the example's input turns).

A prompt file:

    system: You are a concise support agent.     # optional
    few_shot:                                     # optional
      - {user: "Where is my parcel?", assistant: "It ships Monday."}
    max_new_tokens: 256                           # default 256
    temperature: 0                                # default 0 = greedy
    stop: ["\\n\\n"]                              # optional
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.yamlfile import load_yaml_file
from store.errors import InputError
from store.prompts import FewShot, PromptRecord, PromptRepository

DEFAULT_MAX_NEW_TOKENS = 256
DEFAULT_TEMPERATURE = 0.0
_KEYS = frozenset({"system", "few_shot", "max_new_tokens", "temperature", "stop"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True, slots=True)
class PromptSpec:
    system: str | None
    few_shot: tuple[FewShot, ...]
    max_new_tokens: int
    temperature: float
    stop: tuple[str, ...]

    def canonical(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "few_shot": [{"user": s.user, "assistant": s.assistant} for s in self.few_shot],
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "stop": list(self.stop),
        }

    @property
    def sha256(self) -> str:
        text = json.dumps(self.canonical(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def of(cls, record: PromptRecord) -> PromptSpec:
        return cls(
            record.system, record.few_shot, record.max_new_tokens, record.temperature, record.stop
        )


def parse_prompt(data: object, where: str = "prompt") -> PromptSpec:
    """A PromptSpec from parsed YAML; InputError listing every problem."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: expected a mapping with system, few_shot, ... at the top")
    problems: list[str] = []
    unknown = sorted(str(key) for key in data if key not in _KEYS)
    if unknown:
        problems.append(f"unknown keys {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")
    system = data.get("system")
    if system is not None and not isinstance(system, str):
        problems.append("system must be text")
        system = None
    shots: list[FewShot] = []
    raw_shots = data.get("few_shot") or []
    if not isinstance(raw_shots, list):
        problems.append("few_shot must be a list of {user, assistant}")
        raw_shots = []
    for index, shot in enumerate(raw_shots, start=1):
        if (
            not isinstance(shot, Mapping)
            or set(shot) != {"user", "assistant"}
            or not all(isinstance(shot[key], str) for key in ("user", "assistant"))
        ):
            problems.append(f"few_shot item {index}: expected {{user: text, assistant: text}}")
            continue
        shots.append(FewShot(shot["user"], shot["assistant"]))
    max_new = data.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    if isinstance(max_new, bool) or not isinstance(max_new, int) or not 1 <= max_new <= 1 << 20:
        problems.append(f"max_new_tokens must be a whole number ≥ 1, not {max_new!r}")
        max_new = DEFAULT_MAX_NEW_TOKENS
    temperature = data.get("temperature", DEFAULT_TEMPERATURE)
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not math.isfinite(temperature)
        or temperature < 0
    ):
        problems.append(f"temperature must be a number ≥ 0 (0 = greedy), not {temperature!r}")
        temperature = DEFAULT_TEMPERATURE
    stop = data.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        problems.append("stop must be a list of non-empty strings")
        stop = []
    if problems:
        raise InputError(f"{where}: " + "; ".join(problems), title="Unusable prompt")
    return PromptSpec(
        system=system,
        few_shot=tuple(shots),
        max_new_tokens=int(max_new),
        temperature=float(temperature),
        stop=tuple(stop),
    )


def read_prompt_file(path: Path) -> PromptSpec:
    path = Path(path)
    data = load_yaml_file(path, what="prompt file")
    return parse_prompt(data, str(path))


def check_prompt_name(name: str) -> str:
    text = name.strip()
    if not _NAME.match(text):
        raise InputError(
            f"prompt name {name!r}: use letters, digits, '.', '_' and '-' (no '@' or spaces)"
        )
    return text


def add_prompt(repository: PromptRepository, name: str, path: Path) -> tuple[PromptRecord, bool]:
    """Store the file as a new version of NAME unless its content equals the latest."""
    name = check_prompt_name(name)
    spec = read_prompt_file(path)
    return repository.add_prompt(
        name=name,
        system=spec.system,
        few_shot=spec.few_shot,
        max_new_tokens=spec.max_new_tokens,
        temperature=spec.temperature,
        stop=spec.stop,
        sha256=spec.sha256,
    )


def input_messages(
    prompt: PromptSpec, messages: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """What the model sees for one example: the prompt's system turn (replacing the example's
    own, if the prompt has one), the few-shot turns, then the example's turns without its
    final assistant turn (the reference)."""
    turns = [dict(message) for message in messages]
    if turns and turns[-1].get("role") == "assistant":
        turns = turns[:-1]
    built: list[dict[str, Any]] = []
    if prompt.system is not None:
        turns = [turn for turn in turns if turn.get("role") != "system"]
        built.append({"role": "system", "content": prompt.system})
    elif turns and turns[0].get("role") == "system":
        built.append(turns.pop(0))
    for shot in prompt.few_shot:
        built.append({"role": "user", "content": shot.user})
        built.append({"role": "assistant", "content": shot.assistant})
    return built + turns
