"""volatile_fact: assistant turns that assert facts which go stale, and the knowledge audit.

A fine-tune freezes what its answers say into the weights. Prices, dates, policy windows,
versions, links and plan names change; a model trained on three years of tickets recites
the old ones fluently. This check finds them in assistant turns, and `KnowledgeAudit`
summarises them for the decision desk: how many turns carry one, by kind, the most
repeated facts, and the facts whose value changed across the data's dates (drift).

Kinds (ids are a contract): price, date, policy_duration, version, url, plan_name.
Not volatile facts, and kept out on purpose: order, ticket and invoice numbers, HTTP and
error codes, step numbers, how long an operation takes ("wait 30 seconds", "takes about
3 minutes"), file sizes, counts and keyboard shortcuts. That is why durations are only
taken in hours or longer and only in the wording of a commitment ("within", "no later
than", "a 14-day trial", "kept for 90 days"), and why a bare number is never a fact.

The topic of a fact (what drift groups by) is a short key made of words around the
match: for "a 14-day trial" / "2-year warranty" the word after the duration; otherwise the
last two content words (stopwords dropped, a plural "s" trimmed) before the match in its
clause, or the first two after it when the clause starts with the fact. So "Refunds are
accepted within 30 days" and "... within 14 days" share the topic "refund accepted".

Speed: one precompiled pattern per family, run only when a cheap test says it can match
(a digit, a currency sign, "http"/"www.", a plan keyword or a user term).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.checks.base import CheckSpec
from core.findings import Finding

if TYPE_CHECKING:
    pass

KINDS: tuple[str, ...] = ("price", "date", "policy_duration", "version", "url", "plan_name")
KIND_LABELS: dict[str, str] = {
    "price": "price",
    "date": "date",
    "policy_duration": "policy duration",
    "version": "version",
    "url": "link",
    "plan_name": "plan name",
}
TOP_FACTS_SHOWN = 5

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_YEAR = r"(?:19|20)\d{2}"
_NUM = r"\d+(?:[.,]\d+)?"
_UNIT = r"(?:hours?|days?|weeks?|months?|years?|business\s+days?|working\s+days?|calendar\s+days?)"
_UNIT_ADJ = r"(?:hour|day|week|month|year)"
_CURRENCY_CODE = r"(?:USD|EUR|GBP|JPY|CAD|AUD|CHF|INR|SEK|NOK|DKK|NZD)"
_AMOUNT = r"\d{1,3}(?:[,.\u202f ]\d{3})*(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"

# The patterns with a digit in them, one per kind; each runs only when its gate (plain
# substring tests, a fraction of a microsecond) says the turn can hold that kind, because
# a keyword-led pattern costs tens of microseconds per turn to scan.
_DIGIT_KIND_SOURCES: tuple[str, ...] = tuple(
    [
        # price
        rf"(?P<price>(?:US|CA|AU|NZ|HK|S)?[$€£¥₹](?:\s?(?:{_AMOUNT}))(?:\s?(?:[kKmM]\b|million|billion))?"
        rf"|\b(?:{_AMOUNT})\s?(?:{_CURRENCY_CODE}\b|(?i:dollars|euros|pounds)\b)"
        rf"|\b{_CURRENCY_CODE}\s?(?:{_AMOUNT})\b"
        rf"|\b(?:{_AMOUNT})\s?[€£]"
        r")",
        # date
        rf"(?P<date>(?<![\w-]){_YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?![\w-])"
        rf"|(?<![\w/.])\d{{1,2}}/\d{{1,2}}/{_YEAR}\b"
        rf"|\b{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+{_YEAR})?\b(?!\s*(?:%|[-:]\d))"
        rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\.?,?\s+{_YEAR}\b"
        rf"|\b{_MONTH}\.?,?\s+(?:of\s+)?{_YEAR}\b"
        rf"|\b[QH][1-4]\s?(?:FY\s?)?(?:{_YEAR}|'\d{{2}})\b"
        rf"|\b(?i:by|until|before|through|since|effective|starting|from|end\s+of|in\s+early|in\s+late)"
        rf"\s+(?:the\s+end\s+of\s+)?{_YEAR}\b(?![-./]\d)"
        r")",
        # policy_duration
        r"(?P<policy_duration>"
        r"\b(?i:within|no\s+later\s+than|not\s+later\s+than|up\s+to|at\s+least|at\s+most"
        r"|after|before|kept\s+for|stored\s+for|retained\s+for|held\s+for|valid\s+for"
        r"|available\s+for|guaranteed\s+for|covered\s+for|free\s+for|extended\s+(?:to|for)"
        r"|expires?\s+(?:in|after)|lasts|last\s+for|for\s+up\s+to|every)"
        rf"\s+(?:a\s+|the\s+|first\s+|next\s+|another\s+)?{_NUM}(?:\s*(?:-|–|to)\s*{_NUM})?"
        rf"\s*(?i:{_UNIT})\b"
        rf"|\b{_NUM}(?:\s*(?:-|–|to)\s*{_NUM})?\s+(?i:business|working|calendar)\s+days?\b"
        # "a 14-day trial", "2-year limited warranty", "30 day return window"
        rf"|\b{_NUM}(?:-|\s)(?i:{_UNIT_ADJ})[- ](?!(?i:old|long|ago|away|time|delay)\b)"
        r"(?:(?i:free|limited|money)[- ])?[A-Za-z]{3,}"
        r"(?:[- ](?i:protection|guarantee|warranty|window|period|policy|trial|returns?"
        r"|refunds?|back|exchange)\b)?"
        r"|\b(?i:window|period|policy|trial|warranty|guarantee|retention|grace\s+period"
        r"|deadline|term)\s+(?i:is|of|lasts|runs|spans|covers|is\s+now|is\s+only)\s+"
        rf"{_NUM}\s*(?i:{_UNIT})\b"
        rf"|\b{_NUM}\s*(?i:{_UNIT})\s+(?i:to\s+(?:return|cancel|request|claim|report|dispute"
        r"|exchange|change|send|file|get\s+a\s+refund)|of\s+(?:purchase|delivery|receipt"
        r"|the\s+(?:charge|purchase|order|invoice|delivery)))\b"
        r")",
        # version
        r"(?P<version>\b(?i:version|ver\.|release|firmware|build|update|patch)\s+v?\d+(?:\.\d+)+\b"
        r"|\b(?i:version|release|firmware)\s+v?\d+\b(?!\s*(?i:of|times|minutes|seconds|steps))"
        r"|(?<![\w.])v\d+(?:\.\d+)*\b"
        r"|\b(?:API|SDK|iOS|iPadOS|macOS|Android|Windows|Python|Node(?:\.js)?|Chrome|Firefox"
        r"|Safari|Ubuntu|Debian|Java|Xcode|PHP|Ruby|Kotlin|Swift|TLS|OpenSSL)\s+v?\d+(?:\.\d+)*\b"
        r"(?!\s*(?i:%|percent|minutes|seconds|hours|days|times|steps|items|errors?|users))"
        r"|(?<![\w.])\d{1,3}\.\d{1,3}\.\d{1,4}(?![\w.]|\.\d)"
        r")",
    ]
)
_DIGIT_KIND_PATTERNS = tuple(re.compile(source) for source in _DIGIT_KIND_SOURCES)
_CURRENCY_SIGNS = "$€£¥₹"
_CURRENCY_WORDS: tuple[str, ...] = (
    "usd",
    "eur",
    "gbp",
    "jpy",
    "cad",
    "aud",
    "chf",
    "inr",
    "sek",
    "nok",
    "dkk",
)
_CURRENCY_WORDS += ("nzd", "dollar", "euro", "pound")
_MONTH_NAMES: tuple[str, ...] = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
)
_MONTH_NAMES += ("Dec",)
_VERSION_WORDS: tuple[str, ...] = ("version", "release", "firmware", "ios", "macos", "android")
_VERSION_WORDS += ("windows", "python", "node", "chrome", "firefox", "safari", "ubuntu")
_VERSION_WORDS += ("debian", "java", "xcode", "php", "ruby", "kotlin", "swift", "tls", "openssl")
# Gates: digit-led patterns (the regex engine skips to the digits), so a turn that only
# says "today" or "updated" never pays for the keyword-led patterns of its kind.
_YEARISH = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")
_UNIT_NEAR_DIGIT = re.compile(
    r"\d(?:[ -]|\s*(?:-|–|to)\s*\d+[ -]?)(?:business |working |calendar )?"
    r"(?i:hour|day|week|month|year)"
)
_VERSIONISH = re.compile(r"v\d|\d\.\d")
_WORD_THEN_DIGIT = re.compile(r"[A-Za-z][ \t]+v?\d")


def _may_hold_price(text: str, lowered: str) -> bool:
    return any(sign in text for sign in _CURRENCY_SIGNS) or any(
        word in lowered for word in _CURRENCY_WORDS
    )


def _may_hold_date(text: str, lowered: str) -> bool:
    return any(month in text for month in _MONTH_NAMES) or _YEARISH.search(text) is not None


def _may_hold_duration(text: str, lowered: str) -> bool:
    return _UNIT_NEAR_DIGIT.search(text) is not None


def _may_hold_version(text: str, lowered: str) -> bool:
    if _VERSIONISH.search(text) is not None:
        return True
    return any(word in lowered for word in _VERSION_WORDS) and (
        _WORD_THEN_DIGIT.search(text) is not None
    )


_DIGIT_KIND_GATES = (_may_hold_price, _may_hold_date, _may_hold_duration, _may_hold_version)

_URL_PATTERN = re.compile(r"(?P<url>\bhttps?://[^\s<>\"'`)\]]+|\bwww\.[^\s<>\"'`)\]]+)")
_URL_TRAILING = ".,;:!?*_"

_PLAN_KEYWORD = r"(?i:plans?|tiers?|editions?|packages?|bundles?|memberships?)"
# After a capitalised word, "plan to"/"plan for" is the verb ("We plan to call", "Please
# plan for"); after a tier word ("the premium plan for teams") it is still a plan's name.
_NOT_VERB = r"(?![ \t]+(?i:to|for|on|ahead|accordingly|out)\b)"
_TIER_WORDS = (
    r"(?i:free|basic|starter|standard|plus|pro|premium|business|enterprise|team|growth"
    r"|unlimited|family|professional|ultimate|essentials?|advanced|deluxe|gold|silver"
    r"|platinum|bronze|lite|max|personal|student|individual|scale|startup|core|elite)"
)
_PLAN_PATTERN = re.compile(
    rf"(?P<plan_name>\b(?:[A-Z][\w+&'-]*[ \t]+){{0,2}}[A-Z][\w+&'-]*[ \t]+{_PLAN_KEYWORD}\b"
    rf"{_NOT_VERB}"
    rf"|\b{_TIER_WORDS}(?:[ \t]+{_TIER_WORDS})?[ \t]+{_PLAN_KEYWORD}\b)"
)
_PLAN_HINT = re.compile(r"(?i:plan|tier|edition|package|bundle|membership)")
# A leading word that is not part of a plan's name ("Our Business plan" is "Business
# plan"); a name made only of these ("The plan", "Payment plan") is not a named plan.
_NOT_PLAN_TEXT = """
    the a an this that these those your our my their his her its any each every which
    what no one we i you they it he she please choose pick select upgrade downgrade switch move
    join try get buy order start use keep see check cancel current new old same other
    payment installment data phone mobile cell floor meal action project care repair
    shipping delivery return refund backup recovery migration test training treatment
    savings retirement pension insurance health study lesson lesson travel road business's
    monthly yearly annual weekly daily paid"""
_NOT_PLAN_WORDS = frozenset(_NOT_PLAN_TEXT.split())
_DIGIT_HINT = re.compile(r"[0-9$€£¥₹]")

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_CLAUSE_END = re.compile(r"[.!?;:\n()\[\]]\s|[\n;:()\[\]]")
_STOPWORD_TEXT = """
    a an the and or but if then so of to in on at by for from with within without into
    onto over under about after before up down out off is are was were be been being am do
    does did done have has had having can could will would shall should may might must
    it its this that these those there here we you your yours our ours us i me my they
    them their he she his her who whom which what when where how why all any each every
    some no not only just also very more most less least than as per via please now then
    get gets got give given take takes make makes let lets see sure yes ok okay hi hello
    thanks thank one new still again already usually always never currently simply full
    free later least most up no-later not-later"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True, slots=True)
