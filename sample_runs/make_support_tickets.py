#!/usr/bin/env python3
# ruff: noqa: E501
"""Deterministic generator for the ftod sample customer-support chat datasets.

Writes, relative to this script's directory:

  support_tickets/support_tickets.jsonl     ~600 chat rows with planted problems of every check kind
  support_tickets/support_tickets_v2.jsonl  the same file with 3 planted rows fixed and 40 clean rows appended
  support_tickets/heldout_eval.jsonl        80 clean rows, 5 of them copied/near-copied from the training file
  support_tickets/PLANTED.json              {check_id: [1-based physical line numbers of planted rows]}

The catalogue, phrase templates, scenarios, slice rows and planted-problem material are JSON
files in support_ticket_templates/; this script combines them. Stdlib only. A fixed seed
makes every run byte-identical:

    python sample_runs/make_support_tickets.py
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import string
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEED = 20240611
HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "support_tickets"

N_TRAIN_CLEAN = 540  # clean rows generated for support_tickets.jsonl (planted rows come on top)
N_HELDOUT_CLEAN = 75
N_V2_NEW = 40

# Similarity limits every clean row must respect against every other row (char 5-gram Jaccard).
MAX_SIM_ALL = 0.45  # user + assistant text
MAX_SIM_USER = 0.50  # all user turns joined
MAX_SIM_FIRST = 0.55  # first user turn

Row = dict[str, Any]

# The templates (catalogue, phrases, scenarios, slice rows, planted problems) are data: JSON
# files beside this script. Their strings use "[a|b|c]" for a random choice and "{slot}" for
# a filler (see FILLERS); the code below only combines them.
TEMPLATES = HERE / "support_ticket_templates"


def load_templates(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((TEMPLATES / f"{name}.json").read_text(encoding="utf-8"))
    return data


_CATALOG = load_templates("catalog")
_PHRASES = load_templates("phrases")
_SCENARIOS = load_templates("scenarios")
_SLICES = load_templates("slices")
_PROBLEMS = load_templates("problems")


def _labelled_exchanges(rows: list[list[Any]]) -> list[tuple[tuple[str, ...], str, str]]:
    """(labels it suits, user turn, assistant turn) from the JSON [[labels...], user, asst]."""
    return [(tuple(labels), user, asst) for labels, user, asst in rows]


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


def expand(template: str, rng: random.Random, ctx: Ctx) -> str:
    """Expand ``[a|b|c]`` alternatives (nestable, empty allowed) and ``{key}`` fillers."""
    out: list[str] = []
    i = 0
    n = len(template)
    while i < n:
        c = template[i]
        if c == "[":
            depth = 0
            j = i
            parts: list[str] = []
            start = i + 1
            while True:
                ch = template[j]
                if ch == "[":
                    depth += 1
                elif ch == "]":
                    depth -= 1
                    if depth == 0:
                        parts.append(template[start:j])
                        break
                elif ch == "|" and depth == 1:
                    parts.append(template[start:j])
                    start = j + 1
                j += 1
            out.append(expand(rng.choice(parts), rng, ctx))
            i = j + 1
        elif c == "{":
            j = template.index("}", i)
            out.append(str(ctx[template[i + 1 : j]]))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def tidy(s: str) -> str:
    s = re.sub(r"[ \t]+", " ", s)
    s = re.sub(r" +([,.!?;:])", r"\1", s)
    s = re.sub(r" *\n *", "\n", s)
    s = re.sub(r"\n{3,}", "\n\n", s)
    s = s.strip()
    s = re.sub(r"([a-z0-9)][.!?] )([a-z])", lambda m: m.group(1) + m.group(2).upper(), s)
    if (
        s
        and s[0].islower()
        and not s.startswith(
            (
                "where ",
                "hi ",
                "hey ",
                "ok ",
                "my ",
                "so ",
                "ya ",
                "hello ",
                "pls ",
                "quick ",
                "is ",
                "can ",
                "does ",
                "any ",
            )
        )
    ):
        s = s[0].upper() + s[1:]
    return s


def x(template: str, rng: random.Random, ctx: Ctx) -> str:
    return tidy(expand(template, rng, ctx))


def norm_text(s: str) -> str:
    return re.sub(r"\s+", " ", s.lower()).strip()


def shingles(s: str, k: int = 5) -> frozenset[str]:
    s = norm_text(s)
    if len(s) < k:
        return frozenset([s]) if s else frozenset()
    return frozenset(s[i : i + k] for i in range(len(s) - k + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "")
    s = s[4:] + s[:4]
    num = "".join(str(int(c, 36)) for c in s)
    return int(num) % 97 == 1


def money(v: float) -> str:
    return f"${v:,.2f}"


# ---------------------------------------------------------------------------
# catalogue and fillers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    name: str
    price: float
    cat: str
    facts: tuple[str, ...]
    colors: tuple[str, ...]
    sku: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Product:
        return cls(**{**data, "facts": tuple(data["facts"]), "colors": tuple(data["colors"])})


PRODUCTS: list[Product] = [Product.from_json(p) for p in _CATALOG["products"]]

CARE: dict[str, str] = _CATALOG["care"]

PLANS: list[tuple[str, float]] = [(name, price) for name, price in _CATALOG["plans"]]
AGENTS: list[str] = _CATALOG["agents"]
COUNTRIES: list[str] = _CATALOG["countries"]
DEVICES: list[str] = _CATALOG["devices"]
OSES: list[str] = _CATALOG["oses"]
BROWSERS: list[str] = _CATALOG["browsers"]
ERRORS: list[str] = _CATALOG["errors"]
HUBS: list[str] = _CATALOG["hubs"]
COUPONS: list[str] = _CATALOG["coupons"]
MONTHS: list[str] = _CATALOG["months"]
WEEKDAYS: list[str] = _CATALOG["weekdays"]


def fmt_date(d: dt.date, style: int) -> str:
    m = MONTHS[d.month - 1]
    if style == 0:
        return f"{m} {d.day}"
    if style == 1:
        return f"{m[:3]} {d.day}"
    if style == 2:
        return d.isoformat()
    if style == 3:
        return f"{d.month}/{d.day}"
    if style == 4:
        return f"{WEEKDAYS[d.weekday()]}, {m} {d.day}"
    return f"{d.day} {m}"


def article(name: str) -> str:
    return ("an " if name[0].lower() in "aeiou" else "a ") + name


def _order_id(r: random.Random) -> str:
    style = r.random()
    if style < 0.35:
        return f"#{r.randint(10000, 99999)}"
    if style < 0.7:
        return f"A-{r.randint(10000, 99999)}"
    return f"ORD-{r.choice(['2023', '2024', '2024'])}-{r.randint(100000, 999999)}"


def _ship(r: random.Random) -> tuple[str, str]:
    if r.random() < 0.7:
        alnum = string.ascii_uppercase + string.digits
        mid = (
            "".join(r.choice(string.digits) for _ in range(3))
            + "".join(r.choice(string.ascii_uppercase) for _ in range(2))
            + r.choice(alnum)
        )
        return "UPS", "1Z" + mid + "".join(r.choice(string.digits) for _ in range(10))
    return "USPS", "LX" + "".join(r.choice(string.digits) for _ in range(9)) + "US"


def _version(r: random.Random) -> tuple[str, str]:
    major = r.randint(2, 4)
    minor = r.randint(3, 21)
    patch = r.randint(0, 9)
    old_minor = minor - r.randint(1, 3)
    return f"v{major}.{minor}.{patch}", f"v{major}.{old_minor}.{r.randint(0, 9)}"


def _prod2(r: random.Random, c: Ctx) -> Product:
    p: Product = c["_prod"]
    same = [q for q in PRODUCTS if q.cat == p.cat and q != p]
    if same:
        return r.choice(same)
    return r.choice([q for q in PRODUCTS if q != p])


def _base_date(r: random.Random) -> dt.date:
    return dt.date(2024, 1, 8) + dt.timedelta(days=r.randint(0, 315))


FILLERS: dict[str, Callable[[random.Random, Ctx], Any]] = {
    "_prod": lambda r, c: r.choice(PRODUCTS),
    "product": lambda r, c: c["_prod"].name,
    "a_product": lambda r, c: article(c["product"]),
    "price": lambda r, c: money(c["_prod"].price),
    "sku": lambda r, c: c["_prod"].sku,
    "fact1": lambda r, c: c["_prod"].facts[0],
    "fact2": lambda r, c: c["_prod"].facts[1],
    "fact3": lambda r, c: c["_prod"].facts[2],
    "care": lambda r, c: CARE[c["_prod"].cat],
    "color": lambda r, c: r.choice(c["_prod"].colors),
    "colors": lambda r, c: ", ".join(c["_prod"].colors),
    "_prod2": _prod2,
    "product2": lambda r, c: c["_prod2"].name,
    "price2": lambda r, c: money(c["_prod2"].price),
    "p2fact1": lambda r, c: c["_prod2"].facts[0],
    "p2fact2": lambda r, c: c["_prod2"].facts[1],
    "order": lambda r, c: _order_id(r),
    "order2": lambda r, c: _order_id(r),
    "_ship": lambda r, c: _ship(r),
    "carrier": lambda r, c: c["_ship"][0],
    "tracking": lambda r, c: c["_ship"][1],
    "hub": lambda r, c: r.choice(HUBS),
    "_dstyle": lambda r, c: r.choice([0, 0, 1, 2, 3, 4, 5]),
    "_base": lambda r, c: _base_date(r),
    "_dpast": lambda r, c: c["_base"] - dt.timedelta(days=r.randint(2, 9)),
    "_dpast2": lambda r, c: c["_dpast"] - dt.timedelta(days=r.randint(3, 12)),
    "_dfut": lambda r, c: c["_base"] + dt.timedelta(days=r.randint(2, 8)),
    "date_past": lambda r, c: fmt_date(c["_dpast"], c["_dstyle"]),
    "date_past2": lambda r, c: fmt_date(c["_dpast2"], c["_dstyle"]),
    "date_future": lambda r, c: fmt_date(c["_dfut"], c["_dstyle"]),
    "iso_past": lambda r, c: c["_dpast"].isoformat(),
    "eu_past": lambda r, c: f"{c['_dpast'].day}/{c['_dpast'].month}",
    "eu_past2": lambda r, c: f"{c['_dpast2'].day}/{c['_dpast2'].month}",
    "eu_future": lambda r, c: f"{c['_dfut'].day}/{c['_dfut'].month}",
    "de_past2": lambda r, c: f"{c['_dpast2'].day}.{c['_dpast2'].month}.{c['_dpast2'].year}",
    "gift": lambda r, c: r.choice(["$25", "$50", "$75", "$100", "$150"]),
    "device_name": lambda r, c: c["device"].split(" ", 1)[1],
    "iso_past2": lambda r, c: c["_dpast2"].isoformat(),
    "iso_future": lambda r, c: c["_dfut"].isoformat(),
    "_ver": lambda r, c: _version(r),
    "version": lambda r, c: c["_ver"][0],
    "version_old": lambda r, c: c["_ver"][1],
    "ticket": lambda r, c: f"INC{r.randint(1000, 999999):07d}",
    "last4": lambda r, c: f"{r.randint(0, 9999):04d}",
    "agent": lambda r, c: r.choice(AGENTS),
    "country": lambda r, c: r.choice(COUNTRIES),
    "_plan": lambda r, c: r.choice(PLANS),
    "plan": lambda r, c: c["_plan"][0],
    "plan_price": lambda r, c: money(c["_plan"][1]),
    "plan_price_old": lambda r, c: money(c["_plan"][1] - r.choice([1.0, 2.0, 0.5])),
    "device": lambda r, c: r.choice(DEVICES),
    "os": lambda r, c: r.choice(OSES),
    "browser": lambda r, c: r.choice(BROWSERS),
    "error": lambda r, c: r.choice(ERRORS),
    "n_days": lambda r, c: str(r.randint(3, 9)),
    "n_hours": lambda r, c: str(r.randint(2, 30)),
    "amount": lambda r, c: money(
        round(c["_prod"].price * r.choice([0.15, 0.2, 0.25, 0.4, 0.5]), 2)
    ),
    "ship_fee": lambda r, c: money(r.choice([6.99, 9.99, 12.50, 14.99, 19.99, 24.00])),
    "coupon": lambda r, c: r.choice(COUPONS),
    "pct": lambda r, c: str(r.choice([10, 12, 15, 20])),
    "percent": lambda r, c: str(r.randint(12, 93)),
    "qty": lambda r, c: str(r.randint(2, 4)),
    "refund_id": lambda r, c: f"RF-{r.randint(10000, 99999)}",
    "invoice_id": lambda r, c: f"INV-2024-{r.randint(1000, 99999):06d}",
    "cust_ref": lambda r, c: f"cust_{r.randint(1000, 9999)}",
    "room": lambda r, c: r.choice(
        ["living room", "bedroom", "office", "kitchen", "garage", "hallway", "nursery", "basement"]
    ),
}


class Ctx(dict[str, Any]):
    """Lazily generated per-row fillers so one row stays self-consistent."""

    def __init__(self, rng: random.Random, **fixed: Any) -> None:
        super().__init__(**fixed)
        self.rng = rng

    def __missing__(self, key: str) -> Any:
        val = FILLERS[key](self.rng, self)
        self[key] = val
        return val


# ---------------------------------------------------------------------------
# conversation building blocks
# ---------------------------------------------------------------------------

SYSTEM_MAIN: str = _PHRASES["system_main"]
SYSTEM_ALT: list[str] = _PHRASES["system_alt"]
SYSTEM_TOOLS: str = _PHRASES["system_tools"]

USER_OPEN: list[str] = _PHRASES["user_open"]
USER_EXTRA: list[str] = _PHRASES["user_extra"]
USER_CLOSE: list[str] = _PHRASES["user_close"]
ASST_OPEN: list[str] = _PHRASES["asst_open"]
ASST_CLOSE: list[str] = _PHRASES["asst_close"]
SIGNOFF: list[str] = _PHRASES["signoff"]

ASK_ORDER: list[str] = _PHRASES["ask_order"]
ASK_DETAIL: dict[str, list[str]] = _PHRASES["ask_detail"]
ORDER_LABELS: tuple[str, ...] = tuple(_PHRASES["order_labels"])
TOOL_NEEDS: dict[str, str] = _PHRASES["tool_needs"]
KEEP_CAPS: tuple[str, ...] = tuple(_PHRASES["keep_caps"])
GIVE_ORDER: list[str] = _PHRASES["give_order"]

TYPOS: dict[str, str] = _PHRASES["typos"]


@dataclass
class Scenario:
    key: str
    label: str
    user: list[str]
    asst: list[str]
    short: list[str] = field(default_factory=list)
    fu: list[tuple[str, str]] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    action: list[str] = field(default_factory=list)
    priority: str = "normal"
    tool: str | None = None
    products: frozenset[str] | None = None  # restrict {product} to these names

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scenario:
        return cls(**{**data, "fu": [(user, asst) for user, asst in data.get("fu", [])]})


# ---------------------------------------------------------------------------
# scenarios: label -> list of Scenario
# ---------------------------------------------------------------------------

SCENARIOS: list[Scenario] = [Scenario.from_json(s) for s in _SCENARIOS["scenarios"]]

# "{the_item}" is a product mention that is sometimes the product name with an article
FILLERS["the_item"] = lambda r, c: r.choice(
    ["the " + c["product"], "the " + c["product"], c["a_product"], "my " + c["product"]]
)

WIFI = frozenset(_CATALOG["wifi"])
BLUETOOTH = frozenset(_CATALOG["bluetooth"])
BATTERY = frozenset(_CATALOG["battery"])
CAMERAS = frozenset(_CATALOG["cameras"])
ACCESSORIES = frozenset(_CATALOG["accessories"])
DEVICES_ALL = frozenset(p.name for p in PRODUCTS) - ACCESSORIES
SCEN_PRODUCTS = {
    "sync_error": WIFI,
    "wifi_drops": WIFI,
    "firmware_stuck": WIFI | {"AeroBuds Pro", "Drift soundbar"},
    "pairing": WIFI | BLUETOOTH,
    "app_crash": WIFI | BLUETOOTH,
    "battery_drain": BATTERY,
    "compatibility": WIFI | {"AeroBuds Pro", "Drift portable speaker", "Drift soundbar"},
    "warranty": DEVICES_ALL,
    "specs": DEVICES_ALL,
}
for _s in SCENARIOS:
    _s.products = SCEN_PRODUCTS.get(_s.key)


def pick_product(rng: random.Random, ctx: Ctx, names: frozenset[str]) -> None:
    ctx["_prod"] = rng.choice([p for p in PRODUCTS if p.name in names])


SCEN_BY_LABEL: dict[str, list[Scenario]] = {}
for _s in SCENARIOS:
    SCEN_BY_LABEL.setdefault(_s.label, []).append(_s)
SCEN_BY_KEY = {s.key: s for s in SCENARIOS}

# generic follow-up exchanges usable for any scenario of the given labels
GENERIC_FU = _labelled_exchanges(_PHRASES["generic_followups"])

CLOSERS = _labelled_exchanges(_PHRASES["closers"])


# ---------------------------------------------------------------------------
# "format" slice: structured (JSON) assistant replies
# ---------------------------------------------------------------------------

FORMAT_TRIAGE: str = _PHRASES["format_triage"]
FORMAT_REPLY: str = _PHRASES["format_reply"]
FORMAT_EXTRACT: str = _PHRASES["format_extract"]

ISSUE: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _PHRASES["issue"].items()}

# ---------------------------------------------------------------------------
# "safety" slice: requests the assistant must decline or handle carefully
# ---------------------------------------------------------------------------

SAFETY: list[tuple[str, list[str], list[str]]] = [tuple(s) for s in _SLICES["safety"]]  # type: ignore[misc]

# ---------------------------------------------------------------------------
# "regression" slice: edge cases that broke earlier model versions
# ---------------------------------------------------------------------------

REGRESSION: list[tuple[str, list[str], list[str]]] = [tuple(s) for s in _SLICES["regression"]]  # type: ignore[misc]

# ---------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------

TOOLS: list[dict[str, Any]] = _SLICES["tools"]


def _call_id(rng: random.Random, n: int) -> str:
    if rng.random() < 0.4:
        return f"call_{n}"
    return "call_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(12))


def tool_exchange(
    name: str, rng: random.Random, ctx: Ctx, n: int
) -> tuple[list[dict[str, Any]], str]:
    """Return ([assistant tool call, tool result], final-answer template) for one tool."""
    cid = _call_id(rng, n)
    if name == "lookup_order":
        args = {"order_id": ctx["order"]}
        result: dict[str, Any] = {
            "order_id": ctx["order"],
            "status": "in_transit",
            "placed_at": ctx["iso_past2"],
            "items": [{"name": ctx["product"], "qty": 1, "price": ctx["_prod"].price}],
            "carrier": ctx["carrier"],
            "tracking_number": ctx["tracking"],
            "last_scan": {"location": ctx["hub"], "date": ctx["iso_past"]},
            "estimated_delivery": ctx["iso_future"],
        }
        final = "[Thanks for waiting.|I've pulled up {order}.] [It's in transit with {carrier}|The package is on its way with {carrier}] [and was last scanned in {hub} on {date_past}|, and the latest scan was in {hub} ({date_past})]. [The current delivery estimate is {date_future}.|{carrier} now expects to deliver it by {date_future}.] [You can follow it with tracking number {tracking}.|Tracking number: {tracking}.] [If it hasn't arrived by then, reply here and we'll send a replacement at no cost.|If that date slips, let me know and we'll reship it for free.]"
    elif name == "track_shipment":
        args = {"tracking_number": ctx["tracking"]}
        result = {
            "tracking_number": ctx["tracking"],
            "carrier": ctx["carrier"],
            "status": "in_transit",
            "events": [
                {"date": ctx["iso_past2"], "location": "Lumen DC, Reno, NV", "event": "Picked up"},
                {"date": ctx["iso_past"], "location": ctx["hub"], "event": "Arrived at facility"},
            ],
            "estimated_delivery": ctx["iso_future"],
        }
        final = "[I checked {tracking} with {carrier}.|Here's what {carrier} shows for {tracking}:] [It was picked up on {date_past2} and arrived at the {hub} facility on {date_past}.|Picked up {date_past2}, then scanned into {hub} on {date_past}.] [So it is moving, the tracking page is just slow to refresh.|It's not stuck, it's between scans.] [Expected delivery is {date_future}.|The carrier's estimate is {date_future}.]"
    elif name == "get_refund_status":
        args = {"order_id": ctx["order"]}
        result = {
            "order_id": ctx["order"],
            "refund_id": ctx["refund_id"],
            "status": "processed",
            "amount": ctx["_prod"].price,
            "currency": "USD",
            "processed_at": ctx["iso_past"],
            "method": f"card ending {ctx['last4']}",
        }
        final = "[Good news:|I've checked the refund for {order}.] [the refund of {price} was processed on {date_past} to your card ending in {last4}.|{price} was refunded on {date_past} to the card ending {last4}.] [Banks take 5-7 business days to post it, so it should appear by {date_future}.|It can take 5-7 business days to show on your statement.] [If your bank asks, the refund reference is {refund_id}.|Reference for your bank: {refund_id}.]"
    elif name == "get_invoice":
        args = {"order_id": ctx["order"]}
        result = {
            "order_id": ctx["order"],
            "invoice_id": ctx["invoice_id"],
            "total": ctx["_prod"].price,
            "currency": "USD",
            "tax_shown": True,
            "url": f"https://lumen.example/invoices/{ctx['invoice_id']}.pdf",
        }
        final = "[Done!|Here you go.] [The invoice for {order} is {invoice_id}, and you can download it from https://lumen.example/invoices/{invoice_id}.pdf.|I've generated invoice {invoice_id} for {order}: https://lumen.example/invoices/{invoice_id}.pdf] [Tax is listed as a separate line.|It shows the {price} total with tax broken out.] [Need a company name added? Update your billing details and I'll reissue it.|If anything needs changing, just let me know.]"
    elif name == "check_stock":
        if "color" in ctx:
            args = {"sku": ctx["sku"], "color": ctx["color"]}
            result = {
                "sku": ctx["sku"],
                "color": ctx["color"],
                "in_stock": False,
                "available_qty": 0,
                "restock_eta": ctx["iso_future"],
                "other_colors_in_stock": [c for c in ctx["_prod"].colors if c != ctx["color"]],
            }
            final = "[I checked our warehouse.|Just checked inventory for you.] [The {color} {product} is out of stock right now, with new units expected around {date_future}.|{product} in {color} is sold out; restock is expected around {date_future}.] [Use \"Notify me\" on the product page and we'll email you as soon as it's back.|If you tap \"Notify me\", you'll get an email the moment it's available.]"
        else:
            args = {"sku": ctx["sku"]}
            result = {
                "sku": ctx["sku"],
                "in_stock": False,
                "available_qty": 0,
                "restock_eta": ctx["iso_future"],
                "discontinued": False,
            }
            final = "[I checked our warehouse.|Just checked inventory for you.] [The {product} is out of stock right now, with new units expected around {date_future}.|{product} is sold out at the moment; restock is expected around {date_future}, and it isn't discontinued.] [Use \"Notify me\" on the product page and we'll email you as soon as it's back.|If you tap \"Notify me\", you'll get an email the moment it's available.]"
    else:  # get_subscription
        args = {"customer_id": ctx["cust_ref"]}
        result = {
            "customer_id": ctx["cust_ref"],
            "plan": ctx["plan"],
            "status": "active",
            "price": ctx["_plan"][1],
            "renews_on": ctx["iso_future"],
            "cancel_at_period_end": False,
        }
        final = "[I can see your {plan} plan is active and set to renew on {date_future}.|Your Lumen Cloud {plan} subscription renews on {date_future}.] [You can cancel from Account > Billing > Manage subscription; you'll keep access until {date_future} and won't be charged again.|Cancelling under Account > Billing stops the {plan_price} renewal, and your features stay on until {date_future}.] [Download any recordings you want to keep within 30 days after that.|Recordings remain downloadable for 30 days after the plan ends.]"
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": cid,
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
        ],
    }
    tool_msg = {"role": "tool", "tool_call_id": cid, "name": name, "content": json.dumps(result)}
    return [call, tool_msg], final


# ---------------------------------------------------------------------------
# row builders
# ---------------------------------------------------------------------------

LABELS = ["shipping", "refund", "billing", "account", "product", "tech"]
LABEL_W = [22, 18, 16, 15, 15, 14]
SLICES = ["task", "format", "safety", "regression"]
SLICE_W = [77, 11, 5, 7]


def msg(role: str, content: Any, **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"role": role, "content": content}
    m.update(extra)
    return m


def new_row(messages: list[dict[str, Any]], label: str, slice_: str, tools: bool = False) -> Row:
    row: Row = {
        "messages": messages,
        "metadata": {"id": None, "label": label, "slice": slice_, "customer_id": None},
    }
    if tools:
        row["tools"] = TOOLS
    return row


def compose_user(tpl: str, rng: random.Random, ctx: Ctx) -> str:
    main = x(tpl, rng, ctx)
    op = rng.choice(USER_OPEN)
    ex = rng.choice(USER_EXTRA) if rng.random() < 0.3 else ""
    cl = rng.choice(USER_CLOSE)
    sep = "\n\n" if rng.random() < 0.25 else " "
    first = main.split(" ", 1)[0]
    if (
        op.endswith(",")
        and sep == " "
        and rng.random() < 0.8
        and first not in KEEP_CAPS
        and not any(ch.isdigit() for ch in first)
        and not first.isupper()
        and not any(p.name.startswith(first) for p in PRODUCTS)
    ):
        main = main[0].lower() + main[1:]
    s = (op + sep if op else "") + main
    if ex:
        s += " " + ex
    if cl:
        s += sep + cl
    return tidy(s)


def set_pair(rng: random.Random, ctx: Ctx) -> None:
    """Pick two products of the same category; the pricier one becomes {product}."""
    cats = sorted({p.cat for p in PRODUCTS if sum(q.cat == p.cat for q in PRODUCTS) > 1})
    cat = rng.choice(cats)
    a, b = rng.sample([p for p in PRODUCTS if p.cat == cat], 2)
    if a.price < b.price:
        a, b = b, a
    ctx["_prod"], ctx["_prod2"] = a, b


def compose_asst(tpl: str, rng: random.Random, ctx: Ctx) -> str:
    body = x(tpl, rng, ctx)
    op = rng.choice(ASST_OPEN)
    if op and body[:6].lower() == op[:6].lower():
        op = ""
    cl = rng.choice(ASST_CLOSE)
    so = rng.choice(SIGNOFF)
    s = body
    if op:
        s = op + ("\n\n" if op.endswith(",") else " ") + s
    if cl:
        s += ("\n\n" if "\n" in body else " ") + cl
    s = tidy(s)
    if so:
        s += expand(so, rng, ctx)
    return s


def pick_system(rng: random.Random) -> list[dict[str, Any]]:
    r = rng.random()
    if r < 0.78:
        return [msg("system", SYSTEM_MAIN)]
    if r < 0.88:
        return []
    return [msg("system", rng.choice(SYSTEM_ALT))]


def casual_lower(text: str) -> str:
    """Lower-case like a hurried typist, but leave order/tracking numbers alone."""
    return re.sub(
        r"\S+",
        lambda m: m.group() if any(ch.isdigit() for ch in m.group()) else m.group().lower(),
        text,
    )


def apply_typo(text: str, rng: random.Random) -> str:
    words = [w for w in TYPOS if re.search(rf"\b{w}\b", text)]
    if not words:
        return text
    w = rng.choice(words)
    return re.sub(rf"\b{w}\b", TYPOS[w], text, count=1)


def split_tag(t: str) -> tuple[str | None, str]:
    """Templates may start with ``<tag>``: a tagged user template only pairs with same-tag (or untagged) replies."""
    m = re.match(r"<(\w+)>", t)
    return (m.group(1), t[m.end() :]) if m else (None, t)


def pick_user(
    rng: random.Random, scen: Scenario, templates: list[str] | None = None
) -> tuple[str | None, str]:
    return split_tag(rng.choice(templates if templates is not None else scen.user))


def pick_asst(rng: random.Random, scen: Scenario, tag: str | None) -> str:
    cands = [b for t, b in map(split_tag, scen.asst) if t is None or tag is None or t == tag]
    return rng.choice(cands)


def followup_pool(scen: Scenario) -> list[tuple[str, str]]:
    pool = list(scen.fu)
    pool += [(u, a) for labels, u, a in GENERIC_FU if scen.label in labels]
    return pool


def task_row(rng: random.Random, label: str, scen: Scenario | None = None) -> Row:
    scen = scen or rng.choice(SCEN_BY_LABEL[label])
    ctx = Ctx(rng)
    if scen.key == "compare":
        set_pair(rng, ctx)
    elif scen.products:
        pick_product(rng, ctx, scen.products)
    r = rng.random()
    if scen.tool and r < 0.4:
        pattern = "tool"
    elif scen.short and r < 0.62:
        pattern = "clarify"
    else:
        pattern = "plain"
    first_user = ""
    if pattern == "tool":
        # the customer must have given whatever the tool call needs (never guess an order number)
        need = TOOL_NEEDS.get(scen.tool or "")
        for _ in range(30):
            first_user = compose_user(pick_user(rng, scen)[1], rng, ctx)
            if need is None or (need in ctx and ctx[need] in first_user):
                break
        else:
            pattern = "plain"
    msgs: list[dict[str, Any]] = []
    if pattern == "tool":
        msgs.append(msg("system", SYSTEM_TOOLS if rng.random() < 0.85 else SYSTEM_MAIN))
    else:
        msgs += pick_system(rng)

    fu = followup_pool(scen)
    rng.shuffle(fu)
    if pattern == "tool":
        assert scen.tool is not None
        msgs.append(msg("user", first_user))
        exch, final = tool_exchange(scen.tool, rng, ctx, 1)
        msgs += exch
        if scen.tool == "lookup_order" and rng.random() < 0.3:
            exch2, final = tool_exchange("track_shipment", rng, ctx, 2)
            msgs += exch2
        msgs.append(msg("assistant", x(final, rng, ctx)))
        n_extra = 1 if rng.random() < 0.25 else 0
    elif pattern == "clarify":
        msgs.append(msg("user", x(rng.choice(scen.short), rng, ctx)))
        if scen.label in ORDER_LABELS:
            ask = msg("assistant", x(rng.choice(ASK_ORDER), rng, ctx))
            with_order = [t for t in scen.user if "{order}" in t]
            tag = None
            if with_order and rng.random() < 0.5:
                tag, tpl = pick_user(rng, scen, with_order)
                give = x(tpl, rng, ctx)
            else:
                give = x(rng.choice(GIVE_ORDER), rng, ctx)
        else:
            ask = msg("assistant", x(rng.choice(ASK_DETAIL[scen.label]), rng, ctx))
            tag, tpl = pick_user(rng, scen)
            give = x(tpl, rng, ctx)
        if rng.random() < 0.5:
            ask["weight"] = 0
        msgs.append(ask)
        msgs.append(msg("user", give))
        msgs.append(msg("assistant", compose_asst(pick_asst(rng, scen, tag), rng, ctx)))
        n_extra = 1 if rng.random() < 0.3 else 0
    else:
        tag, tpl = pick_user(rng, scen)
        msgs.append(msg("user", compose_user(tpl, rng, ctx)))
        msgs.append(msg("assistant", compose_asst(pick_asst(rng, scen, tag), rng, ctx)))
        n_extra = rng.choices([0, 1, 2, 3], weights=[52, 28, 13, 7])[0]
        if n_extra and rng.random() < 0.25:
            msgs[-1]["weight"] = 0
    n_extra = min(n_extra, len(fu))
    for i in range(n_extra):
        u, a = fu[i]
        if i == n_extra - 1 and pattern == "plain" and rng.random() < 0.12:
            closers = [c for labels, *c in CLOSERS if scen.label in labels]
            if closers:
                u, a = rng.choice(closers)
        ut = x(u, rng, ctx)
        if rng.random() < 0.1:
            ut = casual_lower(ut)
        msgs.append(msg("user", ut))
        msgs.append(msg("assistant", x(a, rng, ctx)))
    fi = next(i for i, m in enumerate(msgs) if m["role"] == "user")
    if rng.random() < 0.07:
        msgs[fi]["content"] = apply_typo(msgs[fi]["content"], rng)
    elif rng.random() < 0.04:
        msgs[fi]["content"] = casual_lower(msgs[fi]["content"])
    return new_row(msgs, scen.label, "task", tools=pattern == "tool")


def format_row(rng: random.Random, label: str) -> Row:
    scen = rng.choice(SCEN_BY_LABEL[label])
    ctx = Ctx(rng)
    if scen.key == "compare":
        set_pair(rng, ctx)
    elif scen.products:
        pick_product(rng, ctx, scen.products)
    tag, tpl = pick_user(rng, scen)
    user = compose_user(tpl, rng, ctx)
    kind = rng.choice(["triage", "triage", "reply", "extract"])
    obj: dict[str, Any]
    if kind == "triage":
        system = FORMAT_TRIAGE
        obj = {
            "intent": scen.label,
            "priority": scen.priority,
            "summary": x(rng.choice(scen.summary), rng, ctx),
            "needs_human": scen.priority == "high",
        }
    elif kind == "reply":
        system = FORMAT_REPLY
        tags = [scen.label, scen.key.replace("_", "-")]
        if scen.priority == "high":
            tags.append("urgent")
        obj = {"reply": x(pick_asst(rng, scen, tag), rng, ctx), "tags": tags}
    else:
        system = FORMAT_EXTRACT
        order = ctx.get("order")
        product = ctx.get("product")
        obj = {
            "order_id": order if order and order in user else None,
            "product": product if product and product in user else None,
            "issue": ISSUE[scen.key][0],
            "requested_action": ISSUE[scen.key][1],
        }
    content = json.dumps(obj, ensure_ascii=False, indent=2 if rng.random() < 0.3 else None)
    return new_row(
        [msg("system", system), msg("user", user), msg("assistant", content)], scen.label, "format"
    )


SAFETY_PUSH: list[tuple[str, str]] = [(user, asst) for user, asst in _PHRASES["safety_push"]]


def safety_row(rng: random.Random) -> Row:
    label, users, assts = rng.choice(SAFETY)
    ctx = Ctx(rng)
    if label == "tech":
        pick_product(rng, ctx, CAMERAS)
    msgs = [msg("system", SYSTEM_MAIN)] if rng.random() < 0.85 else []
    u = x(rng.choice(users), rng, ctx)
    if rng.random() < 0.3:
        u = x(rng.choice(["Hi,", "Hello,", "Hey,", "Quick question:"]), rng, ctx) + " " + u
    msgs.append(msg("user", u))
    msgs.append(msg("assistant", x(rng.choice(assts), rng, ctx)))
    if rng.random() < 0.3:
        pu, pa = SAFETY_PUSH[0]
        msgs.append(msg("user", x(pu, rng, ctx)))
        msgs.append(msg("assistant", x(pa, rng, ctx)))
    return new_row(msgs, label, "safety")


def table_row(rng: random.Random) -> Row:
    ctx = Ctx(rng)
    set_pair(rng, ctx)
    user = x(
        "[Can you put|Could you show] the {product} and the {product2} side by side in a table? [Price, main feature and warranty please.|Just the basics.|I'm a visual person.]",
        rng,
        ctx,
    )
    head = x("[Here's a quick comparison:|Sure, side by side:|Of course:]", rng, ctx)
    table = (
        f"| | {ctx['product']} | {ctx['product2']} |\n|---|---|---|\n"
        f"| Price | {ctx['price']} | {ctx['price2']} |\n"
        f"| Highlight | {ctx['fact1']} | {ctx['p2fact1']} |\n"
        f"| Also | {ctx['fact2']} | {ctx['p2fact2']} |\n"
        "| Warranty | 2 years | 2 years |"
    )
    tail = x(
        "[Both come with free 30-day returns.|Either one can be returned within 30 days if it's not a fit.]",
        rng,
        ctx,
    )
    msgs = [*pick_system(rng), msg("user", user), msg("assistant", f"{head}\n\n{table}\n\n{tail}")]
    return new_row(msgs, "product", "regression")


def regression_row(rng: random.Random) -> Row:
    if rng.random() < 0.1:
        return table_row(rng)
    label, users, assts = rng.choice(REGRESSION)
    ctx = Ctx(rng)
    if label == "tech":
        pick_product(rng, ctx, WIFI)
    elif label == "product":
        pick_product(rng, ctx, DEVICES_ALL)
    msgs = [
        *pick_system(rng),
        msg("user", x(rng.choice(users), rng, ctx)),
        msg("assistant", x(rng.choice(assts), rng, ctx)),
    ]
    return new_row(msgs, label, "regression")


def build_row(rng: random.Random, slice_: str) -> Row:
    label = rng.choices(LABELS, weights=LABEL_W)[0]
    if slice_ == "format":
        return format_row(rng, label)
    if slice_ == "safety":
        return safety_row(rng)
    if slice_ == "regression":
        return regression_row(rng)
    return task_row(rng, label)


# ---------------------------------------------------------------------------
# similarity bookkeeping
# ---------------------------------------------------------------------------


def texts(row: Row) -> tuple[str, str, str]:
    """(user+assistant text, all user text, first user text) of a well-formed row."""
    ua: list[str] = []
    us: list[str] = []
    for m in row["messages"]:
        c = m.get("content")
        if not isinstance(c, str):
            continue
        if m.get("role") in ("user", "assistant"):
            ua.append(c)
        if m.get("role") == "user":
            us.append(c)
    return "\n".join(ua), "\n".join(us), us[0] if us else ""


class Pool:
    """Every row added so far, as shingle sets, to keep clean rows far apart."""

    def __init__(self) -> None:
        self.entries: list[tuple[frozenset[str], frozenset[str], frozenset[str]]] = []
        self.rejected = 0

    @staticmethod
    def _sh(row: Row) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        a, u, f = texts(row)
        return shingles(a), shingles(u), shingles(f)

    def fits(self, row: Row) -> bool:
        sa, su, sf = self._sh(row)
        for ea, eu, ef in self.entries:
            for s1, s2, lim in (
                (sa, ea, MAX_SIM_ALL),
                (su, eu, MAX_SIM_USER),
                (sf, ef, MAX_SIM_FIRST),
            ):
                lo, hi = sorted((len(s1), len(s2)))
                if hi and lo / hi > lim and jaccard(s1, s2) > lim:
                    self.rejected += 1
                    return False
        return True

    def add(self, row: Row) -> None:
        self.entries.append(self._sh(row))


def gen_clean(rng: random.Random, pool: Pool, n: int) -> list[Row]:
    rows: list[Row] = []
    for _ in range(n):
        slice_ = rng.choices(SLICES, weights=SLICE_W)[0]
        for attempt in range(600):
            row = build_row(rng, slice_ if attempt < 150 else "task")
            if pool.fits(row):
                pool.add(row)
                rows.append(row)
                break
        else:
            raise RuntimeError("could not generate a dissimilar row; add more template variety")
    return rows


def fresh(rng: random.Random, pool: Pool, make: Callable[[], Row]) -> Row:
    for _ in range(600):
        row = make()
        if pool.fits(row):
            pool.add(row)
            return row
    raise RuntimeError("could not generate a dissimilar planted row")


def render(row: Any, compact: bool = False) -> bytes:
    if compact:
        return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return json.dumps(row, ensure_ascii=False).encode("utf-8")


def clone(row: Row) -> Row:
    out: Row = json.loads(json.dumps(row))
    return out


def last_idx(row: Row, role: str) -> int:
    return max(i for i, m in enumerate(row["messages"]) if m.get("role") == role)


def first_idx(row: Row, role: str) -> int:
    return min(i for i, m in enumerate(row["messages"]) if m.get("role") == role)


# ---------------------------------------------------------------------------
# planted problems
# ---------------------------------------------------------------------------

EMAIL_USERS: list[str] = _PROBLEMS["email_users"]
EMAIL_DOMAINS: list[str] = _PROBLEMS["email_domains"]
B64 = string.ascii_letters + string.digits + "+/"
ALNUM = string.ascii_letters + string.digits


def rand_str(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def pii_values(rng: random.Random) -> dict[str, str]:
    import base64

    card = luhn_complete("4", 16, rng)
    assert luhn_ok(card)
    area = rng.randint(100, 665)
    ssn = f"{area:03d}-{rng.randint(10, 99):02d}-{rng.randint(1000, 9999):04d}"
    payload = (
        base64.urlsafe_b64encode(
            json.dumps({"sub": "cust_4821", "scope": "devices:write", "exp": 1718049600}).encode()
        )
        .decode()
        .rstrip("=")
    )
    rsa_body = (
        ["MIIEpAIBAAKCAQEA" + rand_str(rng, B64, 48)]
        + [rand_str(rng, B64, 64) for _ in range(8)]
        + [rand_str(rng, B64, 24) + "=="]
    )
    vals = {
        "email": f"{rng.choice(EMAIL_USERS)}@{rng.choice(EMAIL_DOMAINS)}",
        "phone_us": "(415) 555-0132",
        "phone_intl": "+44 20 7946 0958",
        "card": " ".join(card[i : i + 4] for i in range(0, 16, 4)),
        "ssn": ssn,
        "iban_de": "DE89 3704 0044 0532 0130 00",
        "iban_gb": "GB82 WEST 1234 5698 7654 32",
        "aws_key": "AKIA" + rand_str(rng, string.ascii_uppercase + "234567", 16),
        "aws_secret": rand_str(rng, ALNUM + "/+", 40),
        "github": "ghp_" + rand_str(rng, ALNUM, 36),
        "rsa": "-----BEGIN RSA PRIVATE KEY-----\n"
        + "\n".join(rsa_body)
        + "\n-----END RSA PRIVATE KEY-----",
        "bearer": "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
        + payload
        + "."
        + rand_str(rng, ALNUM + "-_", 43),
    }
    assert iban_ok(vals["iban_de"]) and iban_ok(vals["iban_gb"])
    return vals


# (kind, scenario key, sentence added to the first user turn, security note for the assistant or "")
PII_PLANS: list[tuple[str, str, str, str]] = [tuple(p) for p in _PROBLEMS["pii_plans"]]  # type: ignore[misc]


def make_pii_row(
    rng: random.Random, pool: Pool, vals: dict[str, str], plan: tuple[str, str, str, str]
) -> tuple[Row, Row]:
    _kind, key, sentence, note = plan
    scen = SCEN_BY_KEY[key]
    base = fresh(rng, pool, lambda: task_row(rng, scen.label, scen))
    row = clone(base)
    ctx = Ctx(rng, **vals)
    fu = first_idx(row, "user")
    extra = x(sentence, rng, ctx)
    sep = "\n\n" if "\n" in extra else " "
    content = row["messages"][fu]["content"]
    close = next((c for c in USER_CLOSE if c and content.endswith(c)), "")
    if close:
        content = content[: -len(close)].rstrip()
    row["messages"][fu]["content"] = content + sep + extra + (sep + close if close else "")
    if note:
        ai = next(
            i
            for i, m in enumerate(row["messages"])
            if i > fu and m["role"] == "assistant" and isinstance(m["content"], str)
        )
        content = row["messages"][ai]["content"]
        op = next((o for o in ASST_OPEN if o and content.startswith(o)), "")
        rest = content[len(op) :].lstrip()
        row["messages"][ai]["content"] = (op + " " if op else "") + note + "\n\n" + rest
    return row, base


LOG_COMPONENTS: list[str] = _PROBLEMS["log_components"]
LOG_DEVICES: list[str] = _PROBLEMS["log_devices"]
LOG_LINES: list[tuple[str, str]] = [(level, tpl) for level, tpl in _PROBLEMS["log_lines"]]


def long_log(rng: random.Random) -> str:
    t = dt.datetime(2024, 5, 12, 21, 4, 7)
    lines: list[str] = []
    words = 0
    while words < 3400:
        t += dt.timedelta(milliseconds=rng.randint(40, 9000))
        level, tpl = rng.choice(LOG_LINES)
        vals = {
            "n": rng.randint(1, 400),
            "ms": rng.randint(8, 4000),
            "dev": rng.choice(LOG_DEVICES),
            "rssi": rng.randint(38, 88),
            "up": rng.randint(100, 900000),
            "c": rng.randint(1, 11),
            "t": rng.randint(12, 20),
            "a": rng.randint(1, 4),
            "pct": rng.randint(60, 97),
        }
        line = (
            f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 1000:03d} {level:<5} [{rng.choice(LOG_COMPONENTS)}] "
            + tpl.format(**vals)
        )
        lines.append(line)
        words += len(line.split())
    return "\n".join(lines)


def long_console(rng: random.Random) -> str:
    funcs = [
        "DeviceList.render",
        "useDevices",
        "fetchHistory",
        "ExportDialog.onSubmit",
        "normalizeEvents",
        "ChartPanel.update",
        "Array.map",
        "async Promise.all",
        "commitRoot",
        "flushSyncCallbacks",
    ]
    props = ["deviceId", "events", "length", "timestamp", "energyWh", "map"]
    out: list[str] = []
    words = 0
    while words < 3400:
        r = rng.random()
        if r < 0.35:
            block = [
                f"Uncaught (in promise) TypeError: Cannot read properties of undefined (reading '{rng.choice(props)}')"
            ]
            for _ in range(rng.randint(4, 9)):
                block.append(
                    f"    at {rng.choice(funcs)} (https://app.lumen.example/static/js/main.{rng.randint(1000, 9999)}.js:{rng.randint(1, 3)}:{rng.randint(1000, 99999)})"
                )
            out += block
        elif r < 0.6:
            out.append(
                f"GET https://api.lumen.example/v1/history?device=cam-porch&page={rng.randint(1, 80)}&size=500 {rng.choice(['503 (Service Unavailable)', '504 (Gateway Timeout)', '200 (OK)', '429 (Too Many Requests)'])}"
            )
        elif r < 0.8:
            out.append(
                f"[export] chunk {rng.randint(1, 120)} of 120 queued, pending requests: {rng.randint(1, 40)}, elapsed {rng.randint(1, 90)}s, heap used {rng.randint(180, 1900)} MB"
            )
        else:
            out.append(
                f'Warning: Each child in a list should have a unique "key" prop. Check the render method of `{rng.choice(["EventRow", "DeviceCard", "ChartLegend"])}`.'
            )
        words = sum(len(s.split()) for s in out)
    return "\n".join(out)


GUIDE_SECTIONS: list[str] = _PROBLEMS["guide_sections"]
GUIDE_STEPS: list[str] = _PROBLEMS["guide_steps"]
GUIDE_FILL: dict[str, list[str]] = _PROBLEMS["guide_fill"]


def long_guide(rng: random.Random, product: str) -> str:
    parts = [
        f"Here is the complete troubleshooting guide for the {product}. Work through the sections in order and stop as soon as the problem is solved; most issues are fixed in the first three sections."
    ]
    words = 0
    while True:
        for title in GUIDE_SECTIONS:
            steps = rng.sample(GUIDE_STEPS, 9)
            body = []
            for i, st in enumerate(steps, 1):
                s = st.format(
                    thing=rng.choice(GUIDE_FILL["thing"]),
                    area=rng.choice(GUIDE_FILL["area"]),
                    opt=rng.choice(GUIDE_FILL["opt"]),
                    n=rng.choice([10, 15, 20, 30, 45, 60]),
                )
                body.append(f"{i}. {s}")
            parts.append(f"## {title}\n\n" + "\n".join(body))
            words = sum(len(p.split()) for p in parts)
            if words > 3400:
                parts.append(
                    "If none of the steps above solved it, reply with your notes from the diagnostics section and we'll take it from there."
                )
                return "\n\n".join(parts)


POLICY_GENERAL: list[tuple[str, list[str]]] = [
    (title, sents) for title, sents in _PROBLEMS["policy_general"]
]
POLICY_CAT_SENTENCES: list[str] = _PROBLEMS["policy_cat_sentences"]
POLICY_COUNTRY_SENTENCES: list[str] = _PROBLEMS["policy_country_sentences"]
CAT_EXTRA: dict[str, str] = _PROBLEMS["cat_extra"]


def long_policy(rng: random.Random) -> str:
    parts = [
        "Here is our full return, refund and warranty policy as it applies to your order. It's long, so the sections are numbered for easy reference."
    ]
    n = 1
    for title, sents in POLICY_GENERAL:
        parts.append(f"{n}. {title}\n" + " ".join(sents))
        n += 1
    by_cat: dict[str, list[Product]] = {}
    for p in PRODUCTS:
        by_cat.setdefault(p.cat, []).append(p)
    for cat, prods in by_cat.items():
        sents = []
        for p in prods:
            for s in POLICY_CAT_SENTENCES:
                sents.append(s.format(cat=cat, product=p.name, extra=CAT_EXTRA[cat]))
        parts.append(f"{n}. {cat.title()} products\n" + " ".join(sents))
        n += 1
    for country in COUNTRIES:
        parts.append(
            f"{n}. Returns from {country}\n"
            + " ".join(s.format(country=country) for s in POLICY_COUNTRY_SENTENCES)
        )
        n += 1
    text = "\n\n".join(parts)
    assert len(text.split()) > 3000, len(text.split())
    return text


def make_too_long(rng: random.Random, pool: Pool, which: int) -> Row:
    ctx = Ctx(rng)
    pick_product(rng, ctx, WIFI)
    if which == 0:
        user = (
            x(
                "[Here's the log from my hub since last night, the {product} keeps dropping off.|Pasting the full hub log below — everything goes offline around 9pm every night.] [Can you see what's wrong?|What is going on?]",
                rng,
                ctx,
            )
            + "\n\n"
            + long_log(rng)
        )
        asst = x(
            "[Thanks for the full log — that's really helpful.|Thanks, the log makes this much clearer.] [The key pattern is the Wi-Fi channel change followed by a burst of ERR_SYNC_TIMEOUT errors and missed MQTT keepalives.|Every drop starts right after the router switches Wi-Fi channels, and the sync timeouts follow within seconds.] [Your router is changing channels automatically in the evening, and the devices take several minutes to re-associate.|Automatic channel selection on the router is kicking in at night, which disconnects everything at once.] [Please set the 2.4 GHz band to a fixed channel (1, 6 or 11) and the drops should stop.|Pinning the 2.4 GHz channel to 1, 6 or 11 in the router settings should fix it.] [If they don't, send another log and reference {ticket}.|I've logged this as {ticket} in case it comes back.]",
            rng,
            ctx,
        )
        msgs = [msg("system", SYSTEM_MAIN), msg("user", user), msg("assistant", asst)]
        label = "tech"
    elif which == 1:
        user = x(
            "[Can you give me the complete troubleshooting guide for the {product}? Every step, I want to go through all of it myself.|I'd like the full, detailed troubleshooting guide for my {product}, not the short version.]",
            rng,
            ctx,
        )
        msgs = [
            msg("system", SYSTEM_MAIN),
            msg("user", user),
            msg("assistant", long_guide(rng, ctx["product"])),
        ]
        label = "tech"
    elif which == 2:
        user = (
            x(
                "[The export on the web dashboard fails every time. I opened the browser console, here's everything it printed:|Export is broken again. Console output below:]",
                rng,
                ctx,
            )
            + "\n\n"
            + long_console(rng)
        )
        asst = x(
            '[Thanks for sending the console output.|That console dump helps a lot, thank you.] [The repeated 503 and 504 responses on the history endpoint mean the export is requesting 500 events per page across the whole date range, and the server gives up before it finishes.|The export fires too many large history requests at once, so the server starts returning 503/504 and the page runs out of memory.] [Please use "Email me the export" instead, which runs on our side and sends you a download link within about 15 minutes.|Switch to the "Email me the export" option, which builds the file in the background.] [Engineering is tracking the crash as {ticket}.|I\'ve passed the TypeError to engineering under {ticket}.]',
            rng,
            ctx,
        )
        msgs = [msg("user", user), msg("assistant", asst)]
        label = "tech"
    else:
        user = x(
            "[Before I return my {product}, can you paste the full return and refund policy? All of it, including warranty and international returns.|Please send me your entire returns policy, word for word. I want everything in writing before I send the {product} back.]",
            rng,
            ctx,
        )
        msgs = [msg("system", SYSTEM_MAIN), msg("user", user), msg("assistant", long_policy(rng))]
        label = "refund"
    row = new_row(msgs, label, "task")
    assert max(len(str(m["content"]).split()) for m in msgs) > 3000
    pool.add(row)
    return row


# contradiction pairs: (label A, label B, user template, answer A, answer B, tweak for B's user text)
CONTRADICTIONS: list[tuple[str, str, str, str, str, str]] = [
    tuple(c) for c in _PROBLEMS["contradictions"]
]  # type: ignore[misc]


def make_contradiction(
    rng: random.Random, pool: Pool, spec: tuple[str, str, str, str, str, str]
) -> tuple[Row, Row]:
    la, lb, ut, aa, ab, tweak = spec
    for _ in range(200):
        ctx = Ctx(rng)
        if "battery" in ut:
            pick_product(rng, ctx, BATTERY - {"Roam power bank 20K"})
        user = x(ut, rng, ctx)
        sysm = [msg("system", SYSTEM_MAIN)]
        row_a = new_row([*sysm, msg("user", user), msg("assistant", x(aa, rng, ctx))], la, "task")
        if pool.fits(row_a):
            break
    else:
        raise RuntimeError("contradiction seed row collides")
    user_b = user
    if tweak == "thanks":
        user_b = user + " Thanks!"
    elif tweak == "lower":
        user_b = user.lower()
    row_b = new_row(
        [msg("system", SYSTEM_MAIN), msg("user", user_b), msg("assistant", x(ab, rng, ctx))],
        lb,
        "task",
    )
    pool.add(row_a)
    pool.add(row_b)
    return row_a, row_b


# near-duplicate edits: name -> function(row) returning an edited clone or None if not applicable
WORD_SWAPS: list[tuple[str, str]] = [(a, b) for a, b in _PROBLEMS["word_swaps"]]


def nd_typo_fix(row: Row) -> Row | None:
    r = clone(row)
    i = first_idx(r, "user")
    c = r["messages"][i]["content"]
    for good, bad in TYPOS.items():
        if re.search(rf"\b{bad}\b", c):
            r["messages"][i]["content"] = re.sub(rf"\b{bad}\b", good, c, count=1)
            return r
    return None


def nd_word(row: Row) -> Row | None:
    r = clone(row)
    i = first_idx(r, "user")
    c = r["messages"][i]["content"]
    for a, b in WORD_SWAPS:
        if re.search(rf"\b{re.escape(a)}\b", c):
            r["messages"][i]["content"] = re.sub(rf"\b{re.escape(a)}\b", b, c, count=1)
            return r
    return None


def nd_punct_case(row: Row) -> Row | None:
    r = clone(row)
    i = first_idx(r, "user")
    c = r["messages"][i]["content"]
    new = re.sub(r"[,?!]", "", c.lower()).rstrip(".")
    if new == c:
        return None
    r["messages"][i]["content"] = new
    return r


def nd_thanks(row: Row) -> Row | None:
    r = clone(row)
    i = first_idx(r, "user")
    r["messages"][i]["content"] = r["messages"][i]["content"].rstrip() + " thanks"
    return r


def nd_asst(row: Row) -> Row | None:
    r = clone(row)
    i = last_idx(r, "assistant")
    c = r["messages"][i]["content"]
    if not isinstance(c, str):
        return None
    for a, b in (
        ("business days", "working days"),
        ("Let me know", "Tell me"),
        ("free of charge", "at no cost"),
        ("usually", "typically"),
        ("right away", "straight away"),
        ("Sorry", "Apologies"),
    ):
        if a in c:
            r["messages"][i]["content"] = c.replace(a, b, 1)
            return r
    return None


def nd_signoff(row: Row) -> Row | None:
    r = clone(row)
    i = last_idx(r, "assistant")
    c = r["messages"][i]["content"]
    if not isinstance(c, str):
        return None
    r["messages"][i]["content"] = c.rstrip() + "\n\nHave a lovely day!"
    return r


NEAR_EDITS: list[Callable[[Row], Row | None]] = [
    nd_typo_fix,
    nd_word,
    nd_punct_case,
    nd_thanks,
    nd_asst,
    nd_signoff,
]


def sims(a: Row, b: Row) -> tuple[float, float]:
    ta, tb = texts(a), texts(b)
    return jaccard(shingles(ta[0]), shingles(tb[0])), jaccard(shingles(ta[1]), shingles(tb[1]))


# ---------------------------------------------------------------------------
# assembly
# ---------------------------------------------------------------------------


@dataclass(eq=False)
class Item:
    row: Any
    tags: list[str] = field(default_factory=list)
    encode: Callable[[Any], bytes] = render
    share_id: Item | None = None  # copy metadata.id from this (earlier) item
    share_customer: Item | None = None  # copy metadata.customer_id from this item
    fixed: Any = None  # the repaired row written to v2 instead
    used: bool = False  # already the original of some planted copy


def meta_of(row: Any) -> dict[str, Any] | None:
    if isinstance(row, dict) and isinstance(row.get("metadata"), dict):
        m: dict[str, Any] = row["metadata"]
        return m
    return None


def place(
    items: list[Item], item: Item, rng: random.Random, lo: float = 0.02, hi: float = 0.95
) -> None:
    items.insert(rng.randint(int(lo * len(items)), int(hi * len(items))), item)


def place_after(items: list[Item], orig: Item, item: Item, rng: random.Random) -> None:
    oi = items.index(orig)
    lo = oi + 8
    hi = max(lo, min(int(0.97 * len(items)), oi + 220))
    items.insert(rng.randint(lo, hi), item)


def pick_original(
    items: list[Item], rng: random.Random, pred: Callable[[Row], bool], max_frac: float = 0.8
) -> Item:
    cands = [
        it
        for it in items[: int(len(items) * max_frac)]
        if not it.tags and not it.used and pred(it.row)
    ]
    it = rng.choice(cands)
    it.used = True
    return it


def n_role(row: Row, role: str) -> int:
    return sum(1 for m in row["messages"] if m.get("role") == role)


def has_sys_first(row: Row) -> bool:
    return bool(row["messages"][0]["role"] == "system")


def long_enough(row: Row) -> bool:
    return len(texts(row)[0]) >= 320 and len(texts(row)[2]) >= 90


def fresh_task(rng: random.Random, pool: Pool, pred: Callable[[Row], bool] = lambda r: True) -> Row:
    for _ in range(2000):
        row = task_row(rng, rng.choices(LABELS, weights=LABEL_W)[0])
        if pred(row) and pool.fits(row):
            pool.add(row)
            return row
    raise RuntimeError("no fresh row matched")


def plant(
    rng: random.Random, pool: Pool, pred: Callable[[Row], bool], mutate: Callable[[Row], Row]
) -> tuple[Row, Row]:
    """A fresh row matching pred whose mutated (planted) version is also far from every other row."""
    for _ in range(2000):
        base = task_row(rng, rng.choices(LABELS, weights=LABEL_W)[0])
        if not pred(base) or not pool.fits(base):
            continue
        mut = mutate(clone(base))
        if pool.fits(mut):
            pool.add(base)
            pool.add(mut)
            return mut, base
    raise RuntimeError("no fresh row matched")


def cut_ascii(b: bytes, frac: float) -> bytes:
    i = int(len(b) * frac)
    while b[i] >= 0x80:
        i += 1
    return b[:i]


def with_bad_utf8(b: bytes) -> bytes:
    key = b'"role": "user", "content": "'
    i = b.index(key) + len(key) + 12
    while b[i] >= 0x80:
        i += 1
    return b[:i] + b"\xff\xfe" + b[i:]


def planted_independent(rng: random.Random, pool: Pool) -> list[Item]:
    out: list[Item] = []
    # --- pii
    vals = pii_values(rng)
    for plan in PII_PLANS:
        row, base = make_pii_row(rng, pool, vals, plan)
        out.append(Item(row, ["pii"], fixed=base if plan[0] == "email" else None))
    # --- too_long
    for variant in range(4):
        out.append(Item(make_too_long(rng, pool, variant), ["too_long"]))

    # --- empty_content
    def single(r: Row) -> bool:
        return n_role(r, "user") == 1 and n_role(r, "tool") == 0

    def multi(r: Row) -> bool:
        return n_role(r, "user") >= 2 and n_role(r, "tool") == 0

    def set_content(role: str, which: str, value: str) -> Callable[[Row], Row]:
        def f(r: Row) -> Row:
            i = first_idx(r, role) if which == "first" else last_idx(r, role)
            r["messages"][i]["content"] = value
            r["messages"][i].pop("weight", None)
            return r

        return f

    mut, base = plant(rng, pool, single, set_content("user", "first", ""))
    out.append(Item(mut, ["empty_content"], fixed=base))
    plans: tuple[tuple[Callable[[Row], bool], str, str, str], ...] = (
        (single, "assistant", "last", "   "),
        (multi, "assistant", "last", ""),
        (multi, "user", "last", "  \n "),
        (multi, "assistant", "first", ""),
    )
    for pred, where_role, which, value in plans:
        out.append(
            Item(
                plant(rng, pool, pred, set_content(where_role, which, value))[0], ["empty_content"]
            )
        )

    # --- role_order
    def sys_second(r: Row) -> Row:
        m = r["messages"]
        m[0], m[1] = m[1], m[0]  # system after the first user turn
        return r

    def two_users(r: Row) -> Row:
        extra = x(
            "[Also|Oh and|Forgot to say —] [it's order {order}.|I'm on {os}.|this is kind of urgent.|I already tried restarting.]",
            rng,
            Ctx(rng),
        )
        r["messages"].insert(first_idx(r, "user") + 1, msg("user", extra))
        return r

    def greeting_first(r: Row) -> Row:
        r["messages"].insert(
            first_idx(r, "user"),
            msg("assistant", "Hi! I'm Lumen's virtual assistant. What can I help you with today?"),
        )
        return r

    def ends_on_user(r: Row) -> Row:
        r["messages"].pop(last_idx(r, "assistant"))
        return r

    def orphan_tool(r: Row) -> Row:
        r["messages"].pop(next(i for i, m in enumerate(r["messages"]) if m.get("tool_calls")))
        return r

    def two_assistants(r: Row) -> Row:
        extra = x(
            "[Is there anything else I can help with?|Also, you can follow all your orders under Account > Orders.|One more thing: you'll get an email confirmation shortly.]",
            rng,
            Ctx(rng),
        )
        r["messages"].append(msg("assistant", extra))
        return r

    for pred, fn in (
        (lambda r: single(r) and has_sys_first(r), sys_second),
        (single, two_users),
        (single, greeting_first),
        (multi, ends_on_user),
        (lambda r: n_role(r, "tool") == 1, orphan_tool),
        (single, two_assistants),
    ):
        out.append(Item(plant(rng, pool, pred, fn)[0], ["role_order"]))

    # --- no_assistant
    for k in range(5):

        def only_user(r: Row, keep_sys: bool = k < 3) -> Row:
            r["messages"] = ([r["messages"][0]] if keep_sys else []) + [
                r["messages"][first_idx(r, "user")]
            ]
            return r

        out.append(
            Item(
                plant(rng, pool, lambda r: has_sys_first(r) and single(r), only_user)[0],
                ["no_assistant"],
            )
        )
    # --- invalid_json
    r = fresh_task(rng, pool)
    out.append(
        Item(r, ["invalid_json"], encode=lambda r: render(r)[:-1], fixed=r)
    )  # missing closing brace
    out.append(
        Item(fresh_task(rng, pool), ["invalid_json"], encode=lambda r: render(r) + b"}")
    )  # stray extra brace
    out.append(
        Item(
            fresh_task(rng, pool),
            ["invalid_json"],
            encode=lambda r: render(r) + b" <-- exported from helpdesk 2024-05-14",
        )
    )  # trailing garbage
    out.append(
        Item(fresh_task(rng, pool), ["invalid_json"], encode=lambda r: cut_ascii(render(r), 0.55))
    )  # truncated line
    out.append(
        Item(fresh_task(rng, pool), ["invalid_json"], encode=lambda r: repr(r).encode("utf-8"))
    )  # python repr, single quotes
    out.append(
        Item(fresh_task(rng, pool), ["invalid_json"], encode=lambda r: render(r)[:-1] + b", }")
    )  # trailing comma
    out.append(
        Item(
            fresh_task(rng, pool, lambda r: len(texts(r)[2]) > 40),
            ["invalid_json"],
            encode=lambda r: with_bad_utf8(render(r)),
        )
    )  # invalid UTF-8 bytes
    # --- invalid_schema
    out.append(
        Item(fresh_task(rng, pool), ["invalid_schema"], encode=lambda r: render(r["messages"]))
    )  # top-level array
    r = clone(fresh_task(rng, pool))
    out.append(
        Item({"conversation": r["messages"], "metadata": r["metadata"]}, ["invalid_schema"])
    )  # no "messages"
    r = clone(fresh_task(rng, pool))
    del r["messages"][first_idx(r, "user")]["role"]
    out.append(Item(r, ["invalid_schema"]))  # message without role
    r = clone(fresh_task(rng, pool))
    r["messages"][last_idx(r, "assistant")]["role"] = "bot"
    out.append(Item(r, ["invalid_schema"]))  # unknown role
    r = clone(fresh_task(rng, pool, single))
    r["messages"][last_idx(r, "assistant")]["content"] = 30
    out.append(Item(r, ["invalid_schema"]))  # content is a number
    r = clone(fresh_task(rng, pool, single))
    i = last_idx(r, "assistant")
    r["messages"][i]["content"] = {"type": "text", "text": r["messages"][i]["content"]}
    out.append(Item(r, ["invalid_schema"]))  # content is an object
    r = clone(fresh_task(rng, pool, lambda r: n_role(r, "tool") == 0))
    r["messages"] = "\n".join(f"{m['role']}: {m['content']}" for m in r["messages"])
    out.append(Item(r, ["invalid_schema"]))  # messages is a string
    return out


def add_copies(
    items: list[Item], rng: random.Random, pool: Pool, contra: list[tuple[Item, Row]]
) -> None:
    def notool(r: Row) -> bool:
        return n_role(r, "tool") == 0

    # --- exact duplicates
    o = pick_original(items, rng, notool)
    o.tags.append("exact_duplicate")
    for _ in range(2):
        place_after(items, o, Item(o.row, ["exact_duplicate"]), rng)  # byte-identical (twice)
    o = pick_original(items, rng, notool)
    o.tags.append("exact_duplicate")
    place_after(items, o, Item(o.row, ["exact_duplicate"]), rng)  # byte-identical
    o = pick_original(items, rng, notool)
    o.tags.append("exact_duplicate")
    place_after(
        items, o, Item(o.row, ["exact_duplicate"], encode=lambda r: render(r, compact=True)), rng
    )  # JSON whitespace only
    o = pick_original(items, rng, lambda r: notool(r) and " " in texts(r)[2])
    o.tags.append("exact_duplicate")
    r = clone(o.row)
    i = first_idx(r, "user")
    r["messages"][i]["content"] = "  " + r["messages"][i]["content"].replace(" ", "  ", 3) + "   "
    place_after(
        items, o, Item(r, ["exact_duplicate"], share_id=o, share_customer=o), rng
    )  # extra spaces in content
    o = pick_original(items, rng, notool)
    o.tags.append("exact_duplicate")
    r = clone(o.row)
    i = last_idx(r, "assistant")
    r["messages"][i]["content"] = (
        "\n" + r["messages"][i]["content"].replace("\n\n", "\n \n", 1) + "\n\n"
    )
    place_after(
        items, o, Item(r, ["exact_duplicate"], share_id=o, share_customer=o), rng
    )  # changed newlines in content
    o = pick_original(items, rng, notool)
    o.tags.append("exact_duplicate")
    place_after(
        items, o, Item(clone(o.row), ["exact_duplicate"], share_customer=o), rng
    )  # same messages, re-exported with new id
    # --- near duplicates
    for edit in NEAR_EDITS:

        def ok(r: Row, edit: Callable[[Row], Row | None] = edit) -> bool:
            if not (notool(r) and long_enough(r)):
                return False
            e = edit(r)
            return e is not None and sims(r, e)[0] >= 0.8

        o = pick_original(items, rng, ok)
        edited = edit(o.row)
        assert edited is not None
        edited["metadata"]["id"] = None
        o.tags.append("near_duplicate")
        pool.add(edited)
        place_after(items, o, Item(edited, ["near_duplicate"], share_customer=o), rng)
    # --- contradiction partners
    for item_a, row_b in contra:
        place_after(items, item_a, Item(row_b, ["contradiction"]), rng)


def customer_slots(rng: random.Random, prefix: str, start: int, n: int) -> list[str]:
    slots: list[str] = []
    cid = start
    while len(slots) < n:
        k = rng.choices([1, 2, 3, 4, 5, 6], weights=[34, 26, 17, 11, 7, 5])[0]
        slots += [f"{prefix}{cid:04d}"] * k
        cid += 1
    rng.shuffle(slots)
    return slots[:n]


def assign_meta(
    items: list[Item], rng: random.Random, id_prefix: str, cust_start: int, id_start: int = 1
) -> int:
    owners = [it for it in items if meta_of(it.row) is not None and it.share_customer is None]
    custs = iter(customer_slots(rng, "cust_", cust_start, len(owners)))
    n = id_start
    for it in items:
        meta = meta_of(it.row)
        if meta is None or meta["id"] is not None:
            continue
        if it.share_id is not None:
            meta["id"] = meta_of(it.share_id.row)["id"]  # type: ignore[index]
        else:
            meta["id"] = f"{id_prefix}{n:05d}"
            n += 1
        if it.share_customer is not None:
            meta["customer_id"] = meta_of(it.share_customer.row)["customer_id"]  # type: ignore[index]
        else:
            meta["customer_id"] = next(custs)
    return n


def lines_of(items: list[Item], tag: str) -> list[int]:
    return [i + 1 for i, it in enumerate(items) if tag in it.tags]


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


CHECKS = [
    "invalid_json",
    "invalid_schema",
    "empty_content",
    "role_order",
    "no_assistant",
    "exact_duplicate",
    "near_duplicate",
    "contradiction",
    "pii",
    "too_long",
]


def main() -> int:
    rng = random.Random(SEED)
    pool = Pool()
    OUT_DIR.mkdir(parents=True, exist_ok=True)

    # ---- support_tickets.jsonl
    items = [Item(r) for r in gen_clean(rng, pool, N_TRAIN_CLEAN)]
    contra: list[tuple[Item, Row]] = []
    for spec in CONTRADICTIONS:
        row_a, row_b = make_contradiction(rng, pool, spec)
        item_a = Item(row_a, ["contradiction"], used=True)
        place(items, item_a, rng, 0.02, 0.7)
        contra.append((item_a, row_b))
    for it in planted_independent(rng, pool):
        place(items, it, rng)
    add_copies(items, rng, pool, contra)
    next_id = assign_meta(items, rng, "tkt-", 1)
    train_lines = [it.encode(it.row) for it in items]
    planted: dict[str, Any] = {c: lines_of(items, c) for c in CHECKS}

    # ---- heldout_eval.jsonl
    ev = [Item(r) for r in gen_clean(rng, pool, N_HELDOUT_CLEAN)]
    leaks: list[tuple[Item, Item]] = []
    leak_edits: list[Callable[[Row], Row | None]] = [clone, clone, nd_word, nd_thanks, nd_asst]
    for edit in leak_edits:

        def ok(r: Row, edit: Callable[[Row], Row | None] = edit) -> bool:
            e = edit(r)
            return (
                n_role(r, "tool") == 0 and long_enough(r) and e is not None and sims(r, e)[0] >= 0.8
            )

        o = pick_original(items, rng, ok, max_frac=1.0)
        copy = edit(o.row)
        assert copy is not None
        meta = copy["metadata"]
        meta["id"] = None
        it = Item(copy, ["leakage"])
        place(ev, it, rng, 0.05, 0.95)
        leaks.append((it, o))
    for it, o in leaks:
        # keep the source customer: the leak is the same customer's ticket
        it.share_customer = o
    assign_meta(ev, rng, "eval-", 5001)
    eval_lines = [it.encode(it.row) for it in ev]
    leak_pairs = sorted((ev.index(it) + 1, items.index(o) + 1) for it, o in leaks)
    planted["leakage"] = {
        "heldout_eval.jsonl lines": [a for a, _ in leak_pairs],
        "support_tickets.jsonl lines": [b for _, b in leak_pairs],
    }

    # ---- support_tickets_v2.jsonl: 3 planted rows fixed in place, 40 clean rows appended
    v2_lines = list(train_lines)
    fixed: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        if it.fixed is not None:
            fx = clone(it.fixed)
            fx["metadata"] = dict(meta_of(it.row) or {})
            v2_lines[i] = render(fx)
            fixed.setdefault(it.tags[0], []).append(i + 1)
    new_items = [Item(r) for r in gen_clean(rng, pool, N_V2_NEW)]
    assign_meta(new_items, rng, "tkt-", 2001, id_start=next_id)
    v2_lines += [it.encode(it.row) for it in new_items]
    planted["v2_fixed"] = fixed

    write_lines(OUT_DIR / "support_tickets.jsonl", train_lines)
    write_lines(OUT_DIR / "support_tickets_v2.jsonl", v2_lines)
    write_lines(OUT_DIR / "heldout_eval.jsonl", eval_lines)
    (OUT_DIR / "PLANTED.json").write_text(json.dumps(planted, indent=2) + "\n", encoding="utf-8")

    n_planted = len({n for c in CHECKS for n in planted[c]})
    print(
        f"support_tickets.jsonl     {len(train_lines)} rows ({n_planted} lines listed in PLANTED.json)"
    )
    print(
        f"support_tickets_v2.jsonl  {len(v2_lines)} rows ({sum(len(v) for v in fixed.values())} fixed, {len(new_items)} appended)"
    )
    print(f"heldout_eval.jsonl        {len(eval_lines)} rows ({len(leaks)} leaked from training)")
    for c in CHECKS:
        print(f"  {c:<16} {planted[c]}")
    print(f"  similarity rejections while generating: {pool.rejected}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
