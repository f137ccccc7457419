"""Benchmark peer for the near-duplicate stage: ftod's numpy MinHash/LSH vs datasketch.

Both sides get the same shingles (ftod's character 5-grams of normalised text) and the same
Jaccard threshold; datasketch uses ``MinHash.bulk`` + ``MinHashLSH`` with its own optimal
band parameters. Timings cover everything from the raw texts to the list of pairs.

    python bench/near_dup_peer.py --rows 100000

prints progress lines and, last, one JSON line with the figures. ``datasketch`` is the
``bench`` extra (``pip install -e '.[bench]'``); ftod's core never imports it.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.checks.minhash import (
    DEFAULT_NUM_PERM,
    DEFAULT_THRESHOLD,
    _fmix64,
    _normalize_chunk,
    _shingle_codes,
    _verify,
    group_pairs,
    near_duplicate_pairs,
)

# ------------------------------------------------------------------ synthetic corpus

_GREETINGS = [
    "Hi,",
    "Hello,",
    "Hey there,",
    "Good morning,",
    "Hi team,",
    "",
    "Hello support,",
    "Dear support team,",
    "Good afternoon,",
    "Hey,",
    "Hi again,",
    "Evening,",
]
_NAMES = [
    "Alex",
    "Maria",
    "Sam",
    "Priya",
    "Jonas",
    "Chen",
    "Fatima",
    "Luca",
    "Olivia",
    "Noah",
    "Aisha",
    "Mateo",
    "Yuki",
    "Emma",
    "Kwame",
    "Sofia",
    "Ivan",
    "Grace",
    "Omar",
    "Lena",
]
_PRODUCTS = [
    "wireless earbuds",
    "standing desk",
    "coffee grinder",
    "running shoes",
    "4K monitor",
    "mechanical keyboard",
    "air purifier",
    "yoga mat",
    "smart watch",
    "blender",
    "office chair",
    "phone case",
    "robot vacuum",
    "electric kettle",
    "hiking backpack",
    "gaming mouse",
    "desk lamp",
    "water bottle",
    "bluetooth speaker",
    "winter jacket",
    "baby monitor",
    "tablet stand",
    "portable charger",
    "rice cooker",
    "noise cancelling headset",
]
_PLANS = ["Basic", "Plus", "Premium", "Family", "Business", "Student", "Pro", "Starter"]
_DEVICES = [
    "iPhone 13",
    "Pixel 7",
    "Galaxy S22",
    "iPad",
    "MacBook",
    "Windows laptop",
    "Chromebook",
    "Android tablet",
    "Fire TV",
    "smart TV",
]
_FEATURES = [
    "dark mode",
    "offline sync",
    "photo backup",
    "order tracking",
    "wishlist",
    "two-factor login",
    "saved cards",
    "notifications",
    "search",
    "voice notes",
]
_ERRORS = [
    "invalid credentials",
    "session expired",
    "error 503",
    "account locked",
    "something went wrong",
    "network unavailable",
    "code 0x80070005",
]
_CARRIERS = ["UPS", "FedEx", "DHL", "USPS", "Royal Mail", "DPD", "Canada Post"]
_CITIES = [
    "Denver",
    "Lyon",
    "Osaka",
    "Leeds",
    "Austin",
    "Porto",
    "Krakow",
    "Melbourne",
    "Toronto",
    "Nairobi",
    "Seattle",
    "Munich",
]
_PARTS = ["lid", "screen", "strap", "base", "handle", "cable", "zipper", "battery cover"]
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_BRANDS = ["Acme", "Northwind", "Globex", "Initech", "Umbrella", "Hooli"]

# Each issue: the user's phrasings and the assistant's matching resolutions.
_ISSUES: list[tuple[list[str], list[str]]] = [
    (
        [
            "my order #{order} for the {product} hasn't arrived yet, it was supposed to be "
            "delivered on {date}.",
            "where is my {product}? Order {order} was due on {date} and nothing came.",
            "still waiting on order #{order} ({product}), the estimate said {date}.",
        ],
        [
            "I've checked order #{order} and it is currently with {carrier}; the new "
            "estimated delivery date is {date2}.",
            "your {product} left our warehouse late, {carrier} now expects to deliver it by "
            "{date2}.",
        ],
    ),
    (
        [
            "I was charged ${amount} twice for my {plan} subscription this month.",
            "there are two ${amount} payments for {plan} on my card statement.",
            "why did you bill me twice? I see ${amount} two times for the {plan} plan.",
        ],
        [
            "I can see the duplicate charge of ${amount} and I've issued a refund, which "
            "should appear within {n} business days.",
            "the second ${amount} payment was a processing error, it's reversed and you'll "
            "see it back in {n} days.",
        ],
    ),
    (
        [
            "the {product} I received on {date} is damaged, the {part} is cracked.",
            "my {product} arrived with a broken {part}, what can I do?",
            "I opened the {product} box and the {part} was smashed.",
        ],
        [
            "I've arranged a free replacement {product}, it will ship within {n} days and "
            "you don't need to send the damaged one back.",
            "sorry about the {part}! A new {product} is on its way by {carrier}, tracking "
            "follows by email.",
        ],
    ),
    (
        [
            "I can't log in to my account, it keeps saying '{error}' when I try from my {device}.",
            "login fails on my {device} with '{error}' every single time.",
            "I'm locked out, the {device} app shows '{error}' after I type my password.",
        ],
        [
            "please clear the app cache and sign in again; if it still fails, I've reset "
            "your login so you can choose a new password.",
            "'{error}' usually means an old session, so I've signed you out everywhere; try "
            "again on the {device} now.",
        ],
    ),
    (
        [
            "how do I change the shipping address on order #{order}? I just moved to {city}.",
            "can you send order {order} to my new address in {city} instead?",
            "I need to update where order #{order} goes, I'm in {city} now.",
        ],
        [
            "I've updated the address on order #{order} to your new place in {city}.",
            "done, order {order} will now be delivered to {city} by {carrier}.",
        ],
    ),
    (
        [
            "I want to cancel my {plan} plan before the next billing date on {date}.",
            "please stop my {plan} subscription, I don't want to be charged on {date}.",
            "how can I cancel {plan}? Renewal is on {date} and I don't need it anymore.",
        ],
        [
            "your {plan} plan is now set to cancel on {date2}, and you won't be charged again.",
            "I've turned off auto-renewal for {plan}; you keep access until {date2}.",
        ],
    ),
    (
        [
            "the {feature} feature stopped working after the last update on my {device}.",
            "since updating, {feature} does nothing on my {device}.",
            "{feature} broke on my {device} after the update this week.",
        ],
        [
            "our team is aware of the {feature} issue on {device} and a fix ships in version "
            "{version}.",
            "thanks for flagging {feature}; reinstalling fixes it for most {device} users "
            "until {version} is out.",
        ],
    ),
    (
        [
            "can I return the {product} I bought on {date}? It doesn't really fit my needs.",
            "I'd like to send back the {product} from {date}, it isn't what I expected.",
            "what's your return policy? The {product} I got on {date} is not for me.",
        ],
        [
            "yes, you can return it within {n} days; I've emailed you a prepaid {carrier} label.",
            "no problem, drop the {product} at any {carrier} point with the label I just sent.",
        ],
    ),
    (
        [
            "my package shows as delivered by {carrier} but I never got it. Tracking {tracking}.",
            "{carrier} says delivered ({tracking}) but there's nothing at my door.",
            "tracking {tracking} is marked delivered, yet I have no parcel from {carrier}.",
        ],
        [
            "I've opened a claim with {carrier} and will send a replacement if it isn't "
            "found within {n} days.",
            "{carrier} confirmed a possible misdelivery of {tracking}; we'll reship on "
            "{date2} if it doesn't turn up.",
        ],
    ),
    (
        [
            "I need an invoice for order #{order} with my company name on it.",
            "could you send a VAT invoice for order {order}? It's for my employer.",
            "my accountant needs a proper invoice for order #{order}.",
        ],
        [
            "I've sent the invoice for order #{order} to {email} with the company details added.",
            "the invoice for {order} is attached to your account under Orders, and a copy "
            "went to {email}.",
        ],
    ),
    (
        [
            "is the {product} compatible with my {device}? I couldn't find it in the specs.",
            "will the {product} work with a {device}?",
            "does the {product} pair with {device} or do I need an adapter?",
        ],
        [
            "the {product} works with the {device} over bluetooth, no adapter is needed.",
            "yes, {device} support was added in firmware {version} of the {product}.",
        ],
    ),
    (
        [
            "I'd like to upgrade from {plan} to {plan2}, how much more will it cost per month?",
            "what's the price difference between {plan} and {plan2}?",
            "thinking of moving up to {plan2} from {plan}, what will I pay?",
        ],
        [
            "the upgrade to {plan2} costs ${amount} more per month and takes effect immediately.",
            "{plan2} is ${amount} a month on top of {plan}, prorated from today.",
        ],
    ),
    (
        [
            "my discount code {code} isn't working at checkout, it says the code is invalid.",
            "the promo {code} gets rejected when I pay.",
            "why won't {code} apply to my cart?",
        ],
        [
            "that code expired on {date2}, but I've applied a {pct}% discount to your cart "
            "instead.",
            "{code} was for first orders only, so here is a {pct}% code you can use today.",
        ],
    ),
    (
        [
            "I forgot my password and the reset email never arrives at {email}.",
            "no password reset mail is coming to {email}, I've tried {n} times.",
            "I can't reset my password, nothing shows up in {email}.",
        ],
        [
            "I've resent the reset link; please also check your spam folder for mail from {brand}.",
            "our mail to {email} was bouncing, I fixed it and sent a new reset link.",
        ],
    ),
    (
        [
            "the app crashes every time I open {feature} on my {device}.",
            "opening {feature} closes the whole app on my {device}.",
            "{feature} makes the app crash instantly ({device}).",
        ],
        [
            "I've logged the crash with our engineers, and reinstalling the app should help "
            "until the fix in version {version}.",
            "version {version} fixes the {feature} crash and should reach your {device} this week.",
        ],
    ),
    (
        [
            "I ordered the wrong size of the {product}, can I exchange it for a larger one?",
            "the {product} is too small, can I swap it for the next size up?",
            "need a bigger {product}, this one doesn't fit. Exchange possible?",
        ],
        [
            "I've started an exchange for a larger size, and the new {product} ships today.",
            "sure, the larger {product} is reserved for you; send the small one back "
            "within {n} days.",
        ],
    ),
    (
        [
            "why was my refund of ${amount} for order #{order} not processed yet?",
            "I'm still waiting for the ${amount} refund on order {order}.",
            "where is my money? Order #{order} refund of ${amount} never showed up.",
        ],
        [
            "your refund of ${amount} was approved on {date2} and your bank may take {n} "
            "more days.",
            "the ${amount} for order {order} went out on {date2}; banks usually need {n} "
            "days to show it.",
        ],
    ),
    (
        [
            "the {product} stopped charging after {n} days of normal use.",
            "my {product} won't charge anymore, I've had it for {n} days.",
            "after {n} days the {product} battery doesn't charge at all.",
        ],
        [
            "that sounds like a faulty battery, so I've approved a warranty repair at no cost.",
            "please try another cable first; if the {product} still won't charge, we'll "
            "replace it under warranty.",
        ],
    ),
    (
        [
            "can you delete my account ({email}) and all the data you hold about me?",
            "please erase my data and close the account registered to {email}.",
            "I want my account {email} removed under GDPR.",
        ],
        [
            "I've submitted the deletion request; your account will be removed within {n} days.",
            "your data for {email} is scheduled for erasure and you'll get a confirmation "
            "on {date2}.",
        ],
    ),
    (
        [
            "I got someone else's {product} in my box instead of what I ordered (#{order}).",
            "wrong item in order {order}, I received a {product}.",
            "the parcel for order #{order} had a {product} in it, not my stuff.",
        ],
        [
            "I'm sorry about the mix-up, the right item is on its way and you can keep the "
            "{product}.",
            "that's our packing error; the correct items for {order} ship today by {carrier}.",
        ],
    ),
    (
        [
            "my {plan} trial ended but I was never told I'd be billed ${amount}.",
            "you charged me ${amount} when the {plan} trial ran out without any warning.",
            "the free {plan} trial turned into a ${amount} charge, I didn't agree to that.",
        ],
        [
            "I've refunded the ${amount} trial charge as a one-time courtesy.",
            "the ${amount} is refunded and {plan} is cancelled, so no further charges.",
        ],
    ),
    (
        [
            "the tracking link for order #{order} has not updated since {date}.",
            "order {order} tracking is stuck on the same status since {date}.",
            "no movement on tracking for #{order} since {date}, is it lost?",
        ],
        [
            "the carrier scanned it again in {city} this morning, so it is moving.",
            "{carrier} had a backlog in {city}; your parcel is moving again and due {date2}.",
        ],
    ),
    (
        [
            "do you ship to {city}? The checkout page does not list it.",
            "is delivery to {city} possible? I can't select it.",
            "I live in {city} and can't find it in the shipping options.",
        ],
        [
            "we do ship to {city}; the option appears once you enter the postcode at checkout.",
            "yes, {carrier} delivers to {city} in about {n} days.",
        ],
    ),
    (
        [
            "the price of the {product} dropped ${amount} a day after I bought it, can I "
            "get the difference back?",
            "I paid ${amount} more for the {product} than today's price, is there a price match?",
            "the {product} is ${amount} cheaper now, a day after my purchase.",
        ],
        [
            "I've refunded the ${amount} price difference to your original payment method.",
            "our price guarantee covers that, so ${amount} is on its way back to your card "
            "ending {last4}.",
        ],
    ),
]
_DETAILS = [
    "I've already tried restarting the app and my phone.",
    "This is the second time this has happened to me.",
    "I've been a customer for {n} years and never had this problem.",
    "Please help, I need it sorted before {date}.",
    "I contacted you last week about this but got no reply.",
    "My account email is {email}.",
    "It was a gift for my sister so I'm a bit stressed.",
    "I attached a photo of the problem to my previous email.",
    "The order number again is {order}.",
    "I'm travelling to {city} next week, so time matters.",
    "Your chat bot couldn't answer this question.",
    "I paid with a credit card ending in {last4}.",
    "Honestly this is pretty disappointing.",
    "I would prefer a refund over store credit.",
    "Thanks in advance for looking into it.",
    "The box itself looked fine when it arrived.",
    "I checked the FAQ but it doesn't cover my case.",
    "My neighbour didn't receive anything for me either.",
    "I'm using version {version} of the app.",
    "I really like your products otherwise.",
    "Could you also confirm my current billing address?",
    "My phone number on the account is {phone}.",
    "I'd appreciate an answer today if possible.",
    "It happens on both wifi and mobile data.",
    "My husband ordered from the same account last month without issues.",
    "I work night shifts, so email is best.",
    "The {product} is for my small business.",
    "I live in {city} if that matters.",
    "I'd rather not call, the hold times are long.",
    "Customer number {ref}, in case you need it.",
    "I also left a voicemail on {date}.",
    "A friend recommended your shop to me.",
]
_OPENERS = [
    "Thank you for reaching out to {brand} Support! I'm sorry to hear about the trouble.",
    "Hi {name}, thanks for contacting us. I understand how frustrating this must be.",
    "Hello {name}! Thanks for your patience while I looked into this.",
    "Thanks for getting in touch, {name}.",
    "Hi there, and thank you for contacting {brand}.",
    "I'm sorry for the inconvenience, {name}, let me help you with that.",
    "",
    "Thanks for the details, {name}.",
]
_EXTRAS = [
    "You'll get an email confirmation shortly.",
    "I've also added a note to your account.",
    "Your reference number is {ref}.",
    "If anything changes, just reply to this message.",
    "I've added {pct}% off your next order for the trouble.",
    "You can track everything from the Orders page.",
    "",
    "",
]
_WHEN = [
    "Since last {weekday}",
    "For about {n} days now",
    "Ever since I moved to {city}",
    "This morning",
    "Over the weekend",
    "Right after I paid",
    "Two days ago",
    "Earlier today",
    "Since the holidays",
    "After your last email",
    "Since {date}",
    "All week",
]
_WHAT = [
    "I've been going back and forth with your website",
    "my partner and I have been trying to sort this out",
    "I keep getting the same automated reply",
    "nothing I try seems to change anything",
    "I've been checking the app every few hours",
    "I had to borrow a friend's {product}",
    "I've lost quite a bit of time on this",
    "the help center pages keep timing out",
    "I haven't been able to use {feature} at all",
    "my kids have been asking about it",
    "I haven't been able to reach anyone by phone",
    "I've double-checked all my details",
]
_NEXT_DONE = [
    "I've escalated this to our {team} team",
    "I've noted everything on ticket {ref}",
    "I've asked a colleague in {team} to double-check",
    "I've flagged your account for priority handling",
    "I've set a reminder to follow up on {date2}",
    "I've copied our {team} lead on this",
]
_NEXT_WHY = [
    "and you'll hear from us by {date2}.",
    "so nothing more is needed from you.",
    "in case anything else comes up.",
    "and they'll email you within {n} hours.",
    "just to be safe.",
    "so you won't have to explain it again.",
]
_CLOSINGS = [
    "Is there anything else I can help you with?",
    "Have a great day!",
    "Let me know if you need anything else.",
    "Thanks for being a {brand} customer!",
    "Best regards, {brand} Support",
    "",
    "Take care!",
    "Happy to help any time.",
]

_SYNONYMS = {
    "order": "purchase",
    "arrived": "come",
    "damaged": "broken",
    "cancel": "stop",
    "help": "assist",
    "charged": "billed",
    "received": "got",
    "refund": "reimbursement",
    "email": "e-mail",
    "problem": "issue",
    "need": "want",
    "quickly": "soon",
    "really": "truly",
    "please": "kindly",
    "bought": "purchased",
    "stopped": "quit",
    "new": "updated",
    "account": "profile",
    "great": "nice",
    "shortly": "soon",
}
_APPENDED = [
    " Also, could you tell me when your store opens on weekends?",
    " P.S. Your website is much faster lately, nice work.",
    " One more thing: please update my phone number to the new one I gave you.",
    " By the way, do you have a loyalty program I could join?",
]


def _slots(rng: random.Random) -> dict[str, str]:
    """One conversation's facts, shared by the user's and the assistant's turns."""
    return {
        "order": str(rng.randrange(10000, 999999)),
        "product": rng.choice(_PRODUCTS),
        "date": f"{rng.choice(_MONTHS)} {rng.randrange(1, 29)}",
        "date2": f"{rng.choice(_MONTHS)} {rng.randrange(1, 29)}",
        "amount": f"{rng.randrange(5, 400)}.{rng.randrange(0, 100):02d}",
        "plan": rng.choice(_PLANS),
        "plan2": rng.choice(_PLANS),
        "part": rng.choice(_PARTS),
        "error": rng.choice(_ERRORS),
        "device": rng.choice(_DEVICES),
        "city": rng.choice(_CITIES),
        "feature": rng.choice(_FEATURES),
        "carrier": rng.choice(_CARRIERS),
        "tracking": f"1Z{rng.randrange(10**9, 10**10)}",
        "code": f"SAVE{rng.randrange(5, 50)}{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}",
        "email": f"{rng.choice(_NAMES).lower()}{rng.randrange(1, 999)}@example.com",
        "n": str(rng.randrange(2, 15)),
        "last4": str(rng.randrange(1000, 9999)),
        "version": f"{rng.randrange(2, 9)}.{rng.randrange(0, 20)}.{rng.randrange(0, 9)}",
        "phone": f"555-{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}",
        "brand": rng.choice(_BRANDS),
        "name": rng.choice(_NAMES),
        "pct": str(rng.choice([5, 10, 15, 20, 25])),
        "ref": f"CS-{rng.randrange(100000, 999999)}",
        "weekday": rng.choice(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]),
        "team": rng.choice(["billing", "logistics", "returns", "app", "accounts", "warehouse"]),
    }


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _conversation(rng: random.Random) -> str:
    """User asks about one issue (plus context and details); the assistant answers with a
    boilerplate opener, a matching resolution, maybe a next step, an extra and a closing."""
    asks, answers = rng.choice(_ISSUES)
    slots = _slots(rng)
    greeting = rng.choice(_GREETINGS)
    user = rng.choice(asks).format(**slots)
    user = f"{greeting} {user}" if greeting else _sentence(user)
    extra = [d.format(**slots) for d in rng.sample(_DETAILS, 2)]
    if rng.random() < 0.6:
        when, what = rng.choice(_WHEN), rng.choice(_WHAT)
        extra.insert(rng.randrange(3), f"{when}, {what}.".format(**slots))
    user = " ".join([user, *extra])
    parts = [
        rng.choice(_OPENERS).format(**slots),
        _sentence(rng.choice(answers).format(**slots)),
    ]
    if rng.random() < 0.6:
        parts.append(f"{rng.choice(_NEXT_DONE)} {rng.choice(_NEXT_WHY)}".format(**slots))
    parts.append(rng.choice(_EXTRAS).format(**slots))
    parts.append(rng.choice(_CLOSINGS).format(**slots))
    assistant = " ".join(p for p in parts if p)
    return f"User: {user}\nAssistant: {assistant}"