class VolatileMatch:
    kind: str
    value: str
    start: int
    end: int


def compile_terms(terms: Iterable[str]) -> re.Pattern[str] | None:
    """The user's own volatile terms (plan names, product lines) as one pattern."""
    cleaned = sorted({term.strip() for term in terms if term.strip()}, key=len, reverse=True)
    if not cleaned:
        return None
    return re.compile(
        r"(?<!\w)(?:" + "|".join(re.escape(term) for term in cleaned) + r")(?!\w)", re.IGNORECASE
    )


def _plan_value(text: str) -> str | None:
    words = text.split()
    while len(words) > 1 and words[0].lower() in _NOT_PLAN_WORDS:
        words.pop(0)
    if len(words) < 2 or words[0].lower() in _NOT_PLAN_WORDS:
        return None
    return " ".join(words)


def find_volatile_facts(text: str, terms: re.Pattern[str] | None = None) -> list[VolatileMatch]:
    """Every volatile fact in one assistant turn, in text order, overlaps removed."""
    matches: list[VolatileMatch] = []
    if _DIGIT_HINT.search(text) is not None:
        lowered = text.lower()
        for may_hold, pattern in zip(_DIGIT_KIND_GATES, _DIGIT_KIND_PATTERNS, strict=True):
            if not may_hold(text, lowered):
                continue
            for match in pattern.finditer(text):
                kind = match.lastgroup
                if kind is not None:
                    matches.append(VolatileMatch(kind, match.group(), match.start(), match.end()))
    if "http" in text or "www." in text:
        for url in _URL_PATTERN.finditer(text):
            link = url.group().rstrip(_URL_TRAILING)
            matches.append(VolatileMatch("url", link, url.start(), url.start() + len(link)))
    if _PLAN_HINT.search(text) is not None:
        for plan in _PLAN_PATTERN.finditer(text):
            name = _plan_value(plan.group())
            if name is not None:
                matches.append(VolatileMatch("plan_name", name, plan.end() - len(name), plan.end()))
    if terms is not None:
        for term in terms.finditer(text):
            matches.append(VolatileMatch("plan_name", term.group(), term.start(), term.end()))
    if len(matches) < 2:
        return matches
    # Overlaps keep the earliest, then longest match: a URL swallows the version inside it.
    matches.sort(key=lambda m: (m.start, -(m.end - m.start)))
    kept: list[VolatileMatch] = []
    for candidate in matches:
        if kept and candidate.start < kept[-1].end:
            continue
        kept.append(candidate)
    return kept


