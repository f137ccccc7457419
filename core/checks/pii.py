"""Rule-based detection of personal data and secrets in free text.

``find_pii`` reports e-mail addresses, phone numbers, payment card numbers, US social
security numbers, IBANs and credentials (API keys, tokens, private keys).  Detection is
pattern based and tuned for precision on support-ticket style text:

* every numeric kind needs a structural signal - separators in a known layout, a ``+``
  prefix, a checksum (Luhn for cards, mod-97 for IBANs) or a context word;
* a bare number right after a label such as "order", "invoice", "ticket" or "tracking" is
  treated as a business identifier, not as personal data;
* secrets are recognised by their vendor prefixes (``AKIA``, ``ghp_``, ``sk_live_`` ...),
  by PEM headers, by ``Bearer`` / JWT shape, or by an explicit label such as
  ``api_key = ...``.  Bare hex digests and UUIDs are never reported.

The hot path is built for millions of short texts: secrets are gated by plain substring
tests, and numbers are found by scanning an ASCII "shape" of the text (every digit mapped to
``0``) for a literal ``00``, so text without long numbers costs a few microseconds.

The module ends with the `pii` data check, which runs ``find_pii`` over each row's turns.
Importing the module compiles regular expressions and nothing else.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from core.checks.base import RowCheck, RowContext
from core.findings import Finding, PiiSpan, Severity

__all__ = [
    "CHECK",
    "KIND_LABELS",
    "PiiMatch",
    "card_brand",
    "find_pii",
    "iban_is_valid",
    "luhn_is_valid",
    "pii_findings",
    "redact",
]


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """One detected span: ``text[start:end]`` is the sensitive value."""

    kind: str
    start: int
    end: int
    detail: str


KIND_LABELS: dict[str, str] = {
    "email": "email address",
    "phone": "phone number",
    "payment_card": "payment card number",
    "us_ssn": "US social security number",
    "iban": "IBAN",
    "secret": "secret or credential",
}

# When two matches overlap the lower number wins (then the longer span).
_PRIORITY: dict[str, int] = {
    "secret": 0,
    "iban": 1,
    "email": 2,
    "payment_card": 3,
    "us_ssn": 4,
    "phone": 5,
}

# =========================================================================== checksums


def luhn_is_valid(digits: str) -> bool:
    """True when ``digits`` (ASCII digits only) passes the Luhn checksum."""
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# Total IBAN length per country (SWIFT IBAN registry).
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_is_valid(iban: str) -> bool:
    """True for an IBAN (spaces allowed) of a known country, right length and mod-97 == 1."""
    compact = iban.replace(" ", "").upper()
    if not compact.isascii() or not compact.isalnum():
        return False
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


# =========================================================================== context

_CTX_WINDOW = 32
_TOKEN_STRIP = " \t\r\n:#=.,;!?-–—()[]{}<>\"'*`|"

# A bare number right after one of these words is an identifier, not personal data.
# fmt: off
_NEG_WORDS = frozenset({
    "order", "orders", "invoice", "inv", "ticket", "tickets", "case", "tracking", "track",
    "ref", "reference", "id", "ids", "account", "acct", "sku", "serial", "sn",
    "po", "p.o", "confirmation", "conf", "booking", "reservation", "transaction", "txn", "trx",
    "receipt", "item", "part", "model", "customer", "cust", "member", "membership", "policy",
    "claim", "shipment", "parcel", "package", "waybill", "awb", "consignment", "batch", "lot",
    "build", "version", "ver", "issue", "incident", "request", "req", "record", "file", "doc",
    "document", "isbn", "upc", "ean", "gtin", "imei", "iccid", "code", "pin", "otp", "voucher",
    "coupon", "license", "licence", "registration", "reg", "vin", "patient", "student",
    "employee", "emp", "user", "uid", "rma", "return", "job", "project", "task", "bug", "pr",
    "commit", "run", "step", "row", "page", "room", "flight", "seat", "gate", "quote",
    "estimate", "bill", "statement", "contract", "shipping", "delivery", "product", "asin",
    "mpn", "ord", "zip", "zipcode", "postcode", "postal", "plz", "inc", "sr", "rfc", "cr", "cve"
})
# fmt: on
# Words allowed between such a label and the number ("order number is", "ticket no.").
# fmt: off
_NEG_FILLERS = frozenset({
    "no", "nr", "num", "number", "numbers", "is", "was", "of", "#", ":", "the"
})
# fmt: on

# fmt: off
_PHONE_WORDS = frozenset({
    "phone", "phones", "telephone", "tel", "tel.", "mobile", "mob", "cell", "cellphone",
    "whatsapp", "call", "calling", "ring", "dial", "fax", "sms", "hotline", "landline", "viber",
    "telegram", "contact", "ph", "phone#", "mob.", "cel", "handy", "téléphone", "telefon",
    "teléfono", "telefono"
})
# fmt: on
# fmt: off
_CARD_WORDS = frozenset({
    "card", "cards", "cc", "ccn", "credit", "debit", "visa", "mastercard", "master", "amex",
    "discover", "jcb", "diners", "unionpay", "maestro", "pan"
})
# fmt: on
_PHONE_HINT = re.compile(
    r"ph|tel|cal|mob|cel|wha|fax|sms|reach|text|contact|ring|dial|number|no\b|hotline|viber|gram"
)
_SSN_CONTEXT = re.compile(r"(?i)(?:\bssn|\bss#|\bsocial\s+security|\bsoc\.?\s*sec)")


def _context_tokens(text: str, start: int) -> list[str]:
    """Lower-cased words in the ``_CTX_WINDOW`` characters before ``start``."""
    lo = start - _CTX_WINDOW
    if lo <= 0:
        window = text[:start]
    else:
        window = text[lo:start]
        if text[lo - 1].isalnum():  # drop the partial first word
            cut = window.find(" ")
            window = window[cut + 1 :] if cut >= 0 else ""
    tokens = []
    for tok in window.lower().replace("/", " ").split():
        tok = tok.strip(_TOKEN_STRIP)
        if tok:
            tokens.append(tok)
    return tokens


# A number followed by one of these is a quantity ("723 651 8360 bytes"), not a phone.
# fmt: off
_UNIT_WORDS = frozenset({
    "bytes", "byte", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "ms", "sec", "secs",
    "seconds", "minutes", "mins", "hours", "hrs", "days", "weeks", "months", "years", "items",
    "units", "rows", "tokens", "steps", "users", "people", "persons", "times", "words", "chars",
    "characters", "records", "files", "lines", "pages", "samples", "examples", "parameters",
    "params", "pcs", "pieces", "km", "kg", "lbs", "usd", "eur", "gbp", "dollars", "euros",
    "rpm", "fps", "px", "views", "downloads", "visits", "votes", "points"
})
# fmt: on


def _followed_by_unit(text: str, end: int) -> bool:
    words = text[end : end + 16].split(None, 1)
    return bool(words) and words[0].lower().rstrip(".,;:!?)") in _UNIT_WORDS


def _neg_context(tokens: list[str]) -> bool:
    """True when the number follows an identifier label ("order #", "ticket no. ...")."""
    for tok in reversed(tokens):
        if tok in _NEG_FILLERS:
            continue
        return tok in _NEG_WORDS
    return False


def _phone_context(tokens: list[str]) -> bool:
    prev = ""
    for tok in tokens:
        if tok in _PHONE_WORDS or tok.startswith(("tel:", "phone:")):
            return True
        if prev in ("reach", "text", "ring", "contact") and tok in ("me", "us"):
            return True
        if prev in ("my", "your", "our") and tok in ("number", "no", "digits"):
            return True
        prev = tok
    return False


def _card_context(tokens: list[str]) -> bool:
    return any(tok in _CARD_WORDS for tok in tokens)


# =========================================================================== numbers

# Candidate numbers are found in the "shape" of the text: every digit becomes "0", every
# ASCII letter "A" and every other non-ASCII character "?", so offsets are unchanged.  A
# candidate is a run of at least seven digits joined by short separators that is not glued
# to a word ("INC0012345") and is not a bare date; the literal "00" prefix lets the regex
# engine skip quickly to two adjacent digits.
_SHAPE = bytes.maketrans(
    b"123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    b"000000000" + b"A" * 52,
)
_CAND = re.compile(
    rb"00(?<![A0_]00)"
    rb"(?!(?:00([-/.])00?(?:\1)00?|([-/.])00?(?:\2)(?:0000|00))(?!0|[ \-.()/]+0))"
    rb"(?:[ \-.()/]{0,3}0){5,}+"
)
_CHUNK_CHARS = frozenset("0123456789 -.()/+")
_DIGITS = frozenset("0123456789")
_NON_DIGIT = re.compile(r"[^0-9]+")

_DATE = re.compile(
    r"(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2}))(?!\d)"
)

# Shared boundaries: never report a slice of a longer identifier, price or version.
_LB = r"(?<![\w+\-./#$€£¥@&=])(?<!\d[ \-./:,])"
_RB = r"(?!\w)(?![ \-./:]\d)(?!,\d)"
_SEP = r"(?:[ .\-]\(?|\(|\)[ .\-]?)"
_EXT = r"(?:\s?(?:x|ext\.?)\s?\d{1,6})?"
_EXT_TAIL = re.compile(r"\s?(?:x|ext\.?)\s?\d{1,6}$")

_PHONE_INTL = re.compile(
    _LB + r"(?:\(?\+|(?<!\d)00(?=[1-9]))\d++(?:" + _SEP + r"\d++)*+" + _EXT + _RB
)
_PHONE_NANP = re.compile(
    _LB
    + r"(?:(?:\+?1|001)[ .\-]?)?(?:\(\d{3}\)[ .\-]?|(?P<area>\d{3})(?P<s1>[ .\-]))"
    + r"(?P<exchange>\d{3})(?P<s2>[ .\-])\d{4}"
    + _EXT
    + _RB
)
_PHONE_NATIONAL = re.compile(
    _LB + r"(?:\(0\d{1,4}\) ?|0\d{1,4}[ .\-/])\d{2,8}(?:[ .\-]\d{2,8}){0,4}" + _EXT + _RB
)
_PHONE_PAREN = re.compile(_LB + r"\(\d{2,4}\) ?\d{3,5}[ \-]?\d{4}" + _EXT + _RB)
# "0944 6651 7214" (a 4-4-4 reference) and "08378-5934" (a ZIP+4 code) are not phones.
_REFERENCE_LIKE = re.compile(r"\d{4}([ .\-])\d{4}\1\d{4}|\d{5}-\d{4}")
_YEAR_IN_PARENS = re.compile(r"\((?:19|20)\d\d\)")

_CARD = re.compile(r"(?<![\w\-.+/$€£])(?<!\d[ \-])\d(?:[ \-]?\d){11,18}(?![ \-]?\d)(?!\w)")
_CARD_SPLIT = re.compile(r"[ \-]")
_SSN = re.compile(
    r"(?<![\w\-./#$])(?!000|666|9\d\d)\d{3}(?P<s>[\- ])(?!00)\d{2}(?P=s)(?!0000)\d{4}"
    r"(?!\w)(?![\-./ ]\d)"
)
_SSN_BARE = re.compile(r"(?!000|666|9\d\d)\d{3}(?!00)\d{2}(?!0000)\d{4}")

_IBAN = re.compile(r"[A-Za-z]{2}[0-9]{2}(?: ?[A-Za-z0-9]){11,31}")

# Issuer prefixes, most specific first (Mastercard's 2221-2720 range is checked in code).
_DISCOVER, _DINERS, _MAESTRO = "Discover card", "Diners Club card", "Maestro card"
# fmt: off
_CARD_BRANDS: tuple[tuple[str, str], ...] = (
    ("6011", _DISCOVER), ("644", _DISCOVER), ("645", _DISCOVER), ("646", _DISCOVER),
    ("647", _DISCOVER), ("648", _DISCOVER), ("649", _DISCOVER), ("65", _DISCOVER),
    ("62", "UnionPay card"), ("34", "American Express card"), ("37", "American Express card"),
    ("35", "JCB card"), ("2131", "JCB card"), ("1800", "JCB card"),
    ("300", _DINERS), ("301", _DINERS), ("302", _DINERS), ("303", _DINERS), ("304", _DINERS),
    ("305", _DINERS), ("36", _DINERS), ("38", _DINERS),
    ("4", "Visa card"),
    ("51", "Mastercard"), ("52", "Mastercard"), ("53", "Mastercard"), ("54", "Mastercard"),
    ("55", "Mastercard"),
    ("50", _MAESTRO), ("56", _MAESTRO), ("57", _MAESTRO), ("58", _MAESTRO), ("6", _MAESTRO),
)
# fmt: on
# 12-digit numbers are accepted only for these Maestro ranges.
_MAESTRO_12 = ("5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762", "6763")
_BRAND_LENGTHS: dict[str, frozenset[int]] = {
    "Visa card": frozenset({13, 16, 19}),
    "Mastercard": frozenset({16}),
    "American Express card": frozenset({15}),
    "Discover card": frozenset({16, 17, 18, 19}),
    "JCB card": frozenset({15, 16, 17, 18, 19}),
    "Diners Club card": frozenset({14, 15, 16, 17, 18, 19}),
    "UnionPay card": frozenset({16, 17, 18, 19}),
    "Maestro card": frozenset(range(12, 20)),
}


def card_brand(digits: str) -> str | None:
    """Brand label for a card number from its issuer prefix, or None if none is known."""
    if digits[:1] == "2" and digits[:4] != "2131":
        return "Mastercard" if len(digits) >= 4 and 2221 <= int(digits[:4]) <= 2720 else None
    for prefix, label in _CARD_BRANDS:
        if digits.startswith(prefix):
            return label
    return None


def _card_grouping_ok(groups: list[str]) -> bool:
    sizes = [len(g) for g in groups]
    if sizes in ([4, 6, 5], [4, 6, 4]):
        return True
    return len(sizes) >= 4 and all(s == 4 for s in sizes[:-1]) and 1 <= sizes[-1] <= 4


class _Context:
    """Lazily computed context words before positions of one text."""

    __slots__ = ("_cache", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._cache: dict[int, list[str]] = {}

    def tokens(self, start: int) -> list[str]:
        toks = self._cache.get(start)
        if toks is None:
            toks = self._cache[start] = _context_tokens(self.text, start)
        return toks

    def negative(self, start: int) -> bool:
        return _neg_context(self.tokens(start))


def _card_matches(text: str, cs: int, ce: int, ctx: _Context, out: list[PiiMatch]) -> None:
    for m in _CARD.finditer(text, cs, min(len(text), ce + 2)):
        raw = m.group()
        digits = _NON_DIGIT.sub("", raw)
        if not luhn_is_valid(digits):
            continue
        brand = card_brand(digits)
        if brand is None:
            continue
        start = m.start()
        tokens = ctx.tokens(start)
        if len(digits) not in _BRAND_LENGTHS[brand]:
            continue
        if (
            brand == "Maestro card"
            and len(digits) not in (12, 16, 19)
            and not _card_context(tokens)
        ):
            continue
        if len(digits) == 12:
            ok = digits.startswith(_MAESTRO_12) or (
                digits[:2] in ("56", "57", "58") and _card_context(tokens)
            )
            if ok and not _neg_context(tokens):
                out.append(PiiMatch("payment_card", start, m.end(), "Maestro card"))
            continue
        if _card_context(tokens):
            out.append(PiiMatch("payment_card", start, m.end(), brand))
        elif len(digits) != len(raw):
            groups = _CARD_SPLIT.split(raw)
            if ("-" not in raw or " " not in raw) and _card_grouping_ok(groups):
                out.append(PiiMatch("payment_card", start, m.end(), brand))
        elif not _neg_context(tokens):
            out.append(PiiMatch("payment_card", start, m.end(), brand))


def _ssn_matches(
    text: str, cs: int, ce: int, chunk: str, ctx: _Context, out: list[PiiMatch]
) -> None:
    context: bool | None = None
    if "-" in chunk or " " in chunk:
        for m in _SSN.finditer(text, cs, min(len(text), ce + 2)):
            if context is None:
                context = _SSN_CONTEXT.search(text, max(0, cs - _CTX_WINDOW), cs) is not None
            if context or not ctx.negative(m.start()):
                out.append(PiiMatch("us_ssn", m.start(), m.end(), "US SSN"))
    elif (
        len(chunk) == 9
        and _SSN_BARE.fullmatch(chunk)
        and _SSN_CONTEXT.search(text, max(0, cs - _CTX_WINDOW), cs) is not None
    ):
        out.append(PiiMatch("us_ssn", cs, ce, "US SSN"))


def _separators_ok(raw: str) -> bool:
    """Reject mixed dot/space/dash separators (prices, versions, dates, IP addresses)."""
    seps = {ch for ch in raw if ch in " .-/"}
    if "/" in seps:
        return len(seps) == 1 and raw.count("/") == 1
    return not ("." in seps and len(seps) > 1)


def _phone_body(raw: str) -> str:
    """``raw`` without an extension suffix such as ``x123`` or ``ext. 12``."""
    ext = _EXT_TAIL.search(raw)
    return raw if ext is None else raw[: ext.start()]


def _intl_phones(text: str, cs: int, ce: int, hi: int, ctx: _Context, out: list[PiiMatch]) -> bool:
    found = False
    for m in _PHONE_INTL.finditer(text, cs, hi):
        if m.start() >= ce:
            break
        raw = _phone_body(m.group())
        groups = [g for g in _NON_DIGIT.split(raw) if g]
        if raw[0] == "0":
            # "0044 20 7946 0958" - but not "0061 5337 8257" or "Order ID: 0062-8759-1092".
            groups[0] = groups[0][2:]
            if len(groups) < 3 or all(len(g) == 4 for g in groups[1:]):
                continue
            if ctx.negative(m.start()):
                continue
        if _followed_by_unit(text, m.end()):
            continue
        digits = "".join(groups)
        if not 8 <= len(digits) <= 15 or not _separators_ok(raw):
            continue
        if len(groups) > 1 and not "".join(groups[1:]).strip("0"):
            continue  # "+20 000 000" is a quantity
        if sum(len(g) == 1 for g in groups[1:]) > 2:
            continue
        out.append(PiiMatch("phone", m.start(), m.end(), "international phone"))
        found = True
    return found


def _phone_matches(
    text: str, cs: int, ce: int, chunk: str, nd: int, ctx: _Context, out: list[PiiMatch]
) -> bool:
    hi = min(len(text), ce + 12)
    found = False
    if "+" in chunk or chunk.startswith("00"):
        found = _intl_phones(text, cs, ce, hi, ctx, out)
    if nd >= 10:
        for m in _PHONE_NANP.finditer(text, cs, hi):
            if m.start() >= ce:
                break
            s1 = m.group("s1")
            if s1 is not None and s1 != m.group("s2"):
                continue
            start = m.start()
            raw = m.group()
            weak = text[start] not in "+(" and "(" not in raw
            if weak and (ctx.negative(start) or _followed_by_unit(text, m.end())):
                continue
            out.append(PiiMatch("phone", start, m.end(), "US phone"))
            found = True
    if nd >= 9:
        patterns: tuple[re.Pattern[str], ...] = ()
        if chunk[0] == "0" or " 0" in chunk or "(0" in chunk:
            patterns = (_PHONE_NATIONAL,)
        if "(" in chunk:
            patterns += (_PHONE_PAREN,)
        for pattern in patterns:
            for m in pattern.finditer(text, cs, hi):
                if m.start() >= ce:
                    break
                raw = m.group()
                body = _phone_body(raw)
                nd_body = len(_NON_DIGIT.sub("", body))
                if not 9 <= nd_body <= 12 or not _separators_ok(body.strip()):
                    continue
                if _DATE.fullmatch(body.strip()) or _YEAR_IN_PARENS.match(raw):
                    continue
                if _REFERENCE_LIKE.fullmatch(body.strip()):
                    continue
                if ctx.negative(m.start()) or _followed_by_unit(text, m.end()):
                    continue
                out.append(PiiMatch("phone", m.start(), m.end(), "national phone"))
                found = True
    return found


def _context_phone(
    text: str, cs: int, ce: int, chunk: str, nd: int, ctx: _Context, out: list[PiiMatch]
) -> None:
    """Numbers without a phone layout count only right after a phone word ("call me at")."""
    if not 7 <= nd <= 15 or chunk.count("(") != chunk.count(")"):
        return
    if ce < len(text) and (text[ce].isalnum() or text[ce] in "@_"):
        return
    if cs > 0 and (text[cs - 1].isalnum() or text[cs - 1] in "#$€£-./_@"):
        return
    if _PHONE_HINT.search(text[max(0, cs - _CTX_WINDOW) : cs].lower()) is None:
        return
    if not _separators_ok(chunk) or _DATE.match(chunk.lstrip("+(")):
        return
    tokens = ctx.tokens(cs)
    if _phone_context(tokens) and not _neg_context(tokens) and not _followed_by_unit(text, ce):
        out.append(PiiMatch("phone", cs, ce, "phone number"))


def _iban_match(text: str, pos: int, out: list[PiiMatch]) -> int:
    """Report an IBAN starting at ``pos``; returns its end, or -1."""
    m = _IBAN.match(text, pos)
    if m is None:
        return -1
    raw = m.group()
    country = raw[:2].upper()
    length = _IBAN_LENGTHS.get(country)
    if length is None:
        return -1
    count = 0
    end = 0
    for i, ch in enumerate(raw):  # the span of the first `length` alphanumerics
        if ch != " ":
            count += 1
            if count == length:
                end = i + 1
                break
    if end == 0:
        return -1
    span = raw[:end]
    nxt = text[pos + end : pos + end + 1]
    if nxt.isalnum():
        return -1
    if " " in span:
        groups = span.split(" ")
        if any(len(g) != 4 for g in groups[:-1]) or not 1 <= len(groups[-1]) <= 4:
            return -1
    if not iban_is_valid(span):
        return -1
    out.append(PiiMatch("iban", pos, pos + end, f"IBAN ({country})"))
    return pos + end


def _examine_number(text: str, shape: bytes, cs: int, ce: int, out: list[PiiMatch]) -> None:
    """Look for numeric PII in the digit run ``text[cs:ce]`` (seven digits or more)."""
    chunk = text[cs:ce]
    nd = shape.count(b"0", cs, ce)
    ctx = _Context(text)
    if chunk[0] == "+":
        if not _intl_phones(text, cs, ce, min(len(text), ce + 12), ctx, out):
            _context_phone(text, cs, ce, chunk, nd, ctx, out)
        return
    if nd >= 12:
        _card_matches(text, cs, ce, ctx, out)
    if nd >= 9 and (
        shape.find(b"000-00-0000", cs, ce) >= 0
        or shape.find(b"000 00 0000", cs, ce) >= 0
        or (nd == 9 and ce - cs == 9)
    ):
        _ssn_matches(text, cs, ce, chunk, ctx, out)
    if not _phone_matches(text, cs, ce, chunk, nd, ctx, out):
        _context_phone(text, cs, ce, chunk, nd, ctx, out)


def _iban_scan(text: str, shape: bytes, out: list[PiiMatch]) -> None:
    pos = shape.find(b"AA00")
    while pos != -1:
        if pos == 0 or not text[pos - 1].isalnum():
            _iban_match(text, pos, out)
        pos = shape.find(b"AA00", pos + 1)


def _numeric_matches(text: str, out: list[PiiMatch]) -> None:
    # "replace" maps each non-ASCII character to one "?", keeping offsets aligned.
    shape = text.encode("ascii", "replace").translate(_SHAPE)
    if shape.count(b"0") < 7:
        return  # every numeric kind has at least seven digits
    if b"AA00" in shape:
        _iban_scan(text, shape, out)
    resume = 0
    for cand in _CAND.finditer(shape):
        cs, ce = cand.span()
        while cs > resume and text[cs - 1] in _CHUNK_CHARS:
            cs -= 1
        while text[cs] not in _DIGITS and text[cs] not in "+(":
            cs += 1
        _examine_number(text, shape, cs, ce, out)
        resume = ce


# =========================================================================== e-mail

# Local part: matched by searching back from each "@".  Domain: dot-separated labels ending
# in an alphabetic TLD; "@2x.png"-style retina asset names are excluded up front.
_LOCAL_PART = re.compile(r"[A-Za-z0-9_%+\-][A-Za-z0-9_.%+\-']{0,63}+@")
_DOMAIN = re.compile(
    r"@(?!\d+(?:\.\d+)?x\.)(?:[A-Za-z0-9][A-Za-z0-9\-]*+(?<!-)\.)+"
    r"([A-Za-z]{2,24})(?![A-Za-z0-9_\-]|\.[A-Za-z0-9])"
)
# "bundle@1.2.3.tgz", "config@prod.yaml": file names, not mailboxes.
# fmt: off
_NOT_TLDS = frozenset({
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "pdf", "js", "mjs",
    "cjs", "ts", "tsx", "jsx", "css", "scss", "html", "htm", "json", "xml", "txt", "yaml",
    "yml", "toml", "lock", "csv", "log", "ini", "cfg", "exe", "dll", "whl", "tgz"
})
# fmt: on


def _email_matches(text: str, out: list[PiiMatch]) -> None:
    at = text.find("@")
    resume = 0
    while at != -1:
        lo = max(resume, at - 64)
        local = _LOCAL_PART.search(text, max(lo, text.rfind(" ", lo, at) + 1), at + 1)
        m = _DOMAIN.match(text, at) if local is not None else None
        if local is not None and m is not None:
            if m.group(1).lower() not in _NOT_TLDS:
                out.append(PiiMatch("email", local.start(), m.end(), "email address"))
            resume = m.end()
            at = text.find("@", resume)
        else:
            at = text.find("@", at + 1)


# =========================================================================== secrets

_PEM_KIND = r"(?:(?:RSA|EC|DSA|OPENSSH|ENCRYPTED|PGP|SSH2) )?PRIVATE KEY(?: BLOCK)?"

# A rule is (pattern, detail, group): the reported span is that group's span.  Patterns
# start with a literal (boundaries are look-behinds after it) so matching stays cheap.
_Rule = tuple[re.Pattern[str], str, int]

_PEM_BEGIN = re.compile("-----BEGIN " + _PEM_KIND + "-----")
_PEM_END = re.compile("-----END " + _PEM_KIND + "-----")
_PEM_MAX_BODY = 20_000
_AWS_KEY_ID: _Rule = (
    re.compile(
        r"A(?:KIA|SIA|IDA|ROA|GPA|NPA|NVA|IPA)(?<![A-Za-z0-9]....)[A-Z0-9]{16}(?![A-Za-z0-9])"
    ),
    "AWS access key id",
    0,
)
_GOOGLE: _Rule = (
    re.compile(r"AIza(?<![A-Za-z0-9_\-]AIza)[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])"),
    "Google API key",
    0,
)
_GITHUB: _Rule = (
    re.compile(r"gh[pousr]_(?<![A-Za-z0-9_]....)[A-Za-z0-9]{36,251}(?![A-Za-z0-9_])"),
    "GitHub token",
    0,
)
_GITHUB_PAT: _Rule = (
    re.compile(r"github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{22,255}"),
    "GitHub token",
    0,
)
_GITLAB: _Rule = (
    re.compile(r"glpat-(?<![A-Za-z0-9_]glpat-)[A-Za-z0-9_\-]{20,}"),
    "GitLab token",
    0,
)
_SLACK: _Rule = (
    re.compile(r"xox[abposr]-(?<![A-Za-z0-9_].....)[A-Za-z0-9\-]{10,}(?![A-Za-z0-9\-])"),
    "Slack token",
    0,
)
_SLACK_HOOK: _Rule = (
    re.compile(r"hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,}"),
    "Slack webhook URL",
    0,
)
_STRIPE: _Rule = (
    re.compile(r"(?<![A-Za-z0-9_])[rs]k_(?:live|test)_[A-Za-z0-9]{10,}"),
    "Stripe secret key",
    0,
)
_SK_KEY: _Rule = (
    re.compile(r"sk-(?<![A-Za-z0-9_\-]sk-)(?:(?:proj|svcacct|admin|ant|or)-)?[A-Za-z0-9_\-]{20,}"),
    "API secret key",
    0,
)
_LONG_ALNUM = re.compile(r"[A-Za-z0-9]{16}")  # real keys have a long random stretch
_HF: _Rule = (
    re.compile(r"hf_(?<![A-Za-z0-9_]hf_)[A-Za-z0-9]{30,40}(?![A-Za-z0-9])"),
    "Hugging Face token",
    0,
)
_NPM: _Rule = (
    re.compile(r"npm_(?<![A-Za-z0-9_]npm_)[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    "npm token",
    0,
)
_SENDGRID: _Rule = (
    re.compile(r"SG\.(?<![A-Za-z0-9_]SG\.)[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}(?![\w\-])"),
    "SendGrid API key",
    0,
)
_BEARER: _Rule = (
    re.compile(r"(?<![A-Za-z0-9])(?i:bearer)\s+([A-Za-z0-9._~+/\-]{20,}=*)(?![\w.~+/=\-])"),
    "bearer token",
    1,
)
_JWT: _Rule = (
    re.compile(
        r"eyJ(?<![A-Za-z0-9_\-]eyJ)[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"
    ),
    "JWT",
    0,
)

# Rules behind an "_" gate, each with the substring it needs.
_UNDERSCORE_RULES: tuple[tuple[str, _Rule], ...] = (
    ("gh", _GITHUB),
    ("github_pat_", _GITHUB_PAT),
    ("k_", _STRIPE),
    ("hf_", _HF),
    ("npm_", _NPM),
)
_DASH_RULES: tuple[tuple[str, _Rule], ...] = (
    ("glpat-", _GITLAB),
    ("xox", _SLACK),
    ("sk-", _SK_KEY),
)
_DASH_GATE = re.compile(r"-(?:(?<=sk-)|(?<=glpat-)|(?<=xox[abposr]-)|----BEGIN )")
_A_GATE = re.compile(r"A(?:KIA|SIA|IDA|ROA|GPA|NPA|NVA|IPA|Iza)")

# Labelled credentials: "api_key = ...", "client_secret: ...", "AWS_SECRET_ACCESS_KEY=...".
_LABEL_HEAD = re.compile(
    r"(?i)(?:^|[^a-z0-9])(?:"
    r"(?P<aws>aws_?secret_?access_?key|aws_?secret_?key|secret_?access_?key)|"
    r"api[_\-\s]?key|api[_\-]?secret|secret[_\-]?key|client[_\-]?secret|app[_\-]?secret|"
    r"access[_\-]?token|auth[_\-]?token|refresh[_\-]?token|private[_\-]?token|bot[_\-]?token|"
    r"(?P<bare>secret|token))[\"']?\s*$"
)
_LABEL_VALUE = re.compile(
    r"\s*(?::=|=>|[:=])\s*[\"']?([A-Za-z0-9_\-./+=]{16,512}+)(?![A-Za-z0-9_\-./+=])"
)


def _random_looking(value: str) -> bool:
    """A token rather than prose or a placeholder: a digit, or upper and lower case."""
    if any(ch in _DIGITS for ch in value):
        return True
    return any(ch.isupper() for ch in value) and any(ch.islower() for ch in value)


def _labelled_secrets(text: str, out: list[PiiMatch]) -> None:
    for sep in ":=":
        pos = text.find(sep)
        while pos != -1:
            k = pos - 1
            while k > pos - 4 and k >= 0 and text[k] in " \"'":
                k -= 1
            if k >= 2 and text[k] in "yYtTnN":
                head = _LABEL_HEAD.search(text, max(0, k - 30), pos)
                vm = _LABEL_VALUE.match(text, pos) if head is not None else None
                if head is not None and vm is not None:
                    value = vm.group(1)
                    start, end = vm.span(1)
                    if head.group("aws"):
                        if len(value) == 40 and "-" not in value and "_" not in value:
                            out.append(PiiMatch("secret", start, end, "AWS secret access key"))
                    elif head.group("bare"):
                        has_digit = any(ch in _DIGITS for ch in value)
                        if has_digit and len(value) >= 20 and any(c.isalpha() for c in value):
                            out.append(PiiMatch("secret", start, end, "labelled secret"))
                    elif _random_looking(value):
                        out.append(PiiMatch("secret", start, end, "labelled API secret"))
            pos = text.find(sep, pos + 1)


def _pem_blocks(text: str, out: list[PiiMatch]) -> None:
    """PEM private keys: the header, extended to the END marker when one follows."""
    next_end = -2
    for m in _PEM_BEGIN.finditer(text):
        stop = m.end()
        if next_end != -1 and next_end < stop:
            next_end = text.find("-----END ", stop)
        if next_end != -1 and next_end - stop <= _PEM_MAX_BODY:
            em = _PEM_END.match(text, next_end)
            if em is not None:
                stop = em.end()
        out.append(PiiMatch("secret", m.start(), stop, "private key block"))


def _apply(rule: _Rule, text: str, out: list[PiiMatch]) -> None:
    pattern, detail, group = rule
    for m in pattern.finditer(text):
        if group:
            if not _random_looking(m.group(group)):
                continue
        elif rule is _SK_KEY:
            body = m.group()[3:]
            if not _random_looking(body) or _LONG_ALNUM.search(body) is None:
                continue
        out.append(PiiMatch("secret", m.start(group), m.end(group), detail))


def _secret_matches(text: str, out: list[PiiMatch]) -> None:
    # Cheap gates first: single-character tests are the fastest substring searches.
    if "_" in text:
        for needle, rule in _UNDERSCORE_RULES:
            if needle in text:
                _apply(rule, text, out)
    if "-" in text and _DASH_GATE.search(text) is not None:
        if "-----BEGIN" in text:
            _pem_blocks(text, out)
        for needle, rule in _DASH_RULES:
            if needle in text:
                _apply(rule, text, out)
    if "A" in text and _A_GATE.search(text) is not None:
        _apply(_AWS_KEY_ID, text, out)
        _apply(_GOOGLE, text, out)
    if "earer" in text or ("B" in text and "EARER" in text):
        _apply(_BEARER, text, out)  # before the JWT rule: same span, more telling label
    if "J" in text and "eyJ" in text:
        _apply(_JWT, text, out)
    if "G" in text and "SG." in text:
        _apply(_SENDGRID, text, out)
    if "/" in text and "hooks.slack.com" in text:
        _apply(_SLACK_HOOK, text, out)
    if "=" in text or ":" in text:
        _labelled_secrets(text, out)


# =========================================================================== public API


def _has_digit(text: str) -> bool:
    # Ten single-character searches (memchr speed) beat any regex scan here.
    return (
        "0" in text or "1" in text or "2" in text or "3" in text or "4" in text
        or "5" in text or "6" in text or "7" in text or "8" in text or "9" in text
    )  # fmt: skip


def find_pii(text: str) -> list[PiiMatch]:
    """All PII and secret spans in ``text``, sorted by start and non-overlapping."""
    found: list[PiiMatch] = []
    _secret_matches(text, found)
    if "@" in text:
        _email_matches(text, found)
    if _has_digit(text):
        _numeric_matches(text, found)
    if len(found) < 2:
        return found
    return _resolve(found)


def _resolve(found: list[PiiMatch]) -> list[PiiMatch]:
    found.sort(key=_by_start)
    prev_end = -1
    for m in found:
        if m.start < prev_end:
            break
        prev_end = m.end
    else:
        return found  # the common case: nothing overlaps
    ranked = sorted(found, key=lambda m: (_PRIORITY[m.kind], m.start - m.end, m.start))
    kept: list[PiiMatch] = []
    for m in ranked:
        if all(m.end <= k.start or m.start >= k.end for k in kept):
            kept.append(m)
    kept.sort(key=_by_start)
    return kept


def _by_start(m: PiiMatch) -> int:
    return m.start


def redact(text: str, matches: list[PiiMatch]) -> str:
    """``text`` with each match replaced by its kind as a tag, e.g. ``[EMAIL]``."""
    parts: list[str] = []
    pos = 0
    for m in sorted(matches, key=lambda m: (m.start, -m.end)):
        if m.start < pos:
            continue  # overlaps a span already replaced
        parts.append(text[pos : m.start])
        parts.append(f"[{m.kind.upper()}]")
        pos = m.end
    parts.append(text[pos:])
    return "".join(parts)


# =========================================================================== the check

_PII_SEPARATOR = "\x00"
PII_ERROR_KINDS = frozenset({"secret", "payment_card", "us_ssn", "iban"})


def pii_findings(row: RowContext) -> Sequence[Finding]:
    # One scan of the whole row (find_pii has a fixed cost per call); NUL separates the
    # messages because no PII pattern accepts it, so no match spans two messages.
    conversation = row.conversation
    texts = conversation.texts
    matches = find_pii(_PII_SEPARATOR.join(texts))
    if not matches:
        return ()
    starts: list[int] = []
    offset = 0
    for text in texts:
        starts.append(offset)
        offset += len(text) + len(_PII_SEPARATOR)
    spans: list[PiiSpan] = []
    for match in matches:
        index = bisect_right(starts, match.start) - 1
        start = match.start - starts[index]
        end = match.end - starts[index]
        if end <= len(texts[index]):
            spans.append(PiiSpan(index, start, end, match.kind, match.detail))
    if not spans:
        return ()
    by_message: dict[int, list[str]] = defaultdict(list)
    for span in spans:
        label = span.detail or KIND_LABELS.get(span.kind, span.kind)
        if label not in by_message[span.message_index]:
            by_message[span.message_index].append(label)
    where = "; ".join(
        f"{', '.join(labels)} in message {index + 1} ({conversation.messages[index]['role']})"
        for index, labels in sorted(by_message.items())
    )
    severity: Severity = "error" if any(s.kind in PII_ERROR_KINDS for s in spans) else "warning"
    return (
        Finding(
            "pii",
            severity,
            (row.line,),
            f"personal data or secret: {where}",
            spans=tuple(spans),
        ),
    )


CHECK = RowCheck(
    "pii",
    ("error", "warning"),
    "secrets, payment cards (Luhn), US SSNs, IBANs (checksum) are errors; emails and phone "
    "numbers warnings. Order numbers, versions, prices, dates, tracking and ticket numbers "
    "do not fire",
    pii_findings,
)
