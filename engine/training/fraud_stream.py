"""A seeded generator of card-payment event *streams*: customers with weeks of history, and attacks.

Unlike the row-wise ``engine.training.fraud_data`` (which invents each row's counters), this
generator produces what a payment service sees: time-stamped payments, one per event, labelled per
event, in event-time order. The behavioural features (velocity, average ticket, new device, cards
and customers per device, linked customers) are *not* generated: ``engine.training.stream_features``
computes them by replaying the stream through the serving code (engine.state), as of each event.

What is in a stream (every number below is a field of :class:`StreamParams`):

- **Customers** with a home country, an account opening date (6% open during the stream), a usual
  ticket (log-normal, ~33 on average), an activity rate (gamma, ``payments_per_day`` on average),
  a personal hour-of-day rhythm (most by day, some shifted later), one to three usual devices and
  one or two cards. Their payments follow their habits: mostly card-present groceries and fuel,
  card-not-present digital goods; 6% abroad; the occasional big purchase; a new phone now and then
  (4% of card-not-present payments); shopping trips of two to four payments within half an hour;
  3% of customers share a device with another customer (a household: legitimate sharing).
- **Stolen-card bursts** (``bursts``): a victim's card used by a fraudster from a device never
  seen, 3 to 10 payments within two hours, mostly card-not-present in high-risk categories, often
  at night, from a foreign IP, for 2 to 20 times the victim's ticket; a third card-present
  (counterfeit abroad or a lost card near home).
- **Card testing** (``card_tests``): one device and a throwaway account trying 8 to 30 stolen cards
  with one or two tiny payments each (0.5 to 12) within 45 minutes, digital goods, CVV often wrong.
- **Device-sharing rings** (``rings``): 4 to 8 young synthetic accounts sharing one or two devices,
  each paying 2 to 6 times over a few days for money transfers, electronics, crypto.
- **Friendly fraud** (``friendly_rate``): legitimate-looking payments labelled fraud (undetectable
  by design), so no model reaches an AUC of 1.

Optional fields are missing as in production: ``ip_country`` for card-present payments (and 3% of
card-not-present ones, 10% of the fraud), ``device_id`` for 30% of card-present payments (5% of
card-not-present ones, 15% of the fraud), ``card_number`` for 10% of card-present and 3% of
card-not-present payments (a network token was sent instead of the PAN), ``distance_from_home_km`` for card-not-present and
``cvv_match`` for card-present payments. ``hour`` is the UTC hour of ``event_time``.

Deterministic for a seed (and a NumPy version): ``generate_stream(StreamParams(seed=7))``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.training.fraud_data import (
    CAT_AMOUNT,
    CAT_PRESENT,
    CAT_WEIGHTS,
    CATEGORIES,
    CURRENCY,
    EURO,
    FOREIGN_COUNTRIES,
    HOME_COUNTRIES,
    HOME_WEIGHTS,
    HOUR_PROFILE,
    NIGHT_PROFILE,
)

__all__ = ["EVENT_FIELDS", "LABELS", "STREAM_START", "StreamParams", "generate_stream"]

STREAM_START = 1790812800  # 2026-10-01T00:00:00Z: the first instant of every generated stream
DAY = 86400
# The fields of one event: card_payment's input fields (version 2 and later) in its order, then the labels.
EVENT_FIELDS = (
    "amount", "currency", "merchant_category", "merchant_country", "card_country", "ip_country", "card_present",
    "entry_mode", "hour", "customer_id", "device_id", "card_number", "account_age_days", "distance_from_home_km",
    "cvv_match", "event_time",
)
LABELS = ("is_fraud", "pattern")
_HIGH_RISK = ("electronics", "digital_goods", "crypto", "money_transfer", "gambling")


@dataclass(frozen=True)
class StreamParams:
    """The knobs of a stream; the defaults give about 54,000 payments, 4% of them fraud."""

    seed: int = 7
    customers: int = 2000
    days: int = 42  # the stream's length: 30-day windows are warm for its last 12 days
    payments_per_day: float = 0.55  # a customer's mean (gamma-distributed across customers, shape 2)
    bursts: int = 150  # stolen-card bursts
    card_tests: int = 22  # card-testing runs
    rings: int = 25  # device-sharing rings
    friendly_rate: float = 0.002  # share of legitimate payments labelled fraud (friendly fraud)
    start: int = STREAM_START  # Unix seconds

    def __post_init__(self) -> None:
        if self.customers < 10 or self.days < 2 or self.payments_per_day <= 0:
            raise ValueError("a stream needs at least 10 customers, 2 days and a positive payment rate")
        if min(self.bursts, self.card_tests, self.rings) < 0 or not 0 <= self.friendly_rate < 1:
            raise ValueError("attack counts must be >= 0 and friendly_rate in [0, 1)")


def _luhn_pan(rng: np.random.Generator) -> str:
    """A 16-digit test PAN (prefix 4000) with a valid Luhn check digit."""
    body = "4000" + "".join(str(d) for d in rng.integers(0, 10, 11))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def _choice(rng: np.random.Generator, options: Sequence[str], p: Sequence[float] | None = None) -> str:
    probs = None if p is None else np.asarray(p, dtype=float) / np.sum(p)
    return str(options[int(rng.choice(len(options), p=probs))])


def _foreign(rng: np.random.Generator, home: str) -> str:
    while True:
        c = _choice(rng, FOREIGN_COUNTRIES)
        if c != home:
            return c


def _currency(country: str) -> str:
    return "EUR" if country in EURO else CURRENCY.get(country, "USD")


@dataclass
class _Customer:
    cid: str
    home: str
    opened: float  # Unix seconds
    ticket: float
    rate: float  # payments per day
    shift: int  # hours added to the population's rhythm
    devices: list[str]
    cards: list[str]


class _Builder:
    """Collects events; ``emit`` fills the derived fields (currency, hour, age) the same way for all."""

    def __init__(self, params: StreamParams) -> None:
        self.p = params
        self.rng = np.random.default_rng(params.seed)
        self.gaps = np.random.default_rng([params.seed, 1])  # missing cells: their own stream
        self.end = params.start + params.days * DAY
        self.events: list[tuple[float, int, dict[str, object]]] = []

    def emit(
        self, t: float, cust: _Customer, *, category: str, present: bool, amount: float, merchant: str,
        entry: str, device: str | None, card: str, ip: str | None, cvv: bool | None, distance: float | None,
        fraud: bool, pattern: str, opened: float | None = None,
    ) -> None:
        t = float(math.floor(t))
        if not self.p.start <= t < self.end:
            return
        ip_gap = present or self.gaps.random() < (0.10 if fraud else 0.03)
        device_gap = self.gaps.random() < (0.30 if present else 0.15 if fraud else 0.05)
        card_gap = self.gaps.random() < (0.10 if present else 0.03)  # a network token instead of the PAN
        age = max(0, int((t - (cust.opened if opened is None else opened)) // DAY))
        event: dict[str, object] = {
            "amount": round(float(max(amount, 0.5)), 2),
            "currency": _currency(merchant),
            "merchant_category": category,
            "merchant_country": merchant,
            "card_country": cust.home,
            "ip_country": None if ip_gap or ip is None else ip,
            "card_present": present,
            "entry_mode": entry,
            "hour": int((t % DAY) // 3600),
            "customer_id": cust.cid,
            "device_id": None if device_gap or device is None else device,
            "card_number": None if card_gap else card,
            "account_age_days": age,
            "distance_from_home_km": round(float(distance), 1) if present and distance is not None else None,
            "cvv_match": None if present else bool(cvv),
            "event_time": t,
            "is_fraud": int(fraud),
            "pattern": pattern,
        }
        self.events.append((t, len(self.events), event))


def _customers(b: _Builder) -> list[_Customer]:
    rng, p = b.rng, b.p
    out = []
    for i in range(p.customers):
        cid = f"C{i:06d}"
        young = rng.random() < 0.06
        opened = p.start + rng.uniform(0, max(1, p.days - 5)) * DAY if young else p.start - rng.uniform(30, 3650) * DAY
        shift = 0 if rng.random() < 0.85 else int(rng.integers(-2, 4))
        out.append(_Customer(
            cid, _choice(rng, HOME_COUNTRIES, HOME_WEIGHTS), float(opened), float(np.exp(rng.normal(3.5, 0.55))),
            float(rng.gamma(2.0, p.payments_per_day / 2.0)), shift,
            [f"D{i:06d}-{k}" for k in range(int(rng.integers(1, 4)))],
            [_luhn_pan(rng) for _ in range(int(rng.integers(1, 3)))],
        ))
    for i in range(p.customers - 1):  # households: 3% share a device with the next customer
        if rng.random() < 0.03:
            out[i + 1].devices.append(out[i].devices[0])
    return out


def _hour_time(rng: np.random.Generator, day_start: float, profile: np.ndarray, shift: int = 0) -> float:
    hour = (int(rng.choice(24, p=profile / profile.sum())) + shift) % 24
    return day_start + hour * 3600 + rng.uniform(0, 3600)


def _legit_payment(b: _Builder, c: _Customer, t: float, k: int, fraud: bool) -> None:
    rng = b.rng
    cat = int(rng.choice(len(CATEGORIES), p=CAT_WEIGHTS / CAT_WEIGHTS.sum()))
    present = bool(rng.random() < CAT_PRESENT[cat])
    abroad = bool(rng.random() < (0.35 if CATEGORIES[cat] == "travel" else 0.06))
    merchant = _foreign(rng, c.home) if abroad else c.home
    amount = c.ticket * CAT_AMOUNT[cat] * float(np.exp(rng.normal(0, 0.7)))
    if rng.random() < 0.01:  # the occasional legitimate big purchase
        amount *= rng.uniform(5, 15)
    if present:
        entry = _choice(rng, ("chip", "contactless", "swipe"), (0.45, 0.50, 0.05))
        device = c.devices[0] if rng.random() < 0.7 else None  # a phone wallet, when there is one
        ip = None
        distance: float | None = rng.uniform(200, 3000) if abroad else rng.exponential(8.0)
    else:
        entry = _choice(rng, ("ecommerce", "manual"), (0.93, 0.07))
        new = rng.random() < 0.04
        device = f"{c.cid}-new{k}" if new else c.devices[int(rng.integers(0, len(c.devices)))]
        ip = _foreign(rng, c.home) if rng.random() < 0.04 else c.home
        distance = None
    card = c.cards[0] if len(c.cards) == 1 or rng.random() < 0.8 else c.cards[1]
    b.emit(t, c, category=CATEGORIES[cat], present=present, amount=amount, merchant=merchant, entry=entry, device=device,
           card=card, ip=ip, cvv=bool(rng.random() < 0.995), distance=distance, fraud=fraud,
           pattern="friendly" if fraud else "legit")


def _legit(b: _Builder, customers: Sequence[_Customer]) -> None:
    rng, p = b.rng, b.p
    for c in customers:
        first = max(float(p.start), c.opened)
        days = (b.end - first) / DAY
        for k in range(int(rng.poisson(c.rate * days))):
            day = first + math.floor(rng.uniform(0, days)) * DAY
            t = max(first, _hour_time(rng, day - (day - p.start) % DAY, HOUR_PROFILE, c.shift))
            trip = int(rng.integers(2, 5)) if rng.random() < 0.08 else 1  # a shopping trip: a few payments in half an hour
            for j in range(trip):
                _legit_payment(b, c, t + j * rng.uniform(60, 600), k * 10 + j, bool(rng.random() < p.friendly_rate))


def _night(b: _Builder, low: float) -> float:
    day = b.p.start + math.floor(b.rng.uniform(low, b.p.days)) * DAY
    return _hour_time(b.rng, day, NIGHT_PROFILE)


def _bursts(b: _Builder, customers: Sequence[_Customer]) -> None:
    rng = b.rng
    weights = np.array([c.rate for c in customers])
    for k in range(b.p.bursts):
        v = customers[int(rng.choice(len(customers), p=weights / weights.sum()))]
        t0 = _night(b, 3) if rng.random() < 0.5 else b.p.start + rng.uniform(3, b.p.days) * DAY
        kind = _choice(rng, ("cnp", "counterfeit", "lost"), (0.67, 0.18, 0.15))
        device = f"F{k:05d}"
        abroad = _foreign(rng, v.home)
        n = int(rng.integers(3, 11))
        for t in sorted(t0 + rng.uniform(0, 7200, n)):
            if kind == "cnp":
                cat = _choice(rng, ("electronics", "digital_goods", "crypto", "money_transfer", "travel"), (0.3, 0.2, 0.15, 0.25, 0.1))
                b.emit(t, v, category=cat, present=False, amount=v.ticket * rng.uniform(2, 20),
                       merchant=abroad if rng.random() < 0.4 else v.home, entry="ecommerce" if rng.random() < 0.85 else "manual",
                       device=device, card=v.cards[0], ip=abroad if rng.random() < 0.6 else v.home,
                       cvv=bool(rng.random() < 0.85), distance=None, fraud=True, pattern="stolen_card")
            else:
                far = kind == "counterfeit"
                cat = _choice(rng, ("electronics", "apparel", "fuel", "money_transfer", "restaurants"), (0.35, 0.25, 0.15, 0.15, 0.1))
                b.emit(t, v, category=cat, present=True, amount=v.ticket * rng.uniform(1.5, 12),
                       merchant=abroad if far else v.home,
                       entry=_choice(rng, ("swipe", "manual", "chip") if far else ("contactless", "chip", "swipe"), (0.65, 0.2, 0.15)),
                       device=None, card=v.cards[0], ip=None, cvv=None,
                       distance=rng.uniform(300, 9000) if far else rng.uniform(5, 120), fraud=True,
                       pattern="counterfeit" if far else "lost_card")


def _card_tests(b: _Builder, customers: Sequence[_Customer]) -> None:
    rng = b.rng
    for k in range(b.p.card_tests):
        t0 = _night(b, 1) if rng.random() < 0.6 else b.p.start + rng.uniform(1, b.p.days) * DAY
        home = _choice(rng, HOME_COUNTRIES, HOME_WEIGHTS)
        account = _Customer(f"X{k:05d}", home, t0 - rng.uniform(0, 2) * DAY, 5.0, 0.0, 0, [f"T{k:05d}"], [])
        ip = _foreign(rng, home) if rng.random() < 0.5 else home
        for _ in range(int(rng.integers(8, 31))):
            victim = customers[int(rng.integers(0, len(customers)))]
            card = victim.cards[0]
            for t in sorted(t0 + rng.uniform(0, 2700, int(rng.integers(1, 3)))):
                holder = _Customer(account.cid, victim.home, account.opened, 5.0, 0.0, 0, [], [])
                b.emit(t, holder, category=_choice(rng, ("digital_goods", "gambling", "crypto"), (0.6, 0.25, 0.15)),
                       present=False, amount=rng.uniform(0.5, 12.0), merchant=_foreign(rng, victim.home) if rng.random() < 0.3 else victim.home,
                       entry="ecommerce", device=account.devices[0], card=card, ip=ip, cvv=bool(rng.random() < 0.5),
                       distance=None, fraud=True, pattern="card_testing")


def _rings(b: _Builder) -> None:
    rng = b.rng
    for k in range(b.p.rings):
        home = _choice(rng, HOME_COUNTRIES, HOME_WEIGHTS)
        devices = [f"RD{k:04d}-{d}" for d in range(int(rng.integers(1, 3)))]
        t0 = b.p.start + rng.uniform(2, b.p.days - 1) * DAY
        for j in range(int(rng.integers(4, 9))):
            member = _Customer(f"R{k:04d}-{j}", home, t0 - rng.uniform(1, 60) * DAY, 150.0, 0.0, 0, devices, [_luhn_pan(rng)])
            for t in t0 + rng.uniform(0, rng.uniform(1, 5) * DAY, int(rng.integers(2, 7))):
                b.emit(t, member, category=_choice(rng, ("money_transfer", "electronics", "crypto", "digital_goods"), (0.4, 0.3, 0.15, 0.15)),
                       present=False, amount=rng.uniform(80, 900), merchant=home if rng.random() < 0.7 else _foreign(rng, home),
                       entry="ecommerce", device=devices[int(rng.integers(0, len(devices)))], card=member.cards[0],
                       ip=home if rng.random() < 0.6 else _foreign(rng, home), cvv=bool(rng.random() < 0.95), distance=None,
                       fraud=True, pattern="device_ring")


def generate_stream(params: StreamParams | None = None) -> list[dict[str, object]]:
    """The events of a stream in event-time order (ties in generation order), each a dict of
    :data:`EVENT_FIELDS` plus ``is_fraud`` (0/1) and ``pattern`` (legit, friendly, stolen_card,
    counterfeit, lost_card, card_testing, device_ring). ``event_time`` is in Unix seconds.

    Raises ValueError for parameters outside their documented ranges (``StreamParams``).
    """
    p = params if params is not None else StreamParams()
    b = _Builder(p)
    customers = _customers(b)
    _legit(b, customers)
    _bursts(b, customers)
    _card_tests(b, customers)
    _rings(b)
    b.events.sort(key=lambda e: (e[0], e[1]))
    return [e for _, _, e in b.events]
