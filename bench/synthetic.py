"""Synthetic support-ticket chat rows with planted duplicates, for benchmarks."""

from __future__ import annotations

import json
import random
from pathlib import Path

SYSTEM = "You are Acme's support assistant. Be concise, friendly and accurate."
PRODUCTS = (
    "blender",
    "router",
    "kettle",
    "vacuum",
    "printer",
    "headset",
    "monitor",
    "jacket",
    "mattress",
    "toaster",
    "drill",
    "camera",
    "speaker",
    "lamp",
    "scooter",
    "watch",
)
ISSUES = (
    "arrived damaged",
    "stopped working",
    "is missing a part",
    "was charged twice",
    "never arrived",
    "is the wrong colour",
    "makes a loud noise",
    "will not turn on",
    "has a cracked screen",
    "overheats after an hour",
    "lost its Wi-Fi connection",
)
ASKS = (
    "Can I get a refund?",
    "What should I do?",
    "Can you send a replacement?",
    "How long will this take?",
    "Is this covered by the warranty?",
    "Can someone call me?",
)
STEPS = (
    "restart it",
    "hold the reset button for ten seconds",
    "update the firmware",
    "check the cable",
    "try another outlet",
    "clear the cache",
    "re-pair it in the app",
    "send us a photo",
    "keep the packaging",
    "book a courier pickup",
)
WORDS = ("today", "yesterday", "again", "honestly", "please", "quickly", "already", "still")


OPENERS = (
    "Hi,",
    "Hello,",
    "Hey there,",
    "Good morning,",
    "Hi team,",
    "Dear support,",
    "",
    "Quick question:",
)
DETAILS = (
    "the light blinks {c} times",
    "the app shows error E{n}",
    "the box was opened",
    "the courier left it at the door",
    "my neighbour signed for it",
    "it worked for {c} weeks",
    "I already tried a factory reset",
    "the invoice shows {p} euros",
    "the manual is missing",
    "the colour does not match the photo",
    "it smells of burnt plastic",
    "the strap snapped",
    "the tracking page has not moved since {d}",
    "I paid with PayPal",
    "it came from the {w} warehouse",
    "the replacement has the same fault",
    "my partner set it up",
    "I live on the {c}th floor",
)
CLOSERS = (
    "Thanks.",
    "Thank you!",
    "Cheers",
    "Regards, {name}",
    "{name}",
    "Please help.",
    "",
    "Many thanks in advance.",
)
NAMES = (
    "Alex",
    "Sam",
    "Priya",
    "Jonas",
    "Mei",
    "Tomás",
    "Fatima",
    "Olu",
    "Greta",
    "Ivan",
    "Lena",
    "Ravi",
)
APOLOGIES = (
    "Sorry about that.",
    "Thanks for letting us know.",
    "I understand how annoying that is.",
    "Thanks for your patience.",
    "I'm sorry to hear that.",
    "",
)
FOLLOW = (
    "I've opened case {n} for you.",
    "A courier label is on its way to your inbox.",
    "You'll get an update by email within {c} days.",
    "The refund goes back to your original payment method.",
    "If that does not help, reply here and we'll arrange a swap.",
    "Our technicians will call you {w}.",
    "I've added a {p} euro voucher to your account for the trouble.",
    "",
)


def _fill(rng: random.Random, template: str) -> str:
    return template.format(
        c=rng.randint(2, 9),
        n=rng.randint(100, 9999),
        p=rng.randint(5, 900),
        d=rng.choice(("Monday", "Tuesday", "the 3rd", "last week", "Friday")),
        w=rng.choice(
            ("Leeds", "Lyon", "Porto", "Gdansk", "north", "east", "tomorrow morning", "on Friday")
        ),
        name=rng.choice(NAMES),
    )


def make_row(rng: random.Random, index: int) -> dict[str, object]:
    details = " ".join(
        _fill(rng, d).capitalize() + "." for d in rng.sample(DETAILS, rng.randint(1, 3))
    )
    user = " ".join(
        part
        for part in (
            rng.choice(OPENERS),
            f"my {rng.choice(PRODUCTS)} (order {rng.randint(10000, 99999)}) "
            f"{rng.choice(ISSUES)} {rng.choice(WORDS)}.",
            details,
            rng.choice(ASKS),
            _fill(rng, rng.choice(CLOSERS)),
        )
        if part
    )
    steps = rng.sample(STEPS, rng.randint(1, 3))
    assistant = " ".join(
        part
        for part in (
            rng.choice(APOLOGIES),
            "Please " + ", then ".join(steps) + ".",
            _fill(rng, rng.choice(FOLLOW)),
            _fill(rng, rng.choice(FOLLOW)),
            f"Reference {index}.",
        )
        if part
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
        messages[2]["content"] = messages[2]["content"].replace("Please", "Kindly", 1) + " Sorry!"
    else:
        messages[1]["content"] = messages[1]["content"].lower()
        messages[2]["content"] += " Have a nice day."
    return copy


def write_rows(
    path: Path, rows: int, seed: int = 0, dup_rate: float = 0.02
) -> dict[str, list[tuple[int, int]]]:
    """Stream `rows` rows to `path`; returns the planted (source line, copy line) pairs."""
    rng = random.Random(seed)
    recent: list[tuple[int, dict[str, object]]] = []
    planted: dict[str, list[tuple[int, int]]] = {"exact": [], "near": []}
    with path.open("w", encoding="utf-8") as handle:
        for index in range(rows):
            line = index + 1
            if recent and rng.random() < dup_rate:
                source_line, source = rng.choice(recent)
                if rng.random() < 0.5:
                    row = source
                    planted["exact"].append((source_line, line))
                else:
                    row = near_copy(rng, source)
                    planted["near"].append((source_line, line))
            else:
                row = make_row(rng, index)
                recent.append((line, row))
                if len(recent) > 1000:
                    recent.pop(rng.randrange(len(recent)))
            handle.write(json.dumps(row) + "\n")
    return planted
