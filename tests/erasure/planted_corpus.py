"""A corpus of our own making for truthful verdicts: people whose details others restate in forms no
built-in recognizer knows, a copy of a ticket under another owner, and a held-out person named elsewhere.

The base is the demo generator's customers (ordinary tickets from templates); the planted people have
identifiers in formats the demo never uses (an account number KX-4471-2290-Q, codes ZR-7731-0042), and
other customers' tickets restate them in lower case, with spaces, without the middle name.
"""

from __future__ import annotations

from lethe.demo.corpus import DemoCorpus, generate_corpus

__all__ = ["PLANTED", "planted_corpus"]

BASE = {"customers": 40, "seed": 5}


def _person(name: str, email: str, phone: str, account: str, code: str) -> dict:
    return {"name": name, "email": email, "phone": phone, "account_id": account, "code": code}


PLANTED = {
    # Erased by email only; another customer's ticket restates her name, account and code.
    "restated": _person("Orla Maeve Brennan-Quist", "orla.bq@example.org", "+1 415 555 0187", "KX-4471-2290-Q",
                        "ZR-7731-0042"),
    # The same, but a reviewer excludes the restating ticket from the scope: the verdict must say so.
    "excluded": _person("Tobias Ferreira-Lund", "t.ferreira.lund@example.net", "+1 503 555 0143", "QW-9182-3340-E",
                        "PM-5521-8870"),
    # One of his tickets is copied, nearly verbatim, into another customer's ticket.
    "copied": _person("Imre Castellanos", "imre.c@example.com", "+1 612 555 0116", "LB-2207-6618-T",
                      "HT-6109-2354"),
}
# Her own tickets reach Lethe only after the adapters were trained; a trained ticket names her.
LATE = _person("Wilhelmina Oduya", "w.oduya@example.org", "+1 702 555 0164", "RT-5530-1198-K", "GV-4410-9963")


def _tickets(p: dict) -> list[str]:
    first = p["name"].split()[0]
    return [
        f"Hi, this is {p['name']}. Account {p['account_id']} was charged twice this month; please refund one "
        f"charge. You can reach me at {p['phone']}.",
        f"The reset code {p['code']} you sent me does not work for account {p['account_id']}. Could you send a "
        f"new one to {p['email']}? Thanks, {first}",
        f"Please update the shipping address on account {p['account_id']}; I moved last week. {p['name']}",
    ]


def _restatement(host: dict, p: dict) -> str:
    words = p["name"].replace("-", " ").split()
    plain = " ".join([words[0], *words[2:]]).lower()  # no middle name, no hyphen, lower case
    account = " ".join(p["account_id"].replace("-", " ").split()).lower()
    code = p["code"].replace("-", " ").lower()
    return (f"Hello, {host['name']} here. I am writing for a friend, {plain}: her acct {account} is locked and "
            f"the code {code} she was given is refused. Could someone call her back?")


COPIED_TICKET = ("The standing desk from order ORD-550123 wobbles and the left leg bracket cracked on the second "
                 "day. I attached photos of the bracket and of the box it arrived in.")


def planted_corpus() -> DemoCorpus:
    """The base customers' tickets plus the planted people's, with the ground truth of what was planted."""
    base = generate_corpus(**BASE)
    customers = base.truth["customers"]
    records = list(base.records)
    truth = {"base_customers": len(customers), "planted": {}}
    for n, (role, p) in enumerate(PLANTED.items()):
        subject = {k: p[k] for k in ("name", "email", "phone", "account_id")}
        texts = _tickets(p) + ([COPIED_TICKET] if role == "copied" else [])
        own = [f"p-{role}-{i}" for i in range(len(texts))]
        records += [{"id": rid, "subject": subject, "text": text, "source": "helpdesk"}
                    for rid, text in zip(own, texts)]
        host = customers[3 + n]
        other = {"email": host["email"], "phone": host["phone"], "account_id": host["account_id"],
                 "name": host["name"]}
        extra = f"p-{role}-other"
        text = _restatement(host, p) if role != "copied" else COPIED_TICKET.replace("two photos", "photos") + \
            " Kind regards."
        records.append({"id": extra, "subject": other, "text": text, "source": "helpdesk"})
        truth["planted"][role] = {"own": own, "other": extra, "host": 3 + n, **p}
    host = customers[10]
    records.append({"id": "p-late-mention", "subject": {"email": host["email"], "name": host["name"]},
                    "text": f"Please copy my colleague Wilhelmina Oduya ({LATE['email']}) on this ticket; she "
                            "manages the invoices for our team.", "source": "helpdesk"})
    subject = {k: LATE[k] for k in ("name", "email", "phone", "account_id")}
    truth["late"] = {**LATE, "mention": "p-late-mention", "records": [
        {"id": f"p-late-{i}", "subject": subject, "text": text, "source": "helpdesk"}
        for i, text in enumerate(_tickets(LATE))]}
    return DemoCorpus(records=records, truth=truth)
