"""Tests for core.checks.pii: detection per kind, look-alikes that must stay silent, spans."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.checks.pii import (
    KIND_LABELS,
    PiiMatch,
    card_brand,
    find_pii,
    iban_is_valid,
    luhn_is_valid,
    redact,
)

ALL_KINDS = {"email", "phone", "payment_card", "us_ssn", "iban", "secret"}


def _values(text: str, kind: str | None = None) -> list[str]:
    return [text[m.start : m.end] for m in find_pii(text) if kind is None or m.kind == kind]


def _assert_single(text: str, kind: str, value: str) -> PiiMatch:
    """``value`` is reported exactly once as ``kind`` and nothing else is reported."""
    matches = find_pii(text)
    found = [(m.kind, text[m.start : m.end]) for m in matches]
    assert found == [(kind, value)], found
    return matches[0]


# --------------------------------------------------------------------------- e-mail


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Contact me at john.doe@example.com please", "john.doe@example.com"),
        ("my email: jane+newsletter@gmail.com.", "jane+newsletter@gmail.com"),
        ("write to first.last@mail.sub.example.co.uk today", "first.last@mail.sub.example.co.uk"),
        ("SUPPORT@ACME.COM is monitored", "SUPPORT@ACME.COM"),
        ("<o'brien@uni-bonn.de>", "o'brien@uni-bonn.de"),
        ("(reply to j_smith99@company.io)", "j_smith99@company.io"),
        ("mailto:anne-marie@example.org?subject=hi", "anne-marie@example.org"),
    ],
)
def test_email_detected(text: str, value: str) -> None:
    m = _assert_single(text, "email", value)
    assert m.detail == "email address"


@pytest.mark.parametrize(
    "text",
    [
        "thanks @mention for the quick fix",
        "the support@ alias bounced",
        "npm install left-pad@1.3.0",
        "pin torch@2.4.1 in the lockfile",
        "user@localhost cannot log in",
        "use logo@2x.png and icon@3x.png for retina",
        "decorators like @property and @staticmethod",
        "email me at name@domain",
    ],
)
def test_email_lookalikes_ignored(text: str) -> None:
    assert _values(text, "email") == []


# --------------------------------------------------------------------------- phone


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Call +1 (415) 555-0132 today", "+1 (415) 555-0132"),
        ("my number is 415-555-0132", "415-555-0132"),
        ("(415) 555 0132", "(415) 555 0132"),
        ("reach me on 415.555.0132!", "415.555.0132"),
        ("London office: +44 20 7946 0958", "+44 20 7946 0958"),
        ("Berlin +49 30 1234567", "+49 30 1234567"),
        ("from abroad dial 0044 20 7946 0958", "0044 20 7946 0958"),
        ("UK: 020 7946 0958", "020 7946 0958"),
        ("portable 06 12 34 56 78", "06 12 34 56 78"),
        ("Paris +33 6 12 34 56 78", "+33 6 12 34 56 78"),
        ("Bangalore +91 98765 43210", "+91 98765 43210"),
        ("tel:+14155550132", "+14155550132"),
        ("call me at 4155550132", "4155550132"),
        ("WhatsApp: 98765 43210", "98765 43210"),
        ("(+44) 20 7946 0958", "(+44) 20 7946 0958"),
        ("+49 (0)30 1234567", "+49 (0)30 1234567"),
        ("toll free 1-800-555-0199", "1-800-555-0199"),
        ("+1-415-555-0132", "+1-415-555-0132"),
        ("mobile 07700 900123", "07700 900123"),
        ("São Paulo (11) 91234-5678", "(11) 91234-5678"),
        ("Moscow +7 (495) 123-45-67", "+7 (495) 123-45-67"),
        ("Tokyo +81 3-1234-5678", "+81 3-1234-5678"),
        ("phone (415)555-0132x123", "(415)555-0132x123"),
        ("Tel: 0612345678", "0612345678"),
        ("ring 01.23.45.67.89 tomorrow", "01.23.45.67.89"),
        ("text me on 555-1234", "555-1234"),
        ("contact me: +1 (646) 555-3890 ext. 204", "+1 (646) 555-3890 ext. 204"),
        ("001-415-555-0132x123", "001-415-555-0132x123"),
    ],
)
def test_phone_detected(text: str, value: str) -> None:
    _assert_single(text, "phone", value)


def test_phone_details() -> None:
    details = {m.detail for t in ("+44 20 7946 0958", "415-555-0132") for m in find_pii(t)}
    assert details == {"international phone", "US phone"}


def test_two_phones_in_one_text() -> None:
    text = "Contact: +1 415 555 0132 / +1 415 555 0133"
    assert _values(text, "phone") == ["+1 415 555 0132", "+1 415 555 0133"]


# --------------------------------------------------------------------------- cards


@pytest.mark.parametrize(
    ("text", "value", "detail"),
    [
        ("Card: 4111 1111 1111 1111", "4111 1111 1111 1111", "Visa card"),
        ("4111-1111-1111-1111 exp 12/27", "4111-1111-1111-1111", "Visa card"),
        ("charge 4012888888881881 please", "4012888888881881", "Visa card"),
        ("old visa 4222222222222", "4222222222222", "Visa card"),
        ("mc 5555 5555 5555 4444", "5555 5555 5555 4444", "Mastercard"),
        ("5105105105105100", "5105105105105100", "Mastercard"),
        ("new range 2223 0031 2200 3222", "2223 0031 2200 3222", "Mastercard"),
        ("amex 3782 822463 10005", "3782 822463 10005", "American Express card"),
        ("371449635398431 is my amex", "371449635398431", "American Express card"),
        ("6011 1111 1111 1117", "6011 1111 1111 1117", "Discover card"),
        ("jcb 3530111333300000", "3530111333300000", "JCB card"),
        ("diners 3056 930902 5904", "3056 930902 5904", "Diners Club card"),
        ("UnionPay 6200 0000 0000 0005", "6200 0000 0000 0005", "UnionPay card"),
        ("maestro 6759649826438453", "6759649826438453", "Maestro card"),
        # Luhn-valid and grouped: reported even behind an identifier label.
        ("Reference: 5500 0000 0000 0004", "5500 0000 0000 0004", "Mastercard"),
        # Card context wins over the identifier label.
        ("paid by credit card, order 4111111111111111", "4111111111111111", "Visa card"),
    ],
)
def test_card_detected(text: str, value: str, detail: str) -> None:
    m = _assert_single(text, "payment_card", value)
    assert m.detail == detail


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111111",  # ungrouped, Luhn-valid, but an order number
        "ORDER NUMBER 5555555555554444 shipped",
        "tracking: 4012888888881881",
        "4111 1111 1111 1112",  # fails Luhn
        "order #4532881200931234 is delayed",  # fails Luhn
        "random 1234567890123456",  # fails Luhn
        "Order ID: 4532-8812-0093",
        "IMEI 356938035643809",  # Luhn-valid, looks like JCB
        "timestamp 1710498153000",
        "9400 1000 0000 0000 0000 00",  # USPS
        "tracking number 9400100000000000000000",
    ],
)
def test_card_lookalikes_ignored(text: str) -> None:
    assert _values(text, "payment_card") == []


# --------------------------------------------------------------------------- SSN


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("SSN 123-45-6789", "123-45-6789"),
        ("my social security number is 078-05-1120.", "078-05-1120"),
        ("ssn: 219 09 9999", "219 09 9999"),
        ("SSN: 123456789", "123456789"),
        ("social security number 078051120", "078051120"),
        ("applicant 536-22-8421 signed", "536-22-8421"),
    ],
)
def test_ssn_detected(text: str, value: str) -> None:
    _assert_single(text, "us_ssn", value)


@pytest.mark.parametrize(
    "text",
    [
        "SSN 000-12-3456",  # area 000
        "SSN 666-12-3456",  # area 666
        "SSN 912-34-5678",  # area 9xx
        "SSN 123-00-4567",  # group 00
        "SSN 123-45-0000",  # serial 0000
        "id 123456789",  # bare nine digits without SSN context
        "part number 123-45-6789",
        "ISBN 978-3-16-148410-0",
    ],
)
def test_ssn_lookalikes_ignored(text: str) -> None:
    assert _values(text, "us_ssn") == []


# --------------------------------------------------------------------------- IBAN


@pytest.mark.parametrize(
    ("text", "value", "country"),
    [
        ("IBAN: DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00", "DE"),
        ("transfer to DE89370400440532013000.", "DE89370400440532013000", "DE"),
        ("GB82 WEST 1234 5698 7654 32 (Lloyds)", "GB82 WEST 1234 5698 7654 32", "GB"),
        ("my iban is NL91ABNA0417164300", "NL91ABNA0417164300", "NL"),
        ("FR14 2004 1010 0505 0001 3M02 606", "FR14 2004 1010 0505 0001 3M02 606", "FR"),
        ("ES91 2100 0418 4502 0005 1332 bic CAIXESBB", "ES91 2100 0418 4502 0005 1332", "ES"),
        ("IT60 X054 2811 1010 0000 0123 456", "IT60 X054 2811 1010 0000 0123 456", "IT"),
        ("CH93 0076 2011 6238 5295 7", "CH93 0076 2011 6238 5295 7", "CH"),
        ("lower case de89370400440532013000", "de89370400440532013000", "DE"),
    ],
)
def test_iban_detected(text: str, value: str, country: str) -> None:
    m = _assert_single(text, "iban", value)
    assert m.detail == f"IBAN ({country})"


@pytest.mark.parametrize(
    "text",
    [
        "GB82 WEST 1234 5698 7654 33",  # checksum off by one
        "DE89 3704 0044 0532 0130 0",  # too short for DE
        "XX89 3704 0044 0532 0130 00",  # unknown country
        "AB12CDEF34567890ABCD",
    ],
)
def test_iban_lookalikes_ignored(text: str) -> None:
    assert _values(text, "iban") == []


# --------------------------------------------------------------------------- secrets

_JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
_PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "value", "detail"),
    [
        ("key AKIAIOSFODNN7EXAMPLE leaked", "AKIAIOSFODNN7EXAMPLE", "AWS access key id"),
        ("ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A", "AWS access key id"),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "AWS secret access key",
        ),
        (
            '{"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}',
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "AWS secret access key",
        ),
        (
            "token ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij",
            "ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij",
            "GitHub token",
        ),
        (
            "gho_16C7e42F292c6912E7710c838347Ae178B4a",
            "gho_16C7e42F292c6912E7710c838347Ae178B4a",
            "GitHub token",
        ),
        (
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            "GitHub token",
        ),
        ("glpat-xxxxxxxxxxxxxxxxxxxx12", "glpat-xxxxxxxxxxxxxxxxxxxx12", "GitLab token"),
        (
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            "Slack token",
        ),
        (
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "Stripe secret key",
        ),
        ("sk_test_51H8xYzAbCdEfGh12345", "sk_test_51H8xYzAbCdEfGh12345", "Stripe secret key"),
        ("rk_live_51H8xYzAbCdEfGh12345", "rk_live_51H8xYzAbCdEfGh12345", "Stripe secret key"),
        (
            "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
            "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
            "Google API key",
        ),
        (
            "OPENAI_KEY sk-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH",
            "sk-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH",
            "API secret key",
        ),
        (
            "sk-proj-abc123DEF456ghi789JKL012mno345",
            "sk-proj-abc123DEF456ghi789JKL012mno345",
            "API secret key",
        ),
        ("here:\n" + _PEM + "\nthanks", _PEM, "private key block"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "private key block",
        ),
        ("-----BEGIN PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----", "private key block"),
        (
            "Authorization: Bearer abcdef0123456789abcdef0123",
            "abcdef0123456789abcdef0123",
            "bearer token",
        ),
        ("curl -H 'Authorization: Bearer " + _JWT + "'", _JWT, "bearer token"),
        ("the token was " + _JWT, _JWT, "JWT"),
        (
            'api_key = "a1b2c3d4e5f6g7h8i9j0"',
            "a1b2c3d4e5f6g7h8i9j0",
            "labelled API secret",
        ),
    ],
)
def test_secret_detected(text: str, value: str, detail: str) -> None:
    m = _assert_single(text, "secret", value)
    assert m.detail == detail


@pytest.mark.parametrize(
    "text",
    [
        "commit da39a3ee5e6b4b0d3255bfef95601890afd80709 fixed it",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "md5 D41D8CD98F00B204E9800998ECF8427E",
        "request id 123e4567-e89b-12d3-a456-426614174000",
        "the task-force met at the desk-lamp store",
        "a risk-assessment-for-the-whole-project-team",
        "the bearer of this letter is authorized",
        "Bearer authentication sends a token in the header",
        "set api_key = YOUR_API_KEY_HERE before running",
        "Note: the token limit is 4096 tokens",
        "pk_live_4eC39HqLyjWDarjtT1zdp7dc is a publishable key",
        "AKIA is the prefix of AWS key ids",
    ],
)
def test_secret_lookalikes_ignored(text: str) -> None:
    assert _values(text, "secret") == []


# --------------------------------------------------------------------------- look-alikes


@pytest.mark.parametrize(
    "text",
    [
        "order #123456789 has not arrived",
        "Order ID: 4532-8812-0093",
        "ORD-2024-558812",
        "order 4155550132 is late",
        "Call about order 4155550132 please",
        "v2.14.1 crashes on start",
        "version 10.0.19045.3570",
        "1.2.3.4",
        "server at 192.168.100.200 is down",
        "$1,299.99",
        "EUR 4 500,00",
        "1 234 567.89",
        "2024-03-15",
        "15/03/2024",
        "03-15-2024",
        "2024-03-15T10:22:33Z",
        "10:30-11:45",
        "1Z999AA10123456784",
        "9400 1000 0000 0000 0000 00",
        "FedEx 7749 1234 5678",
        "ticket #48213",
        "INC0012345",
        "JIRA-4821",
        "case 00123456",
        "978-3-16-148410-0",
        "zip 94103-1234",
        "3 x 250 ml",
        "up 12.5% to 45.75%",
        "timestamp 1710498153000",
        "In 2023 we sold 1500 units and 2024 we sold 3000",
        "Our population is 8 000 000 people",
        "Invoice 2024-000123 total 1 299,00",
        "Call between 9:00 and 17:00, 2024-03-15",
        "the file is 723 651 8360 bytes",
        "Order ID: 0062-8759-1092",
        "tracking 0061 5337 8257",
        "zip 08378-5934",
        "+20 000 000 more users",
        "lr 0.0001 loss 0.9123 0.8876 0.9012",
        "https://example.com/items/4155550132",
        "Your confirmation number is 4111111111111111.",
        "Serial number: 4155550132",
        "Product SKU 000-123-4567 restocked.",
        "Elapsed 00:12:34.567 for 1000000 rows.",
        "Meeting moved to 2024-03-15 10:30-11:45 in room 4.12.",
        "Order #2024031512345 was charged twice.",
        "Downloaded 1 234 567 times since 2015.",
    ],
)
def test_lookalikes_report_nothing(text: str) -> None:
    assert find_pii(text) == []


def test_plain_text_reports_nothing() -> None:
    text = (
        "Hi team, I have been trying to reset my password for the dashboard but the "
        "confirmation link never arrives. Could you please look into this?"
    )
    assert find_pii(text) == []


# --------------------------------------------------------------------------- spans & API


def test_spans_sorted_non_overlapping_and_exact() -> None:
    text = (
        "Hi, I'm Jane (jane.doe@example.com, +44 20 7946 0958). Card 4111 1111 1111 1111, "
        "SSN 123-45-6789, IBAN DE89 3704 0044 0532 0130 00, key AKIAIOSFODNN7EXAMPLE."
    )
    matches = find_pii(text)
    assert [(m.kind, text[m.start : m.end]) for m in matches] == [
        ("email", "jane.doe@example.com"),
        ("phone", "+44 20 7946 0958"),
        ("payment_card", "4111 1111 1111 1111"),
        ("us_ssn", "123-45-6789"),
        ("iban", "DE89 3704 0044 0532 0130 00"),
        ("secret", "AKIAIOSFODNN7EXAMPLE"),
    ]
    assert all(a.end <= b.start for a, b in itertools.pairwise(matches))


def test_offsets_survive_non_ascii_text() -> None:
    text = "Grüße aus Köln 🙂, ruf an: +49 221 1234567 oder schreib an jürgen@example.de"
    assert _values(text, "phone") == ["+49 221 1234567"]


def test_match_is_frozen_value_object() -> None:
    m = PiiMatch("email", 0, 3, "email address")
    with pytest.raises(AttributeError):
        m.start = 1  # type: ignore[misc]
    assert m == PiiMatch("email", 0, 3, "email address")


def test_kind_labels_cover_every_kind() -> None:
    assert set(KIND_LABELS) == ALL_KINDS
    assert KIND_LABELS["email"] == "email address"
    assert KIND_LABELS["phone"] == "phone number"


def test_empty_text() -> None:
    assert find_pii("") == []
    assert redact("", []) == ""


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_arbitrary_text_yields_well_formed_matches(text: str) -> None:
    matches = find_pii(text)
    previous_end = 0
    for m in matches:
        assert m.kind in ALL_KINDS
        assert previous_end <= m.start < m.end <= len(text)
        previous_end = m.end


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="0123456789 -.()+/:#", max_size=60),
    st.sampled_from(["", "call ", "order ", "card ", "SSN ", "IBAN "]),
)
def test_numeric_noise_yields_well_formed_matches(noise: str, prefix: str) -> None:
    text = prefix + noise
    for m in find_pii(text):
        assert 0 <= m.start < m.end <= len(text)


# --------------------------------------------------------------------------- checksums


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("5555555555554444", True),
        ("378282246310005", True),
        ("79927398713", True),
        ("0", True),
        ("4111111111111112", False),
        ("79927398710", False),
        ("1234567812345678", False),
        ("", False),
        ("4111 1111 1111 1111", False),
        ("41111111111111a1", False),
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_is_valid(digits) is valid


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("DE89370400440532013000", True),
        ("DE89 3704 0044 0532 0130 00", True),
        ("gb82west12345698765432", True),
        ("NO9386011117947", True),
        ("BE68539007547034", True),
        ("PL61109010140000071219812874", True),
        ("DE88370400440532013000", False),  # wrong check digits
        ("DE8937040044053201300", False),  # wrong length for DE
        ("ZZ89370400440532013000", False),  # unknown country
        ("DE89-3704-0044-0532-0130-00", False),
        ("", False),
    ],
)
def test_iban_checksum(iban: str, valid: bool) -> None:
    assert iban_is_valid(iban) is valid


@pytest.mark.parametrize(
    ("digits", "brand"),
    [
        ("4111111111111111", "Visa card"),
        ("5105105105105100", "Mastercard"),
        ("2221000000000009", "Mastercard"),
        ("2720990000000007", "Mastercard"),
        ("2800000000000000", None),
        ("371449635398431", "American Express card"),
        ("6011000990139424", "Discover card"),
        ("6445644564456445", "Discover card"),
        ("3530111333300000", "JCB card"),
        ("30569309025904", "Diners Club card"),
        ("6200000000000005", "UnionPay card"),
        ("5018000000000009", "Maestro card"),
        ("7000000000000000", None),
        ("1234567890123456", None),
    ],
)
def test_card_brand(digits: str, brand: str | None) -> None:
    assert card_brand(digits) == brand


# --------------------------------------------------------------------------- redact


def test_redact_replaces_every_span() -> None:
    text = "mail jane@example.com or call +44 20 7946 0958, key AKIAIOSFODNN7EXAMPLE"
    assert redact(text, find_pii(text)) == "mail [EMAIL] or call [PHONE], key [SECRET]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Card: 4111 1111 1111 1111.", "Card: [PAYMENT_CARD]."),
        ("SSN 123-45-6789", "SSN [US_SSN]"),
        ("IBAN DE89370400440532013000", "IBAN [IBAN]"),
        ("no pii here", "no pii here"),
    ],
)
def test_redact_tags(text: str, expected: str) -> None:
    assert redact(text, find_pii(text)) == expected


def test_redact_tolerates_unsorted_and_overlapping_matches() -> None:
    text = "abcdefghij"
    matches = [
        PiiMatch("phone", 6, 9, "x"),
        PiiMatch("email", 0, 4, "x"),
        PiiMatch("secret", 2, 5, "x"),  # overlaps the email span: skipped
    ]
    assert redact(text, matches) == "[EMAIL]ef[PHONE]j"
