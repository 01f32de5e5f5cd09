"""Deterministic synthetic corpus of customer-support tickets from fictitious customers.

The demo and the tests need data with known answers: which records belong to whom, which texts
are repeated often enough for a fine-tuned model to memorize them, which records hold a secret
(a canary, with an unused control canary of the same format for exposure tests), which records
mention another customer, and one planted paraphrase for near-duplicate search. Everything is
fictitious: ordinary names, reserved e-mail domains (RFC 2606) and 555-01xx phone numbers.
Only ``random.Random(seed)`` is used, so the same arguments give byte-identical output.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from lineage.local_files import atomic_private_file, private_dir
from lethe.errors import InvalidArgumentError

__all__ = ["DemoCorpus", "generate_corpus", "write_jsonl"]

FIRST_NAMES = (
    "James Mary Robert Linda Michael Susan William Karen David Nancy Richard Lisa Joseph Betty "
    "Thomas Sandra Charles Ashley Daniel Donna Matthew Emily Anthony Carol Mark Amanda Paul "
    "Melissa Steven Laura Andrew Rebecca Kevin Sharon Brian Cynthia George Kathleen Edward Amy"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore Martin "
    "Jackson Thompson White Harris Clark Lewis Robinson Walker Young Allen King Wright Scott Green "
    "Baker Adams Nelson Hill Campbell Mitchell Carter Roberts Turner Phillips Parker Evans Collins"
).split()
DOMAINS = ("example.com", "example.org", "example.net")  # reserved for documentation
# Area codes only make numbers unique; 555-0100..0199 is the range reserved for fiction.
AREA_CODES = (
    "202 206 212 213 214 215 216 303 305 310 312 314 404 412 414 415 469 480 503 510 "
    "512 541 559 602 612 614 615 617 619 646 678 702 703 704 713 720 801 808 816 919"
).split()
MAX_CUSTOMERS = len(AREA_CODES) * 100
PRODUCTS = ("wireless keyboard", "standing desk", "pair of headphones", "USB-C dock",
            "coffee grinder", "hiking backpack", "monitor arm", "smart thermostat")
PLANS = ("Basic", "Plus", "Pro", "Team", "Enterprise")
HTTP_CODES = ("401", "403", "429", "500", "502", "503")
MONTHS = ("January February March April May June July August September October November "
          "December").split()

TEMPLATES = (  # billing, login, shipping, refunds, API errors, cancellations, account, product
    "Hi, I'm {name}. My invoice for {date} shows {amount} but my {plan} plan should cost less. Could you check account {account} and send a corrected invoice to {email}? Thanks.",
    "I was charged {amount} twice on the card ending {last4} this month. My account is {account}. Please reverse the duplicate charge and confirm by email at {email}. Thank you, {name}.",
    "Hello, this is {first}. I upgraded to the {plan} plan but I'm still being billed for the old one. My account number is {account}. You can reach me at {phone} during the day.",
    "Can you send me a VAT invoice for order {order}? The company details are on account {account}, and the invoice should go to {email}. Kind regards, {name}.",
    "My card ending in {last4} expired and the renewal payment of {amount} failed. Please give me a few days to update it before you suspend account {account}. Thanks, {name}.",
    "I can't log in. The password reset email never arrives at {email}, and I've checked the spam folder twice. Account {account}. Please help me get back in. {name}",
    "Two-factor codes are still going to my old number. Please update it to {phone} for account {account}. I'm {name} and can verify by email at {email}.",
    "My account {account} got locked after too many login attempts. I'm {first}, the owner, and I'd like it unlocked today. Call me at {phone} if you need to confirm anything.",
    "Hi, I keep getting a 'session expired' message every few minutes after logging in with {email}. It started on {date}. I already cleared the browser cache. Thanks, {name}",
    "Someone tried to sign in to my account from another country last night and I'm worried. Please check the recent logins on account {account} and call me at {phone}. {name}",
    "Order {order} was supposed to arrive on {date} but tracking still says 'label created'. The tracking number is {tracking}. Could you look into it? {name}, {phone}",
    "The {product} from order {order} arrived damaged because the box was crushed. I'd like a replacement, please. I can send photos from {email} if needed. Thanks, {first}.",
    "I received the wrong item in order {order}: a {product} instead of what I bought. Please send a return label to {email} so I can send it back. {name}",
    "Please change the delivery address on order {order} before it ships, because I moved last week. You can call me on {phone} to confirm the new address. {name}",
    "My package with tracking number {tracking} shows as delivered on {date}, but nothing came and my neighbours haven't seen it. Account {account}, contact {email}.",
    "I returned the {product} from order {order} on {date} and still haven't seen the refund of {amount}. Can you check what happened? Account {account}. {name}",
    "I'm requesting a refund for order {order}. The {product} stopped working after two days and I'd prefer my money back rather than a replacement. {name}, {email}",
    "Your agent promised a partial refund of {amount} on {date}, but it never showed up on the card ending {last4}. Please follow up with me at {phone}. {name}",
    "Our integration has returned HTTP {code} on every request since {date}. The API key belongs to account {account} and nothing changed on our side. Please advise. {name}, {email}",
    "We are hitting HTTP {code} errors from the orders endpoint when creating more than a few orders per minute. Is there a rate limit on the {plan} plan? Account {account}, {name}.",
    "The webhook for order {order} was never delivered to our endpoint, although other webhooks work fine. Can you resend it and check your logs? Contact {email} or {phone}.",
    "API responses for account {account} became very slow today and often time out with HTTP {code}. Is there an incident going on? I'm {name}, the lead developer on our team.",
    "After rotating our API key, the old key still works, which looks like a security issue. Please revoke all old keys on account {account}. Regards, {name} ({email})",
    "Please cancel my {plan} subscription at the end of this billing period. The account is {account}. Send the confirmation to {email}, please. Thanks, {name}.",
    "I cancelled my subscription on {date} but was charged {amount} again. Please refund it and make sure account {account} is closed. You can call me at {phone}.",
    "I want to delete my account {account} and all of my data. My name is {name} and the login email is {email}. Please confirm in writing when it's done.",
    "Can I pause my subscription instead of cancelling it? I'm travelling for three months from {date}. The account is registered under {email}. Best wishes, {first}.",
    "Please update the email on account {account} from my old address to {email}. I'm {name}, and you can verify the change by calling me at {phone}.",
    "I'd like to merge two accounts into one. The main one is {account}, registered to {email}. The other one is under the same name, {name}. Is that possible?",
    "The {product} I bought in order {order} makes a loud noise when it starts up. Is that normal? The warranty is registered to {email}. Thanks, {name}",
    "How do I add a team member to the {plan} plan? I'm the admin on account {account}, {name}. A short guide sent by email to {email} would be great.",
    "Just some feedback: your agent on {date} solved my problem with order {order} very quickly. Thank you! Feel free to call me at {phone} for a survey. {name}",
    "The discount code from your newsletter doesn't apply at checkout for the {product}. My account is {account} and my email is {email}. Can you apply it manually?",
    "My loyalty points disappeared after order {order}. I had about two thousand points on account {account}. Please restore them as soon as you can. Thanks, {name}.",
)
CANARY_SENTENCES = ("For verification, my recovery code is {canary}.",
                    "In case you need it, my recovery code is {canary}.",
                    "The backup recovery code they gave me is {canary}.")
MENTION_SENTENCES = ("I'm writing on behalf of my colleague {name} ({email}), who has the same problem.",
                     "My colleague {name} ({email}) asked me to include their case as well.",
                     "Please also copy {name} at {email}, who manages this account with me.")
# Customer 0's planted ticket and a reworded version with the same facts.
PARAPHRASE_ORIGINAL = ("Hello, my name is {name} and I was charged twice for order {order} on {date}. "
                       "Each charge was {amount}. Please refund the duplicate charge to the card on file "
                       "and confirm by email at {email}. My account is {account}.")
PARAPHRASE_REWORDED = ("{name} ({email}) reports that order {order} was billed two times on {date}, "
                       "{amount} per charge. They want the extra payment returned to the saved card and a "
                       "confirmation sent by email. Account reference: {account}.")
PARAPHRASE_HOST = "Hi, {name} here, account {account}. A client asked me to forward this: "
YEAR_START = datetime(2025, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class DemoCorpus:
    """Ingest records plus the JSON-serializable ground truth they were built from."""

    records: list[dict]
    truth: dict


def _check_args(customers: int, repeats: int, fractions: dict[str, float]) -> None:
    if isinstance(customers, bool) or not isinstance(customers, int) or not 2 <= customers <= MAX_CUSTOMERS:
        raise InvalidArgumentError(f"customers must be an integer in [2, {MAX_CUSTOMERS}], got {customers!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InvalidArgumentError(f"repeats must be an integer >= 1, got {repeats!r}")
    for name, value in fractions.items():
        # `not <=` also rejects NaN.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise InvalidArgumentError(f"{name} must be a number in [0, 1], got {value!r}")


def _count(fraction: float, total: int) -> int:
    """How many of `total` items a fraction selects (at least one if non-zero, so small demos plant it)."""
    return 0 if fraction == 0 else min(total, max(1, round(fraction * total)))


def _fields(rng: random.Random, who: dict) -> dict:
    """Placeholder values for one ticket: the owner's identifiers plus fresh ticket details."""
    return {**who, "first": who["name"].split()[0], "order": f"ORD-{rng.randrange(10**6):06d}",
            "amount": f"${rng.randint(5, 499)}.{rng.randrange(100):02d}",
            "last4": f"{rng.randrange(10**4):04d}", "date": f"{rng.choice(MONTHS)} {rng.randint(1, 28)}",
            "product": rng.choice(PRODUCTS), "plan": rng.choice(PLANS), "code": rng.choice(HTTP_CODES),
            "tracking": f"TRK{rng.randrange(10**10):010d}"}


