"""A seeded generator of realistic card-payment transactions with a fraud label.

Legitimate payments follow each customer's habits (home country, usual ticket, known devices,
day-time hours, mostly card-present for groceries and fuel, card-not-present for digital goods).
Fraud (about 2% of rows) comes from recognisable attack patterns, each with its own signature,
plus noise in both directions:

- card testing: card-not-present bursts of tiny amounts on digital goods/gambling/crypto, new device,
  often at night, with CVV failures;
- account takeover / stolen card details: card-not-present, high-risk categories, amounts far above
  the customer's average, new device, IP country different from the card's, some CVV mismatches;
- counterfeit (skimmed) cards: card-present swipe or manual entry abroad, far from home, at night;
- lost or stolen cards: card-present velocity bursts near home;
- synthetic identities: a share of the above on very young accounts;
- "friendly" fraud drawn from the legitimate distribution (undetectable by design), while
  legitimate travellers, new phones, night owls and big purchases make the patterns imperfect.

Optional signals are missing as they are in production, so a model learns a branch for "not
available" instead of reading a gap as ``false`` (LightGBM scores NaN as 0 for a feature it never
saw missing): ``ip_country`` is absent for card-present payments (a terminal has no customer IP)
and for 3% of card-not-present ones (10% of fraud: proxies hide the location); ``new_device`` (and
``device_id``) is absent for 30% of card-present payments and for 5% of card-not-present ones (20%
of fraud: fraudsters block device fingerprinting). The gaps are drawn from their own seeded stream,
so every other cell is what the same seed gave before they were added.

The rows are independent: their counters (``txn_count_1h``, ``new_device``, ...) are drawn per row,
not counted from a history. ``card_fraud/1`` (card_payment versions 1 and 2) and ``account_anomaly/1``
are trained on them, and tests read ``data/card_payments.csv`` as inputs; ``card_fraud/2`` is trained
on event streams instead (``engine.training.fraud_stream``), its counters computed by the serving code.

Run ``python -m engine.training.fraud_data --rows 60000 --seed 7 --out data/card_payments.csv``.
Deterministic for a seed (and a NumPy version).
"""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["COLUMNS", "generate", "main", "to_csv", "write_csv"]

COLUMNS = (
    "amount", "currency", "merchant_category", "merchant_country", "card_country", "ip_country",
    "card_present", "entry_mode", "hour", "customer_id", "device_id", "account_age_days",
    "txn_count_1h", "txn_count_24h", "amount_avg_30d", "new_device", "distance_from_home_km",
    "cvv_match", "is_fraud",
)

HOME_COUNTRIES = ("DE", "FR", "GB", "ES", "IT", "NL", "PL", "SE", "CH", "US")
HOME_WEIGHTS = (0.22, 0.15, 0.14, 0.09, 0.08, 0.06, 0.08, 0.05, 0.04, 0.09)
FOREIGN_COUNTRIES = (*HOME_COUNTRIES, "PT", "AT", "TR", "US", "TH", "BR", "NG", "RU", "CN", "AE")
CURRENCY = {"GB": "GBP", "US": "USD", "CH": "CHF", "PL": "PLN", "SE": "SEK"}
EURO = frozenset({"DE", "FR", "ES", "IT", "NL", "PT", "AT"})

CATEGORIES = ("grocery", "fuel", "restaurants", "apparel", "electronics", "travel",
              "digital_goods", "gambling", "money_transfer", "crypto")
CAT_WEIGHTS = np.array([0.30, 0.10, 0.15, 0.10, 0.06, 0.06, 0.12, 0.03, 0.06, 0.02])
CAT_PRESENT = np.array([0.95, 0.97, 0.90, 0.60, 0.50, 0.30, 0.02, 0.10, 0.10, 0.02])
CAT_AMOUNT = np.array([1.0, 1.3, 0.8, 1.6, 4.0, 6.0, 0.4, 1.5, 4.0, 5.0])
HOUR_PROFILE = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4, 5, 5.5, 6, 7, 6.5, 6, 6, 6.5, 7,
                         7, 6.5, 5.5, 4, 3, 2], dtype=float)
NIGHT_PROFILE = np.array([6, 7, 7, 6, 5, 3, 2, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5,
                          1.5, 2, 2, 2.5, 3, 4, 5], dtype=float)


def _pick(rng: np.random.Generator, options: Sequence[str], n: int, p: Sequence[float] | None = None) -> np.ndarray:
    probs = None if p is None else np.asarray(p, dtype=float) / np.sum(p)
    return np.asarray(options, dtype=object)[rng.choice(len(options), size=n, p=probs)]


def _foreign(rng: np.random.Generator, home: np.ndarray) -> np.ndarray:
    """A country other than each row's home country."""
    out = _pick(rng, FOREIGN_COUNTRIES, len(home))
    same = out == home
    while same.any():
        out[same] = _pick(rng, FOREIGN_COUNTRIES, int(same.sum()))
        same = out == home
    return out