def _typo(text: str, rng: random.Random) -> str:
    """One character-level slip or its fix: swap, drop, double or replace a letter."""
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    i = rng.choice(letters[1:-1])
    kind = rng.randrange(4)
    if kind == 0:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    if kind == 2:
        return text[:i] + text[i] + text[i:]
    return text[:i] + rng.choice("aeioustrn") + text[i + 1 :]


def _word_edit(text: str, rng: random.Random) -> str:
    """Change, add or remove one word."""
    words = text.split(" ")
    kind = rng.randrange(3)
    idx = [i for i, w in enumerate(words) if w.strip(".,?!'").lower() in _SYNONYMS]
    if kind == 0 and idx:
        i = rng.choice(idx)
        w = words[i]
        core = w.strip(".,?!'")
        words[i] = w.replace(core, _SYNONYMS[core.lower()])
    elif kind == 1:
        i = rng.randrange(1, len(words))
        words.insert(i, rng.choice(["really", "just", "also", "still", "actually", "now"]))
    else:
        i = rng.randrange(1, len(words))
        if len(words[i]) > 1 and "\n" not in words[i]:
            del words[i]
    return " ".join(words)


def _surface(text: str, rng: random.Random) -> str:
    """Case, punctuation or whitespace changes only."""
    kind = rng.randrange(4)
    if kind == 0:
        return text.lower()
    if kind == 1:
        return text.replace(",", "").replace("!", ".")
    if kind == 2:
        return text.replace(" ", "  ").replace(".", " .")
    return text.replace("'", "’").rstrip(".!?") + "!!"