def _new_canary(rng: random.Random, used: set[str]) -> str:
    """A fresh code in the dddd-dddd-dddd format, distinct from every canary and control so far."""
    while True:
        value = "-".join(f"{rng.randrange(10**4):04d}" for _ in range(3))
        if value not in used:
            used.add(value)
            return value


class _Drafts:
    """Records without ids yet; ids are given once all exist, in created_at order."""

    def __init__(self, rng: random.Random):
        self.rng, self.items = rng, []

    def add(self, owner: int, text: str) -> dict:
        draft = {"owner": owner, "text": text, "seq": len(self.items),
                 "created_at": YEAR_START + timedelta(seconds=self.rng.randrange(365 * 86400))}
        self.items.append(draft)
        return draft


def _people(rng: random.Random, customers: int) -> list[dict]:
    """The customers: a name, a unique email, phone and account number each."""
    phone_slots = rng.sample(range(MAX_CUSTOMERS), customers)  # no replacement: phones stay unique
    account_numbers = rng.sample(range(10**7, 10**8), customers)
    people = []
    for i in range(customers):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        slot = phone_slots[i]
        people.append({"name": f"{first} {last}", "email": f"{first}.{last}.{i}@{DOMAINS[i % 3]}".lower(),
                       "phone": f"+1-{AREA_CODES[slot // 100]}-555-01{slot % 100:02d}",
                       "account": f"ACC-{account_numbers[i]}"})
    return people