class _Customers:
    def __init__(self, rng: np.random.Generator, n: int) -> None:
        self.ids = np.array([f"C{i:06d}" for i in range(n)], dtype=object)
        self.home = _pick(rng, HOME_COUNTRIES, n, HOME_WEIGHTS)
        young = rng.random(n) < 0.06
        self.age_days = np.where(young, rng.integers(1, 30, n), rng.integers(30, 3650, n))
        self.ticket = np.exp(rng.normal(3.5, 0.55, n))  # usual ticket, ~33 on average
        self.devices = rng.integers(1, 4, n)
        self.activity = rng.gamma(1.5, 1.0, n)


def _legit(rng: np.random.Generator, cust: _Customers, n: int) -> dict[str, np.ndarray]:
    c = rng.choice(len(cust.ids), size=n, p=cust.activity / cust.activity.sum())
    cat_idx = rng.choice(len(CATEGORIES), size=n, p=CAT_WEIGHTS / CAT_WEIGHTS.sum())
    present = rng.random(n) < CAT_PRESENT[cat_idx]
    travel = rng.random(n) < np.where(np.asarray(CATEGORIES)[cat_idx] == "travel", 0.35, 0.06)
    home = cust.home[c]
    merchant = np.where(travel, _foreign(rng, home), home)
    ip = np.where(present & travel & (rng.random(n) < 0.6), merchant, home)
    ip = np.where(~present & (rng.random(n) < 0.04), _foreign(rng, home), ip)  # VPNs, trips
    amount = cust.ticket[c] * CAT_AMOUNT[cat_idx] * np.exp(rng.normal(0, 0.7, n))
    big = rng.random(n) < 0.01  # the occasional legitimate big purchase
    amount = np.where(big, amount * rng.uniform(5, 15, n), amount)
    hour = rng.choice(24, size=n, p=HOUR_PROFILE / HOUR_PROFILE.sum())
    t1 = rng.poisson(0.25, n)
    distance = np.where(travel, rng.uniform(200, 3000, n), rng.exponential(8.0, n))
    return {
        "c": c, "cat": cat_idx, "present": present, "merchant": merchant, "ip": ip, "amount": amount,
        "hour": hour, "t1": t1, "t24": t1 + rng.poisson(2.2, n),
        "new_device": rng.random(n) < np.where(present, 0.01, 0.04),
        "distance": distance, "cvv": rng.random(n) < 0.995,
        "swipe_bias": np.zeros(n), "age_override": np.full(n, -1),
    }


def _fraud(rng: np.random.Generator, cust: _Customers, n: int) -> dict[str, np.ndarray]:
    base = _legit(rng, cust, n)  # start from ordinary rows: the "friendly" share stays like this
    kind = rng.choice(5, size=n, p=[0.20, 0.33, 0.17, 0.13, 0.17])
    c = base["c"]
    home = cust.home[c]

    def setcat(mask: np.ndarray, names: Sequence[str], p: Sequence[float]) -> None:
        idx = [CATEGORIES.index(x) for x in names]
        base["cat"][mask] = np.asarray(idx)[rng.choice(len(idx), size=int(mask.sum()), p=np.asarray(p) / np.sum(p))]

    night = rng.choice(24, size=n, p=NIGHT_PROFILE / NIGHT_PROFILE.sum())
    # 0: card testing
    m = kind == 0
    setcat(m, ["digital_goods", "gambling", "crypto"], [0.6, 0.25, 0.15])
    base["present"][m] = False
    base["amount"][m] = rng.uniform(0.5, 12.0, n)[m]
    base["t1"][m] = rng.integers(3, 15, n)[m]
    base["new_device"][m] = rng.random(n)[m] < 0.7
    base["cvv"][m] = rng.random(n)[m] < 0.6
    base["hour"][m] = np.where(rng.random(n) < 0.6, night, base["hour"])[m]
    base["ip"][m] = np.where(rng.random(n) < 0.5, _foreign(rng, home), home)[m]
    # 1: account takeover / stolen card details
    m = kind == 1
    setcat(m, ["electronics", "digital_goods", "crypto", "money_transfer", "travel"], [0.3, 0.2, 0.15, 0.25, 0.1])
    base["present"][m] = False
    base["amount"][m] = (cust.ticket[c] * rng.uniform(3, 30, n))[m]
    base["new_device"][m] = rng.random(n)[m] < 0.75
    base["ip"][m] = np.where(rng.random(n) < 0.55, _foreign(rng, home), home)[m]
    base["cvv"][m] = rng.random(n)[m] < 0.75
    base["hour"][m] = np.where(rng.random(n) < 0.4, night, base["hour"])[m]
    base["t1"][m] = base["t1"][m] + rng.poisson(1.0, n)[m]
    # 2: counterfeit card used abroad
    m = kind == 2
    setcat(m, ["electronics", "apparel", "fuel", "money_transfer", "restaurants"], [0.35, 0.25, 0.15, 0.15, 0.1])
    base["present"][m] = True
    base["swipe_bias"][m] = 1.0
    base["merchant"][m] = np.where(rng.random(n) < 0.85, _foreign(rng, home), home)[m]
    base["distance"][m] = rng.uniform(300, 9000, n)[m]
    base["amount"][m] = (cust.ticket[c] * rng.uniform(2, 15, n))[m]
    base["hour"][m] = np.where(rng.random(n) < 0.5, night, base["hour"])[m]
    # 3: lost or stolen card, near home, velocity
    m = kind == 3
    setcat(m, ["apparel", "electronics", "grocery", "fuel", "restaurants"], [0.3, 0.3, 0.15, 0.15, 0.1])
    base["present"][m] = True
    base["t1"][m] = rng.integers(3, 9, n)[m]
    base["distance"][m] = rng.uniform(5, 120, n)[m]
    base["amount"][m] = (cust.ticket[c] * rng.uniform(1.5, 8, n))[m]
    # 4: friendly fraud: unchanged
    # synthetic identities: a share of attacks on very young accounts
    young = (kind != 4) & (rng.random(n) < 0.25)
    base["age_override"][young] = rng.integers(1, 45, n)[young]
    base["t24"] = base["t1"] + rng.poisson(np.where(kind == 4, 2.2, 4.0), n)
    return base