# -- topics and canonical values (what drift compares) -----------------------------------


def _content_words(words: Iterable[str]) -> list[str]:
    kept = []
    for word in words:
        lowered = word.lower().strip("'-")
        if len(lowered) < 2 or lowered in _STOPWORDS:
            continue
        if len(lowered) > 3 and lowered.endswith("s") and not lowered.endswith("ss"):
            lowered = lowered[:-1]
        kept.append(lowered)
    return kept


_ADJECTIVAL_DURATION = re.compile(rf"^\d+(?:[.,]\d+)?[- ](?i:{_UNIT_ADJ})s?[- ](?P<noun>.+)$")
_DURATION_CORE = re.compile(rf"{_NUM}(?:\s*(?:-|–|to)\s*{_NUM})?\s*[- ]?(?i:{_UNIT}|{_UNIT_ADJ})")


def topic_of(text: str, match: VolatileMatch) -> str:
    """A short key for what the fact is about (see the module docstring for the rule)."""
    if match.kind == "policy_duration":
        adjectival = _ADJECTIVAL_DURATION.match(match.value)
        if adjectival is not None:
            noun = _content_words(_WORD.findall(adjectival.group("noun")))
            if noun:
                return " ".join(noun[:2])
    clause_start = 0
    for boundary in _CLAUSE_END.finditer(text, max(0, match.start - 200), match.start):
        clause_start = boundary.end()
    before = _content_words(_WORD.findall(text[clause_start : match.start]))
    if before:
        return " ".join(before[-2:])
    after_end = _CLAUSE_END.search(text, match.end)
    after = _content_words(
        _WORD.findall(text[match.end : after_end.start() if after_end else match.end + 120])
    )
    return " ".join(after[:2]) if after else match.kind