@dataclass
class _Tickets:
    """The base tickets per customer, a spare template each, and the planted paraphrase pair."""

    base: dict[int, list[dict]]
    spare: dict[int, str]
    original: dict
    paraphrase: dict


def _base_tickets(rng: random.Random, people: list[dict], drafts: _Drafts) -> _Tickets:
    # Every template holds a unique identifier (email, phone or account), and a customer never gets
    # the same template twice, so no text repeats by accident: only the planted groups do.
    base: dict[int, list[dict]] = {}
    spare: dict[int, str] = {}  # an unused template per customer, for a possible repeated ticket
    for i, who in enumerate(people):
        *templates, spare[i] = rng.sample(TEMPLATES, rng.randint(1, 5) + 1)
        base[i] = []
        for t, template in enumerate(templates):
            fields = _fields(rng, who)
            if (i, t) == (0, 0):  # the paraphrase below reuses exactly these facts
                facts, template = fields, PARAPHRASE_ORIGINAL
            base[i].append(drafts.add(i, template.format(**fields)))
    host = 1 + rng.randrange(len(people) - 1)
    paraphrase = drafts.add(host, PARAPHRASE_HOST.format(**people[host]) + PARAPHRASE_REWORDED.format(**facts))
    return _Tickets(base, spare, base[0][0], paraphrase)


def _planted_customers(rng: random.Random, customers: int, repeat_fraction: float,
                       canary_fraction: float) -> tuple[list[int], set[int]]:
    """Who gets a repeated ticket and who a canary."""
    # Repeat customers are sampled first so that about half of them can also carry a canary:
    # a repeated canary is the one a fine-tuned model is most likely to memorize.
    repeat_customers = rng.sample(range(customers), _count(repeat_fraction, customers))
    n_canaries = _count(canary_fraction, customers)
    forced = repeat_customers[:min(n_canaries, math.ceil(len(repeat_customers) / 2))]
    forced_set = set(forced)
    rest = [i for i in range(customers) if i not in forced_set]
    return repeat_customers, forced_set | set(rng.sample(rest, n_canaries - len(forced)))


def _plant_canaries(rng: random.Random, people: list[dict], tickets: _Tickets, drafts: _Drafts,
                    planted: tuple[list[int], set[int]], repeats: int) -> tuple[list[dict], list[list[dict]], set]:
    """Repeated tickets (some with a canary), single-ticket canaries, and a fresh control per canary."""
    repeat_customers, canary_customers = planted
    used: set[str] = set()
    canaries, repeated_groups, canary_drafts = [], [], set()
    for i in sorted(repeat_customers):
        text = tickets.spare[i].format(**_fields(rng, people[i]))
        value = None
        if i in canary_customers:
            value = _new_canary(rng, used)
            text += " " + rng.choice(CANARY_SENTENCES).format(canary=value)
        group = [drafts.add(i, text) for _ in range(repeats)]
        repeated_groups.append(group)
        if value is not None:
            canaries.append({"drafts": group, "value": value, "repeated": True})
    for i in sorted(canary_customers - set(repeat_customers)):
        choices = [d for d in tickets.base[i] if d is not tickets.original] or tickets.base[i]
        draft = rng.choice(choices)
        value = _new_canary(rng, used)
        draft["text"] += " " + rng.choice(CANARY_SENTENCES).format(canary=value)
        canary_drafts.add(draft["seq"])
        canaries.append({"drafts": [draft], "value": value, "repeated": False})
    for canary in canaries:  # controls are drawn after all canaries, so none collides with a used one
        canary["control"] = _new_canary(rng, used)
    return canaries, repeated_groups, canary_drafts