def _entry_mode(rng: np.random.Generator, present: np.ndarray, swipe_bias: np.ndarray) -> np.ndarray:
    n = len(present)
    cp = _pick(rng, ("chip", "contactless", "swipe"), n, (0.45, 0.50, 0.05))
    cp_fraud = _pick(rng, ("swipe", "manual", "chip"), n, (0.65, 0.2, 0.15))
    cnp = _pick(rng, ("ecommerce", "manual"), n, (0.93, 0.07))
    return np.where(present, np.where(swipe_bias > 0, cp_fraud, cp), cnp)


def generate(rows: int = 60_000, seed: int = 7, fraud_rate: float = 0.02) -> list[dict[str, object]]:
    """``rows`` seeded transactions (dicts keyed by :data:`COLUMNS`), about ``fraud_rate`` fraud."""
    rng = np.random.default_rng(seed)
    cust = _Customers(rng, max(50, rows // 5))
    n_fraud = int(rng.binomial(rows, fraud_rate))
    parts = [_legit(rng, cust, rows - n_fraud), _fraud(rng, cust, n_fraud)]
    label = np.r_[np.zeros(rows - n_fraud, dtype=int), np.ones(n_fraud, dtype=int)]
    col = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = rng.permutation(rows)
    col = {k: v[order] for k, v in col.items()}
    label = label[order]
    c = col["c"]
    present = col["present"].astype(bool)
    entry = _entry_mode(rng, present, col["swipe_bias"])
    age = np.where(col["age_override"] >= 0, col["age_override"], cust.age_days[c])
    avg = cust.ticket[c] * np.exp(rng.normal(0, 0.15, rows))
    avg_missing = age < 30
    known_device = rng.integers(0, cust.devices[c])
    new_device = col["new_device"].astype(bool)
    gaps = np.random.default_rng([seed, 1])  # its own stream: the other cells stay as before
    fraud = label == 1
    ip_missing = present | (gaps.random(rows) < np.where(fraud, 0.10, 0.03))
    device_missing = gaps.random(rows) < np.where(present, 0.30, np.where(fraud, 0.20, 0.05))
    out = []
    for i in range(rows):
        cid = int(c[i])
        merchant = str(col["merchant"][i])
        out.append({
            "amount": round(float(max(col["amount"][i], 0.5)), 2),
            "currency": "EUR" if merchant in EURO else CURRENCY.get(merchant, "USD"),
            "merchant_category": CATEGORIES[int(col["cat"][i])],
            "merchant_country": merchant,
            "card_country": str(cust.home[cid]),
            "ip_country": None if ip_missing[i] else str(col["ip"][i]),
            "card_present": bool(present[i]),
            "entry_mode": str(entry[i]),
            "hour": int(col["hour"][i]),
            "customer_id": str(cust.ids[cid]),
            "device_id": None if device_missing[i] else
            f"D{cid:06d}{'N' + format(i, '06d') if new_device[i] else format(int(known_device[i]), '01d')}",
            "account_age_days": int(age[i]),
            "txn_count_1h": int(col["t1"][i]),
            "txn_count_24h": int(col["t24"][i]),
            "amount_avg_30d": None if avg_missing[i] else round(float(avg[i]), 2),
            "new_device": None if device_missing[i] else bool(new_device[i]),
            "distance_from_home_km": round(float(col["distance"][i]), 1) if present[i] else None,
            "cvv_match": None if present[i] else bool(col["cvv"][i]),
            "is_fraud": int(label[i]),
        })
    return out


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def to_csv(rows: Sequence[dict[str, object]]) -> str:
    """The rows as CSV text (header :data:`COLUMNS`, empty cells for missing, true/false booleans)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_cell(r[k]) for k in COLUMNS])
    return buf.getvalue()


def write_csv(path: Path, rows: int = 60_000, seed: int = 7) -> Path:
    """Generate and write the CSV to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_csv(generate(rows, seed)), encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write a seeded CSV of card payments."""
    ap = argparse.ArgumentParser(prog="python -m engine.training.fraud_data", description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=60_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("data/card_payments.csv"))
    args = ap.parse_args(argv)
    write_csv(args.out, args.rows, args.seed)
    print(f"wrote {args.rows} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