def _near_copy(text: str, rng: random.Random) -> str:
    """A realistic near duplicate: one or two edits of the kinds a re-submitted or lightly
    cleaned example shows (typo fix, a word changed/added/removed, case/punctuation, or a
    sentence appended to a long text)."""
    out = text
    for _ in range(rng.choice([1, 1, 2])):
        kind = rng.randrange(10)
        if kind < 3:
            out = _typo(out, rng)
        elif kind < 7:
            out = _word_edit(out, rng)
        elif kind < 9 or len(out) < 300:
            out = _surface(out, rng)
        else:
            out = out + rng.choice(_APPENDED)
    if out == text:
        out = _typo(out, rng)
    return out


def synthetic_texts(
    n: int, dup_rate: float = 0.05, seed: int = 0
) -> tuple[list[str], set[tuple[int, int]]]:
    """``n`` templated support-ticket chats (about 150-600 characters) and the planted
    near-duplicate pairs ``(i, j)``, ``i < j``: about ``dup_rate * n`` rows are edited copies
    of an earlier row. Rows that are not planted copies share templates, greetings and
    boilerplate but differ in content. Deterministic for a given seed."""
    rng = random.Random(seed)
    texts: list[str] = []
    planted: set[tuple[int, int]] = set()
    for j in range(n):
        if j >= 10 and rng.random() < dup_rate:
            i = rng.randrange(max(0, j - 50000), j)
            texts.append(_near_copy(texts[i], rng))
            planted.add((i, j))
        else:
            texts.append(_conversation(rng))
    return texts, planted