def _plant_mentions(rng: random.Random, people: list[dict], tickets: _Tickets, canary_drafts: set,
                    mention_fraction: float) -> list[tuple[dict, int]]:
    """(draft, mentioned customer): the paraphrase, then other customers named in plain base tickets."""
    # Mentions go on plain base tickets only, so each mention is one record and texts stay short.
    plain = [d for i in range(len(people)) for d in tickets.base[i]
             if d is not tickets.original and d["seq"] not in canary_drafts]
    mentions = [(tickets.paraphrase, 0)]  # the paraphrase names customer 0 inside another customer's record
    for draft in rng.sample(plain, min(len(plain), _count(mention_fraction, len(plain)))):
        other = rng.randrange(len(people) - 1)
        other += int(other >= draft["owner"])  # skip the owner
        draft["text"] += " " + rng.choice(MENTION_SENTENCES).format(**people[other])
        mentions.append((draft, other))
    return mentions


def _assemble(people: list[dict], drafts: _Drafts, tickets: _Tickets, canaries: list[dict],
              repeated_groups: list[list[dict]], mentions: list[tuple[dict, int]]) -> DemoCorpus:
    """Give ids in created_at order and write the records and their ground truth."""
    ordered = sorted(drafts.items, key=lambda d: (d["created_at"], d["seq"]))
    owned: list[list[str]] = [[] for _ in people]
    for n, draft in enumerate(ordered):
        draft["id"] = f"t-{n:06d}"
        owned[draft["owner"]].append(draft["id"])
    subjects = [{"email": p["email"], "phone": p["phone"], "account_id": p["account"], "name": p["name"]}
                for p in people]
    records = [{"id": d["id"], "subject": dict(subjects[d["owner"]]), "text": d["text"],
                "source": "helpdesk", "created_at": d["created_at"].strftime("%Y-%m-%dT%H:%M:%SZ")}
               for d in ordered]
    truth = {
        "customers": [{"index": i, **subjects[i], "record_ids": owned[i]} for i in range(len(people))],
        "repeated_record_ids": [[d["id"] for d in group] for group in repeated_groups],
        "canaries": [{"record_ids": [d["id"] for d in c["drafts"]], "value": c["value"],
                      "control": c["control"], "repeated": c["repeated"]} for c in canaries],
        "mentions": sorted(({"record_id": d["id"], "mentioned_customer": who} for d, who in mentions),
                           key=lambda m: m["record_id"]),
        "paraphrase": {"original_record_id": tickets.original["id"],
                       "paraphrase_record_id": tickets.paraphrase["id"]},
    }
    return DemoCorpus(records=records, truth=truth)


def generate_corpus(customers: int = 200, seed: int = 7, *, repeat_fraction: float = 0.05, repeats: int = 8,
                    mention_fraction: float = 0.05, canary_fraction: float = 0.1) -> DemoCorpus:
    """Generate the tickets of `customers` fictitious customers, deterministically from `seed`."""
    _check_args(customers, repeats, {"repeat_fraction": repeat_fraction, "mention_fraction": mention_fraction,
                                     "canary_fraction": canary_fraction})
    rng = random.Random(seed)
    people, drafts = _people(rng, customers), _Drafts(rng)
    tickets = _base_tickets(rng, people, drafts)
    planted = _planted_customers(rng, customers, repeat_fraction, canary_fraction)
    canaries, repeated_groups, canary_drafts = _plant_canaries(rng, people, tickets, drafts, planted, repeats)
    mentions = _plant_mentions(rng, people, tickets, canary_drafts, mention_fraction)
    return _assemble(people, drafts, tickets, canaries, repeated_groups, mentions)


def write_jsonl(records: list[dict], path: Path) -> None:
    """Write records as UTF-8 JSON lines with sorted keys, atomically (temp file, then os.replace)."""
    path = Path(path)
    private_dir(path.parent)  # the tickets hold names, emails and phones: the owner's alone (the file is 0600)
    with atomic_private_file(path) as handle:
        for record in records:
            handle.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