def canonical_value(match: VolatileMatch) -> str:
    """The value drift compares: "within 30 days" and "a 30-day" are both "30 days"."""
    value = " ".join(match.value.split())
    if match.kind == "policy_duration":
        core = _DURATION_CORE.search(value)
        if core is not None:
            value = core.group().replace("-", " ").lower()
            if not value.endswith("s") and not re.match(r"^1\s", value):
                value += "s"
            return " ".join(value.split())
    if match.kind in ("url", "plan_name"):
        return value.lower()
    return value


# -- dates of a row --------------------------------------------------------------------

DATE_FIELDS: tuple[str, ...] = ("date", "created_at", "timestamp")


def _date_text(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 10_000_000_000 else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC).date().isoformat()
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        found = re.match(r"\s*(\d{4})-(\d{2})(?:-(\d{2}))?", value)
        if found is None:
            return None
        return f"{found.group(1)}-{found.group(2)}-{found.group(3) or '01'}"
    return None


def row_date(row: dict[str, Any] | None, metadata: dict[str, Any] | None) -> str | None:
    """The row's date (YYYY-MM-DD): metadata.date, created_at or timestamp, where present."""
    for source in (metadata, row):
        if not isinstance(source, dict):
            continue
        for name in DATE_FIELDS:
            if name in source:
                date = _date_text(source[name])
                if date is not None:
                    return date
    return None