# --------------------------------------------------------------------------- peers


def _shingle_hash_lists(texts: Sequence[str]) -> list[list[int]]:
    """ftod's shingles of each text (the exact 5-gram codes of its normalised text, hashed
    to the 32 bits datasketch's default scheme takes), as lists of Python ints."""
    out: list[list[int]] = []
    for s in range(0, len(texts), 16384):
        sc = _shingle_codes(_normalize_chunk(texts[s : s + 16384]))
        h32 = (_fmix64(sc.codes) >> np.uint64(32)).tolist()
        start = 0
        for e in np.cumsum(sc.counts).tolist():
            out.append(h32[start:e])
            start = e
    return out


def datasketch_near_dup_pairs(
    texts: Sequence[str], threshold: float, num_perm: int
) -> tuple[list[tuple[int, int]], float]:
    """Pairs reported by datasketch ``MinHash`` + ``MinHashLSH(threshold, num_perm)`` (LSH
    candidates, unverified, which is what MinHashLSH returns) and the seconds taken.

    Same shingles as ftod. To favour datasketch, shingling uses ftod's vectorised code and
    the shingles are pre-hashed to 32-bit ints (``hashfunc=int``, no per-shingle SHA-1);
    ``MinHash.bulk`` then applies its permutations. The time covers shingling, MinHash, LSH
    insertion and one query per text."""
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    lists = _shingle_hash_lists(texts)
    t1 = time.perf_counter()
    mhs = MinHash.bulk(lists, num_perm=num_perm, hashfunc=int)
    t2 = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    with lsh.insertion_session() as session:
        for i, m in enumerate(mhs):
            if lists[i]:
                session.insert(i, m, check_duplication=False)
    pairs: set[tuple[int, int]] = set()
    for i, m in enumerate(mhs):
        if not lists[i]:
            continue
        for j in lsh.query(m):
            if j != i:
                pairs.add((min(i, int(j)), max(i, int(j))))
    t3 = time.perf_counter()
    print(
        f"datasketch: shingles {t1 - t0:.1f}s, MinHash {t2 - t1:.1f}s, LSH {t3 - t2:.1f}s",
        file=sys.stderr,
    )
    return sorted(pairs), t3 - t0


