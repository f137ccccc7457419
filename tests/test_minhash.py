"""Tests for core.checks.minhash: the numpy MinHash + LSH near-duplicate engine."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.checks.minhash import (
    DEFAULT_THRESHOLD,
    MIN_SHINGLES,
    MinHasher,
    cross_pairs,
    group_pairs,
    jaccard,
    jaccard_pairs,
    near_duplicate_pairs,
    normalize_for_shingles,
    shingles,
)

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- a templated corpus

_ISSUES = [
    (
        "Hi, my order #{order} for the {product} hasn't arrived yet, it was due on {date}.",
        "I checked order #{order}: it is with {carrier} and should arrive by {date2}.",
    ),
    (
        "Hello, I was charged ${amount} twice for my {plan} subscription this month.",
        "I can see the duplicate ${amount} charge and refunded it; allow {n} business days.",
    ),
    (
        "The {product} I received on {date} is damaged, the {part} is cracked.",
        "Sorry about that! A replacement {product} ships within {n} days, no need to return.",
    ),
    (
        "I can't log in on my {device}, it keeps saying '{error}'.",
        "Please clear the app cache and sign in again; I have also reset your session.",
    ),
    (
        "How do I change the shipping address on order #{order}? I moved to {city}.",
        "Done: order #{order} will now be delivered to your new address in {city}.",
    ),
    (
        "Please cancel my {plan} plan before it renews on {date}.",
        "Your {plan} plan is cancelled and will not renew; access continues until {date2}.",
    ),
    (
        "My discount code {code} is rejected at checkout.",
        "That code expired on {date2}, so I applied a {pct}% discount to your cart instead.",
    ),
    (
        "The {feature} screen crashes on my {device} since the update.",
        "Thanks! The {feature} crash on {device} is fixed in version {version}, out this week.",
    ),
    (
        "Can I return the {product} I bought on {date}? It doesn't fit my needs.",
        "Of course, returns are free for {n} weeks; I emailed you a prepaid {carrier} label.",
    ),
    (
        "{carrier} says my parcel was delivered but nothing is at my door.",
        "I opened a claim with {carrier}; if it doesn't turn up by {date2} we'll resend it.",
    ),
    (
        "I need an invoice with my company name for order #{order}.",
        "The invoice for #{order} is in your account under Orders and was sent to {email}.",
    ),
    (
        "Is the {product} compatible with my {device}?",
        "Yes, the {product} pairs with any {device} over bluetooth, no adapter needed.",
    ),
    (
        "I'd like to upgrade from {plan} to Pro, what will it cost?",
        "Pro costs ${amount} more per month than {plan}, prorated from today.",
    ),
    (
        "Please delete my account {email} and all my data.",
        "Your deletion request is in; the account {email} will be erased within {n} days.",
    ),
    (
        "The price of the {product} dropped a day after I bought it.",
        "Our price promise covers that, so ${amount} is going back to your card {last4}.",
    ),
    (
        "Do you ship to {city}? I can't select it at checkout.",
        "We do ship to {city}; it shows up once you enter your postcode.",
    ),
]
_DETAILS = [
    "I've already tried restarting the app.",
    "This is the second time this happened.",
    "I've been a customer for {n} years.",
    "Please help, I need it before {date}.",
    "I wrote last week but got no reply.",
    "My account email is {email}.",
    "It was a gift so I'm a bit stressed.",
    "I attached a photo to my previous email.",
    "I paid with the card ending in {last4}.",
    "I'd prefer a refund to store credit.",
    "The box itself looked fine.",
    "I'm travelling to {city} next week.",
    "My neighbour didn't get anything either.",
    "The FAQ doesn't cover my case.",
    "I'm using version {version} of the app.",
    "Honestly this is disappointing.",
    "Could you also confirm my billing address?",
    "It happens on wifi and on mobile data.",
    "My partner ordered last month without issues.",
    "Email is best, I work night shifts.",
    "Customer number {order}, if you need it.",
    "A friend recommended your shop.",
    "I'd rather not call, the hold times are long.",
    "I left a voicemail on {date} too.",
]
_WHEN = [
    "Since Monday",
    "For {n} days now",
    "This morning",
    "Over the weekend",
    "Since {date}",
    "After your last email",
    "All week",
    "Right after I paid",
]
_WHAT = [
    "I keep getting the same automated reply",
    "nothing I try changes anything",
    "I have been checking the app every hour",
    "the help pages keep timing out",
    "I could not reach anyone by phone",
    "my kids keep asking about the {product}",
    "I have lost a lot of time on this",
    "my partner and I tried everything we could think of",
]
_OPENERS = [
    "Thank you for contacting Acme Support, we're sorry for the trouble.",
    "Hi {name}, thanks for reaching out!",
    "Hello {name}, I understand how frustrating this is.",
    "",
]
_CLOSINGS = ["Is there anything else I can help with?", "Have a great day!", "Take care!", ""]
_PRODUCTS = ["blender", "desk lamp", "office chair", "yoga mat", "smart watch", "kettle"]
_WORDS = ["really", "just", "also", "still", "now", "actually"]
# The customer's own words: every ticket has a sentence of its own.
_VOCAB = [
    "about",
    "after",
    "again",
    "almost",
    "already",
    "although",
    "always",
    "annoying",
    "another",
    "anyone",
    "anything",
    "around",
    "arrived",
    "asked",
    "back",
    "because",
    "before",
    "being",
    "best",
    "better",
    "between",
    "birthday",
    "blue",
    "box",
    "broken",
    "brother",
    "called",
    "cannot",
    "card",
    "careful",
    "cheap",
    "child",
    "closed",
    "colour",
    "company",
    "confused",
    "cousin",
    "daughter",
    "delivery",
    "desk",
    "different",
    "door",
    "early",
    "either",
    "empty",
    "evening",
    "exactly",
    "expected",
    "family",
    "fast",
    "finally",
    "first",
    "forgot",
    "friday",
    "friend",
    "garden",
    "gift",
    "great",
    "green",
    "happy",
    "heavy",
    "holiday",
    "honestly",
    "house",
    "hurry",
    "important",
    "kitchen",
    "last",
    "late",
    "later",
    "letter",
    "little",
    "lovely",
    "manager",
    "maybe",
    "message",
    "middle",
    "money",
    "monday",
    "morning",
    "mother",
    "never",
    "next",
    "night",
    "nobody",
    "office",
    "online",
    "order",
    "outside",
    "package",
    "parcel",
    "patient",
    "phone",
    "picture",
    "plenty",
    "present",
    "pretty",
    "problem",
    "quick",
    "quiet",
    "rain",
    "reason",
    "receipt",
    "red",
    "roof",
    "school",
    "second",
    "shop",
    "simple",
    "sister",
    "small",
    "sorry",
    "soon",
    "strange",
    "street",
    "summer",
    "sunday",
    "surprised",
    "tired",
    "today",
    "together",
    "tomorrow",
    "town",
    "truly",
    "upset",
    "usual",
    "visit",
    "waiting",
    "weekend",
    "window",
    "winter",
    "work",
    "worried",
    "yellow",
    "yesterday",
    "young",
]


def _slots(rng: random.Random) -> dict[str, str]:
    months = ["March", "April", "May", "June", "July"]
    return {
        "order": str(rng.randrange(10000, 99999)),
        "product": rng.choice(_PRODUCTS),
        "date": f"{rng.choice(months)} {rng.randrange(1, 29)}",
        "date2": f"{rng.choice(months)} {rng.randrange(1, 29)}",
        "carrier": rng.choice(["UPS", "DHL", "FedEx"]),
        "amount": f"{rng.randrange(5, 300)}.{rng.randrange(100):02d}",
        "plan": rng.choice(["Basic", "Plus", "Premium"]),
        "n": str(rng.randrange(2, 12)),
        "part": rng.choice(["lid", "base", "handle", "screen"]),
        "device": rng.choice(["iPhone", "Pixel", "iPad", "laptop"]),
        "error": rng.choice(["session expired", "error 503", "invalid credentials"]),
        "city": rng.choice(["Leeds", "Lyon", "Austin", "Osaka"]),
        "code": f"SAVE{rng.randrange(10, 99)}",
        "pct": str(rng.choice([5, 10, 15])),
        "feature": rng.choice(["search", "wishlist", "orders", "profile"]),
        "version": f"{rng.randrange(2, 9)}.{rng.randrange(10)}",
        "email": f"user{rng.randrange(1000)}@example.com",
        "last4": str(rng.randrange(1000, 9999)),
        "name": rng.choice(["Alex", "Maria", "Sam", "Priya", "Chen"]),
    }


def _ticket(rng: random.Random) -> str:
    ask, answer = rng.choice(_ISSUES)
    slots = _slots(rng)
    story = f"{rng.choice(_WHEN)}, {rng.choice(_WHAT)}."
    own = " ".join(rng.choices(_VOCAB, k=rng.randrange(8, 14))).capitalize() + "."
    user = " ".join([ask, story, own, *rng.sample(_DETAILS, 2)]).format(**slots)
    bot = " ".join(p for p in (rng.choice(_OPENERS), answer, rng.choice(_CLOSINGS)) if p)
    return f"User: {user}\nAssistant: {bot.format(**slots)}"


def _edit(text: str, rng: random.Random) -> str:
    """One or two light edits: typo, word added/removed, case/punctuation, appended line."""
    for _ in range(rng.choice([1, 2])):
        kind = rng.randrange(5)
        words = text.split(" ")
        if kind == 0:  # typo: swap two letters inside a word
            i = rng.randrange(len(text) - 2)
            while not (text[i].isalpha() and text[i + 1].isalpha()):
                i = rng.randrange(len(text) - 2)
            text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        elif kind == 1:
            words.insert(rng.randrange(1, len(words)), rng.choice(_WORDS))
            text = " ".join(words)
        elif kind == 2:
            del words[rng.randrange(1, len(words))]
            text = " ".join(words)
        elif kind == 3:
            text = text.lower().replace(",", "").replace("!", ".")
        else:
            text += " Also, what are your opening hours on weekends?"
    return text


def _corpus(n: int, n_dups: int, seed: int) -> tuple[list[str], set[tuple[int, int]]]:
    rng = random.Random(seed)
    texts = [_ticket(rng) for _ in range(n)]
    planted: set[tuple[int, int]] = set()
    for _ in range(n_dups):
        i = rng.randrange(len(texts))
        texts.append(_edit(texts[i], rng))
        planted.add((i, len(texts) - 1))
    return texts, planted


# ------------------------------------------------------------------------ normalising


def test_normalize_for_shingles() -> None:
    assert normalize_for_shingles("  Hi,  my ORDER #4821   hasn't arrived!! ") == (
        "hi my order 4821 hasnt arrived"
    )
    assert normalize_for_shingles("Don’t\tstop\n\nnow…") == "dont stop now"
    assert normalize_for_shingles("Ünïcödé  TEXT") == "ünïcödé text"
    assert normalize_for_shingles("") == ""
    assert normalize_for_shingles("?!. ,") == ""
    assert normalize_for_shingles("a\x00b") == "a b"


def test_shingles_are_exact_and_normalised() -> None:
    assert shingles("Hello, World!").tolist() == shingles("hello world").tolist()
    assert len(shingles("hello world")) == len("hello world") - 4
    assert len(shingles("")) == 0
    assert len(shingles("ok")) == 1  # shorter than a shingle: the text itself
    assert shingles("ok").tolist() != shingles("no").tolist()
    s = shingles("abcabcabcabc")
    assert s.dtype == np.uint64
    assert np.all(np.diff(s.astype(np.float64)) > 0)  # sorted, distinct


def test_jaccard() -> None:
    a = "Hi, my order #4821 hasn't arrived, can you check?"
    assert jaccard(a, a) == 1.0
    assert jaccard(a, a.upper().replace(",", "")) == 1.0
    assert jaccard(a, "completely unrelated words here") == 0.0
    assert jaccard("", "") == 0.0
    assert jaccard("", a) == 0.0
    sa, sb = set(shingles(a).tolist()), set(shingles(a + " Thanks!").tolist())
    assert jaccard(a, a + " Thanks!") == pytest.approx(len(sa & sb) / len(sa | sb))


def test_jaccard_pairs_matches_jaccard() -> None:
    texts, planted = _corpus(300, 30, seed=8)
    texts += ["", "ok", "ok!"]
    rng = random.Random(0)
    pairs = [*sorted(planted), *((rng.randrange(330), rng.randrange(330)) for _ in range(200))]
    pairs += [(330, 331), (331, 332), (330, 330), (5, 5)]
    sims = jaccard_pairs(texts, pairs)
    assert sims.shape == (len(pairs),)
    assert sims.tolist() == pytest.approx([jaccard(texts[i], texts[j]) for i, j in pairs])
    assert sims[-4:].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert jaccard_pairs(texts, []).shape == (0,)


# ---------------------------------------------------------------------- determinism

_SIG_SCRIPT = """
import json, sys
from core.checks.minhash import MinHasher, shingles, near_duplicate_pairs
texts = json.loads(sys.stdin.read())
sig = MinHasher(num_perm=64, seed=7).signatures(texts)
print(json.dumps({
    "sig": sig.tolist(),
    "sh": [shingles(t).tolist() for t in texts],
    "pairs": near_duplicate_pairs(texts),
}))
"""


def test_signatures_deterministic_across_processes() -> None:
    texts, _ = _corpus(40, 10, seed=3)
    texts += ["", "ok", "Ünïcödé ‘quoted’ text — with dashes"]
    outs = []
    for hashseed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        run = subprocess.run(
            [sys.executable, "-c", _SIG_SCRIPT],
            input=json.dumps(texts),
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            check=True,
        )
        outs.append(json.loads(run.stdout))
    assert outs[0] == outs[1]
    here = MinHasher(num_perm=64, seed=7).signatures(texts)
    assert here.tolist() == outs[0]["sig"]
    assert [list(p) for p in near_duplicate_pairs(texts)] == outs[0]["pairs"]


def test_minhasher_shapes_and_seeds() -> None:
    texts, _ = _corpus(30, 0, seed=4)
    sig = MinHasher().signatures(texts)
    assert sig.shape == (30, 144)
    assert sig.dtype == np.uint32
    assert MinHasher(num_perm=100).signatures(texts).shape == (30, 100)
    other = MinHasher(seed=2).signatures(texts)
    assert (sig != other).mean() > 0.9
    assert np.array_equal(MinHasher().signatures(texts[::-1])[::-1], sig)  # order-free
    empty = MinHasher().signatures(["", "ok"])
    assert np.all(empty[0] == 0xFFFFFFFF)
    assert not np.any(empty[1] == 0xFFFFFFFF)


def test_signature_agreement_estimates_jaccard() -> None:
    texts, planted = _corpus(200, 60, seed=5)
    sig = MinHasher(num_perm=512).signatures(texts)
    errors = [float(np.mean(sig[i] == sig[j])) - jaccard(texts[i], texts[j]) for i, j in planted]
    errors += [
        float(np.mean(sig[i] == sig[i + 1])) - jaccard(texts[i], texts[i + 1])
        for i in range(0, 100, 2)
    ]
    assert abs(float(np.mean(errors))) < 0.02
    assert max(abs(e) for e in errors) < 0.1


# ------------------------------------------------------------------ near duplicates


def test_planted_recall_and_no_false_pairs_on_templated_rows() -> None:
    texts, planted = _corpus(3000, 150, seed=11)
    found = near_duplicate_pairs(texts)
    found_set = {(i, j) for i, j, _ in found}
    recall = len(planted & found_set) / len(planted)
    assert recall >= 0.95
    # Everything found is a planted copy (or two copies of one original): the templated
    # rows that share greetings, issues and boilerplate answers never pair.
    label = list(range(len(texts)))
    for g in group_pairs(len(texts), planted):
        for x in g:
            label[x] = g[0]
    false = [(i, j) for i, j in found_set if label[i] != label[j]]
    assert len(false) <= 1, false
    # Pairs are verified with the exact Jaccard.
    for i, j, sim in found[:200]:
        assert i < j
        assert sim >= DEFAULT_THRESHOLD
        assert sim == pytest.approx(jaccard(texts[i], texts[j]))


def test_each_kind_of_edit_is_found() -> None:
    base = (
        "User: Hello, I was charged $49.99 twice for my Premium subscription this month. "
        "I've been a customer for 6 years and this never happened before.\n"
        "Assistant: Thank you for contacting Acme Support! I can see the duplicate $49.99 "
        "charge and I've refunded it, please allow 5 business days."
    )
    edits = [
        base.replace("customer", "cusotmer"),  # typo
        base.replace("twice", "two times"),  # word changed
        base.replace(" this month", ""),  # words removed
        base.replace("refunded it", "already refunded it"),  # word added
        base.upper().replace(",", "").replace("!", "."),  # case and punctuation
        base + " Is there anything else I can help you with today?",  # sentence appended
        base.replace("twice", "two times").replace("Premium", "Premium yearly"),  # two edits
    ]
    pairs = near_duplicate_pairs([base, *edits])
    linked = {j for i, j, _ in pairs if i == 0}
    assert linked == set(range(1, len(edits) + 1))


def test_template_siblings_do_not_pair() -> None:
    texts = [
        "Hi, my order #4821 hasn't arrived, can you check?",
        "Hi, my order #9913 was damaged, I want a refund.",
        "Hi, my order #7310 is missing a part, what should I do?",
    ]
    assert near_duplicate_pairs(texts) == []
    boilerplate = (
        "Assistant: Thank you for contacting Acme Support! We appreciate your patience and "
        "we're always happy to help. "
    )
    answers = [
        "User: How do I reset my password?\n" + boilerplate + "Use the 'Forgot password' "
        "link on the sign-in page and follow the email we send you.",
        "User: Can I change my delivery date?\n" + boilerplate + "Yes, open the order in "
        "your account and pick a new date under Delivery options.",
        "User: Do you ship to Canada?\n" + boilerplate + "We do, shipping takes five to "
        "eight business days and costs a flat twelve dollars.",
    ]
    assert near_duplicate_pairs(answers) == []
    assert max(jaccard(a, b) for a in answers for b in answers if a != b) < 0.5


def test_empty_and_short_texts_do_not_pair_with_everything() -> None:
    texts = ["", "", "   ", "?!", "ok", "ok", "OK!", "no", "yes", "hello", "hellp", "thanks"]
    pairs = near_duplicate_pairs(texts)
    # Only identical short texts pair; empty texts never do.
    assert {(i, j) for i, j, _ in pairs} == {(4, 5), (4, 6), (5, 6)}
    assert all(sim == 1.0 for _, _, sim in pairs)
    # Short texts have too few shingles to be near (not exact) duplicates.
    assert len(shingles("hello")) < MIN_SHINGLES
    long_texts = [t + " was the whole message I sent about my order" for t in texts]
    assert len(near_duplicate_pairs(long_texts)) > 10  # the same tails do pair


def test_threshold_and_progress() -> None:
    texts, _ = _corpus(5000, 20, seed=2)
    calls: list[tuple[int, int]] = []
    strict = near_duplicate_pairs(texts, 0.95, progress=lambda d, t: calls.append((d, t)))
    loose = near_duplicate_pairs(texts, 0.6)
    assert {p[:2] for p in strict} <= {p[:2] for p in loose}
    assert all(s >= 0.95 for _, _, s in strict)
    assert calls[-1] == (len(texts), len(texts))
    assert len(calls) >= 2
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    with pytest.raises(ValueError):
        near_duplicate_pairs(texts, 0.0)
    assert near_duplicate_pairs([]) == []
    assert near_duplicate_pairs(["only one text here"]) == []


def test_large_identical_bucket_does_not_explode() -> None:
    text = "User: Where is my order?\nAssistant: It ships tomorrow, thanks for waiting!"
    texts = [text] * 5000 + ["Something else entirely, about a refund for a broken lamp."]
    texts += [text.replace("tomorrow", "tomorow")] * 3
    start = time.perf_counter()
    pairs = near_duplicate_pairs(texts)
    assert time.perf_counter() - start < 5
    assert len(pairs) < 20_000  # a spanning set, not 12.5 million pairs
    groups = group_pairs(len(texts), ((i, j) for i, j, _ in pairs))
    assert groups == [[*range(5000), 5001, 5002, 5003]]


def test_many_similar_texts_stay_bounded() -> None:
    # 3000 rows of one template that differ in a number only: many pairs are near
    # duplicates; the engine must not list millions of pairs of LSH candidates.
    texts = [f"User: what is the status of ticket {i}? Please advise soon." for i in range(3000)]
    start = time.perf_counter()
    pairs = near_duplicate_pairs(texts, 0.8)
    assert time.perf_counter() - start < 8
    for i, j, sim in pairs[:50]:
        assert sim == pytest.approx(jaccard(texts[i], texts[j]))
    assert len(group_pairs(len(texts), ((i, j) for i, j, _ in pairs))) >= 1


# ------------------------------------------------------------------------ leakage


def test_cross_pairs_finds_leaked_rows() -> None:
    corpus, _ = _corpus(2000, 0, seed=21)
    rng = random.Random(1)
    queries = [_edit(corpus[17], rng), corpus[512], "a brand new question nobody asked", ""]
    queries += [_ticket(rng) for _ in range(50)]
    corpus = [*corpus, corpus[512]]  # an exact duplicate inside the corpus
    found = cross_pairs(queries, corpus)
    got = {(q, c) for q, c, _ in found}
    assert (0, 17) in got
    assert {(1, 512), (1, 2000)} <= got
    assert all(q in (0, 1) for q, _ in got)
    for q, c, sim in found:
        assert sim == pytest.approx(jaccard(queries[q], corpus[c]))
    assert cross_pairs([], corpus) == []
    assert cross_pairs(queries, []) == []


# ------------------------------------------------------------------------ grouping


def test_group_pairs() -> None:
    assert group_pairs(10, [(0, 1), (3, 4), (4, 9), (1, 2), (7, 7)]) == [[0, 1, 2], [3, 4, 9]]
    assert group_pairs(5, [(4, 3), (2, 1), (0, 2)]) == [[0, 1, 2], [3, 4]]
    assert group_pairs(3, []) == []
    triples = [(5, 6, 0.9), (1, 6, 0.8)]
    assert group_pairs(7, triples) == [[1, 5, 6]]  # type: ignore[arg-type]
    with pytest.raises(IndexError):
        group_pairs(3, [(0, 3)])
