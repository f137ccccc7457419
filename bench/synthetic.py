"""Synthetic support-ticket chat rows with planted duplicates, for benchmarks."""

from __future__ import annotations

import json
import random
from pathlib import Path

SYSTEM = "You are Acme's support assistant. Be concise, friendly and accurate."
PRODUCTS = ("blender", "router", "kettle", "vacuum", "printer", "headset", "monitor", "jacket",
            "mattress", "toaster", "drill", "camera", "speaker", "lamp", "scooter", "watch")
ISSUES = ("arrived damaged", "stopped working", "is missing a part", "was charged twice",
          "never arrived", "is the wrong colour", "makes a loud noise", "will not turn on",
          "has a cracked screen", "overheats after an hour", "lost its Wi-Fi connection")
ASKS = ("Can I get a refund?", "What should I do?", "Can you send a replacement?",
        "How long will this take?", "Is this covered by the warranty?", "Can someone call me?")
STEPS = ("restart it", "hold the reset button for ten seconds", "update the firmware",
         "check the cable", "try another outlet", "clear the cache", "re-pair it in the app",
         "send us a photo", "keep the packaging", "book a courier pickup")
WORDS = ("today", "yesterday", "again", "honestly", "please", "quickly", "already", "still")


def make_row(rng: random.Random, index: int) -> dict[str, object]:
    user = (
        f"Hi, my {rng.choice(PRODUCTS)} (order {rng.randint(10000, 99999)}) {rng.choice(ISSUES)} "
        f"{rng.choice(WORDS)}. {rng.choice(ASKS)} I bought it {rng.randint(2, 60)} days ago "
        f"and {rng.choice(WORDS)} {rng.choice(ISSUES)}."
    )
    steps = rng.sample(STEPS, 3)
    assistant = (
        f"Sorry about that. Please {steps[0]}, then {steps[1]}. If it still fails, {steps[2]} "
        f"and we will sort it out within {rng.randint(2, 10)} days. Reference {index}."
    )
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ],
        "metadata": {"label": rng.choice(["refund", "tech", "shipping"]), "id": index},
    }


def near_copy(rng: random.Random, row: dict[str, object]) -> dict[str, object]:
    copy = json.loads(json.dumps(row))
    messages = copy["messages"]
    edit = rng.randrange(3)
    if edit == 0:
        messages[1]["content"] = messages[1]["content"].replace("Hi,", "Hello,", 1) + " Thanks!"
    elif edit == 1:
        messages[2]["content"] = messages[2]["content"].replace("Sorry about that.", "Sorry about this!")
    else:
        messages[1]["content"] = messages[1]["content"].lower()
        messages[2]["content"] += " Have a nice day."
    return copy


def write_rows(path: Path, rows: int, seed: int = 0, dup_rate: float = 0.02) -> dict[str, int]:
    """Stream `rows` rows to `path`; returns how many exact and near copies were planted."""
    rng = random.Random(seed)
    recent: list[dict[str, object]] = []
    planted = {"exact": 0, "near": 0}
    with path.open("w", encoding="utf-8") as handle:
        for index in range(rows):
            if recent and rng.random() < dup_rate:
                source = rng.choice(recent)
                if rng.random() < 0.5:
                    row = source
                    planted["exact"] += 1
                else:
                    row = near_copy(rng, source)
                    planted["near"] += 1
            else:
                row = make_row(rng, index)
                recent.append(row)
                if len(recent) > 1000:
                    recent.pop(rng.randrange(len(recent)))
            handle.write(json.dumps(row) + "\n")
    return planted