# -- the audit -------------------------------------------------------------------------


@dataclass(frozen=True)
class KnowledgeAudit:
    """The knowledge audit of a dataset (or one split of a stored version)."""

    assistant_turns: int
    turns_with_volatile_facts: int
    share: float
    by_kind: dict[str, int]
    drift: list[dict[str, Any]]
    top_facts: list[tuple[str, str, int]]

    def as_json(self) -> dict[str, Any]:
        return {
            "assistant_turns": self.assistant_turns,
            "turns_with_volatile_facts": self.turns_with_volatile_facts,
            "share": self.share,
            "by_kind": dict(self.by_kind),
            "drift": self.drift,
            "top_facts": [
                {"kind": kind, "value": value, "count": count}
                for kind, value, count in self.top_facts
            ],
        }


@dataclass
class _ValueStats:
    count: int = 0
    first_date: str | None = None
    last_date: str | None = None

    def add(self, date: str | None, count: int = 1) -> None:
        self.count += count
        if date is not None:
            self.add_dates(date, date)

    def add_dates(self, first: str | None, last: str | None) -> None:
        if first is not None and (self.first_date is None or first < self.first_date):
            self.first_date = first
        if last is not None and (self.last_date is None or last > self.last_date):
            self.last_date = last


@dataclass
class AuditBuilder:
    """Accumulates findings and audit counts row by row; parts of a parallel scan merge."""

    terms: re.Pattern[str] | None = None
    assistant_turns: int = 0
    turns_with_facts: int = 0
    by_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    facts: dict[tuple[str, str], int] = field(default_factory=dict)
    # (kind, topic) -> canonical value -> its count and dates (dated facts only)
    dated: dict[tuple[str, str], dict[str, _ValueStats]] = field(default_factory=dict)

    @classmethod
    def for_terms(cls, terms: Sequence[str]) -> AuditBuilder:
        return cls(terms=compile_terms(terms))

    def add_turns(self, line: int, texts: Iterable[str], date: str | None) -> list[Finding]:
        """Audit one row's assistant turns; one finding per turn and kind of fact."""
        findings: list[Finding] = []
        for turn, text in enumerate(texts, start=1):
            self.assistant_turns += 1
            matches = find_volatile_facts(text, self.terms)
            if not matches:
                continue
            self.turns_with_facts += 1
            by_kind: dict[str, list[VolatileMatch]] = {}
            for match in matches:
                by_kind.setdefault(match.kind, []).append(match)
                self.by_kind[match.kind] += 1
                fact = (match.kind, " ".join(match.value.split()))
                self.facts[fact] = self.facts.get(fact, 0) + 1
                if date is not None:
                    group = self.dated.setdefault((match.kind, topic_of(text, match)), {})
                    group.setdefault(canonical_value(match), _ValueStats()).add(date)
            for kind, kind_matches in by_kind.items():
                values = ", ".join(f'"{m.value}"' for m in kind_matches[:4])
                more = f" (+{len(kind_matches) - 4})" if len(kind_matches) > 4 else ""
                findings.append(
                    Finding(
                        "volatile_fact",
                        "warning",
                        (line,),
                        f"{KIND_LABELS[kind]} {values}{more} in assistant turn {turn} can go "
                        "stale; a fine-tune would freeze it into the weights",
                        kind=kind,
                        value=kind_matches[0].value,
                    )
                )
        return findings

    def merge(self, other: AuditBuilder) -> None:
        self.assistant_turns += other.assistant_turns
        self.turns_with_facts += other.turns_with_facts
        for kind, count in other.by_kind.items():
            self.by_kind[kind] = self.by_kind.get(kind, 0) + count
        for fact, count in other.facts.items():
            self.facts[fact] = self.facts.get(fact, 0) + count
        for key, values in other.dated.items():
            group = self.dated.setdefault(key, {})
            for value, stats in values.items():
                mine = group.setdefault(value, _ValueStats())
                mine.count += stats.count
                mine.add_dates(stats.first_date, stats.last_date)

    def drift(self) -> list[dict[str, Any]]:
        """Facts of one kind and topic with two or more values first seen on different dates.

        Values that all start on the same date are different facts sharing a topic key
        (two products' prices), not a change over time.
        """
        entries: list[dict[str, Any]] = []
        for (kind, topic), values in self.dated.items():
            if len(values) < 2:
                continue
            ordered = sorted(values.items(), key=lambda item: (item[1].first_date or "", item[0]))
            if len({stats.first_date for _, stats in ordered}) < 2:
                continue
            entries.append(
                {
                    "kind": kind,
                    "topic": topic,
                    "values": [
                        {
                            "value": value,
                            "count": stats.count,
                            "first_date": stats.first_date,
                            "last_date": stats.last_date,
                        }
                        for value, stats in ordered
                    ],
                }
            )
        entries.sort(key=lambda entry: (-sum(v["count"] for v in entry["values"]), entry["topic"]))
        return entries

    def build(self) -> KnowledgeAudit:
        top = sorted(self.facts.items(), key=lambda item: (-item[1], item[0]))[:TOP_FACTS_SHOWN]
        return KnowledgeAudit(
            assistant_turns=self.assistant_turns,
            turns_with_volatile_facts=self.turns_with_facts,
            share=round(self.turns_with_facts / self.assistant_turns, 4)
            if self.assistant_turns
            else 0.0,
            by_kind=dict(self.by_kind),
            drift=self.drift(),
            top_facts=[(kind, value, count) for (kind, value), count in top],
        )


def assistant_texts(messages: Sequence[dict[str, Any]], texts: Sequence[str]) -> list[str]:
    return [
        text
        for message, text in zip(messages, texts, strict=True)
        if message.get("role") == "assistant" and text
    ]


CHECK = CheckSpec(
    "volatile_fact",
    ("warning",),
    "an assistant turn states a fact that goes stale (`kind`: price, date, policy_duration, "
    "version, url, plan_name; `value`: the text), which a fine-tune would freeze into the "
    "weights; `--volatile-term` adds plan or product names",
)