def ftod_near_dup_pairs(
    texts: Sequence[str], threshold: float
) -> tuple[list[tuple[int, int, float]], float]:
    """ftod's verified near-duplicate pairs ``(i, j, jaccard)`` and the seconds taken."""
    t0 = time.perf_counter()
    pairs = near_duplicate_pairs(texts, threshold)
    return pairs, time.perf_counter() - t0


def _score(
    texts: Sequence[str],
    found: Sequence[tuple[int, int]] | Sequence[tuple[int, int, float]],
    planted: set[tuple[int, int]],
    threshold: float,
) -> dict[str, float]:
    """recall: share of planted pairs reported. precision: share of reported pairs whose rows
    come from one original (a planted copy, or two copies of one original). precision_exact:
    share of reported pairs whose exact shingle Jaccard >= threshold (what was asked for)."""
    n = len(texts)
    label = np.arange(n)
    for g in group_pairs(n, planted):
        label[g] = g[0]
    found_set = {(int(p[0]), int(p[1])) for p in found}
    pairs = sorted(found_set)
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    _, _, sims = _verify(texts, texts, a, b, threshold)
    return {
        "recall": sum(1 for p in planted if p in found_set) / len(planted) if planted else 1.0,
        "precision": sum(1 for i, j in pairs if label[i] == label[j]) / len(pairs)
        if pairs
        else 1.0,
        "precision_exact": sims.size / len(pairs) if pairs else 1.0,
    }


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--num-perm", type=int, default=DEFAULT_NUM_PERM, help="for datasketch")
    ap.add_argument("--dup-rate", type=float, default=0.05)
    ap.add_argument("--skip-datasketch", action="store_true")
    args = ap.parse_args()

    t0 = time.perf_counter()
    texts, planted = synthetic_texts(args.rows, args.dup_rate)
    print(f"generated {len(texts)} texts in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    rss_before = _peak_rss_mb()

    ftod_pairs, ftod_s = ftod_near_dup_pairs(texts, args.threshold)
    ftod_rss = _peak_rss_mb()
    print(f"ftod: {ftod_s:.2f}s, {len(ftod_pairs)} pairs", file=sys.stderr)
    f = _score(texts, ftod_pairs, planted, args.threshold)
    result: dict[str, object] = {
        "rows": len(texts),
        "threshold": args.threshold,
        "planted_pairs": len(planted),
        "ftod_seconds": round(ftod_s, 3),
        "ftod_pairs": len(ftod_pairs),
        "ftod_recall": round(f["recall"], 4),
        "ftod_precision": round(f["precision"], 4),
        "ftod_precision_exact": round(f["precision_exact"], 4),
        "peak_rss_mb_before_ftod": round(rss_before, 1),
        "peak_rss_mb_after_ftod": round(ftod_rss, 1),
    }
    if not args.skip_datasketch:
        ds_pairs, ds_s = datasketch_near_dup_pairs(texts, args.threshold, args.num_perm)
        print(f"datasketch: {ds_s:.2f}s, {len(ds_pairs)} pairs", file=sys.stderr)
        d = _score(texts, ds_pairs, planted, args.threshold)
        result.update(
            {
                "datasketch_seconds": round(ds_s, 3),
                "datasketch_pairs": len(ds_pairs),
                "datasketch_recall": round(d["recall"], 4),
                "datasketch_precision": round(d["precision"], 4),
                "datasketch_precision_exact": round(d["precision_exact"], 4),
                "speedup": round(ds_s / ftod_s, 2) if ftod_s > 0 else None,
            }
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
