"""Seeded synthetic screening lists and labelled name variants (no real person is on them).

``python -m engine.screening.synthetic --out lists`` writes the bundled lists
(``lists/sanctions_synthetic/1`` and ``lists/pep_synthetic/1``) byte for byte from seed 19.
:func:`generate_entities` also feeds the 1,000,000-name benchmark (benchmarks/screening.py) and
:func:`labelled_queries` the precision/recall evaluation (scripts/screening_eval.py).

Names mix four naming traditions: Russian (listed in Cyrillic with a Latin alias, as sanctions
lists carry them), Greek (Greek script plus Latin), Arabic (romanised) and Western European (with
diacritics), plus companies; surnames are partly drawn from syllables so a large list has a
realistic long tail of rare tokens.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from pathlib import Path

from engine.screening.lists import Entity
from engine.screening.normalise import normalise_name

__all__ = ["generate_entities", "labelled_queries", "main", "random_name", "write_list"]

RU_FIRST = ("Иван", "Сергей", "Алексей", "Дмитрий", "Николай", "Михаил", "Андрей", "Ольга", "Наталья", "Елена", "Юрий", "Виктор")
RU_LAST = ("Иванов", "Петров", "Смирнов", "Кузнецов", "Попов", "Соколов", "Лебедев", "Козлов", "Новиков", "Морозов",
           "Волков", "Соловьёв", "Васильев", "Зайцев", "Павлов", "Семёнов", "Голубев", "Виноградов")
GR_FIRST = ("Γιώργος", "Δημήτρης", "Νίκος", "Κώστας", "Μαρία", "Ελένη", "Γιάννης", "Σοφία")
GR_LAST = ("Παπαδόπουλος", "Παπαδάκης", "Οικονόμου", "Γεωργίου", "Νικολάου", "Καραγιάννης", "Βασιλείου", "Αθανασίου")
AR_FIRST = ("Muhammad", "Ahmad", "Hasan", "Husayn", "Umar", "Yusuf", "Khalid", "Abdallah", "Ali", "Said", "Ibrahim", "Tariq")
AR_LAST = ("Al-Rashid", "Al-Hassan", "Haddad", "Nasser", "Khoury", "Mansour", "Saleh", "Al-Masri", "Qureshi", "Farouk",
           "Al-Tikriti", "Barakat")
AR_VARIANTS = {"Muhammad": ("Mohammed", "Mohamed", "Muhammed"), "Ahmad": ("Ahmed",), "Hasan": ("Hassan",),
               "Husayn": ("Hussein", "Hussain"), "Umar": ("Omar",), "Yusuf": ("Youssef", "Yousef"),
               "Khalid": ("Khaled",), "Abdallah": ("Abdullah",), "Said": ("Saeed",)}
EU_FIRST = ("Jürgen", "François", "José", "Søren", "Łukasz", "María", "Peter", "Anna", "Thomas", "Laura", "Mateo", "Zoë")
EU_LAST = ("Müller", "García", "Rossi", "Dubois", "Novák", "Kowalski", "Johansson", "O'Brien", "Fernández", "Schäfer",
           "Łęcki", "Andersen")
SYLLABLES = ("ka", "ro", "mi", "tan", "vel", "dor", "sha", "lin", "ber", "ko", "zu", "ran", "pe", "lo", "mar", "ti",
             "gra", "nes", "vo", "al", "ek", "ul", "sen", "di", "fa", "hor")
RU_SYLLABLES = ("ка", "ро", "ми", "тан", "вел", "дор", "ша", "лин", "бер", "ко", "зу", "ран", "пе", "ло", "мар", "ти")
CO_WORDS = ("Northern", "Global", "Star", "Ocean", "Trade", "Petro", "Invest", "Eastern", "Golden", "Atlas", "Delta",
            "Union", "Capital", "Shipping", "Mining", "Energy")
CO_SUFFIX = ("LLC", "Ltd", "JSC", "SA", "GmbH", "FZE", "Holding")
COUNTRIES = {"ru": "ru", "gr": "gr", "ar": ("sy", "iq", "ae", "lb", "eg"), "eu": ("de", "fr", "es", "it", "pl", "cz")}
_CYR_LATIN = str.maketrans({"а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "yo", "ж": "zh", "з": "z",
                            "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
                            "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "ы": "y",
                            "ь": "", "э": "e", "ю": "yu", "я": "ya"})


def _latin_ru(text: str) -> str:
    """A Latin spelling of a Cyrillic name as passports write it (BGN/PCGN-like: ё -> yo)."""
    return " ".join(w.lower().translate(_CYR_LATIN).capitalize() for w in text.split())


def _syllable_name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()


def random_name(rng: random.Random) -> tuple[str, tuple[str, ...], str]:
    """(listed name, aliases, country) of a random person or company."""
    kind = rng.random()
    if kind < 0.25:
        first = rng.choice(RU_FIRST)
        last = rng.choice(RU_LAST) if rng.random() < 0.6 else (
            "".join(rng.choice(RU_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize() + "ов")
        cyr = f"{first} {last}"
        return _latin_ru(cyr), (cyr,), "ru"
    if kind < 0.35:
        greek = f"{rng.choice(GR_FIRST)} {rng.choice(GR_LAST)}"
        return normalise_name(greek).title(), (greek,), "gr"
    if kind < 0.6:
        first = rng.choice(AR_FIRST)
        last = rng.choice(AR_LAST) if rng.random() < 0.6 else _syllable_name(rng)
        middle = f" {rng.choice(AR_FIRST)}" if rng.random() < 0.3 else ""
        return f"{first}{middle} {last}", (), rng.choice(COUNTRIES["ar"])
    if kind < 0.9:
        last = rng.choice(EU_LAST) if rng.random() < 0.5 else _syllable_name(rng)
        return f"{rng.choice(EU_FIRST)} {last}", (), rng.choice(COUNTRIES["eu"])
    words = rng.sample(CO_WORDS, 2) if rng.random() < 0.5 else [rng.choice(CO_WORDS), _syllable_name(rng)]
    return f"{' '.join(words)} {rng.choice(CO_SUFFIX)}", (), rng.choice(("ru", "ae", "cy", "hk", "pa"))


def generate_entities(n: int, seed: int, prefix: str = "syn") -> Iterator[Entity]:
    """``n`` seeded entities (about 90% persons with a birth date, 10% companies)."""
    rng = random.Random(seed)
    for i in range(n):
        name, aliases, country = random_name(rng)
        company = any(name.endswith(" " + s) for s in CO_SUFFIX)
        dob = () if company else (f"{rng.randint(1940, 2000)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",)
        yield Entity(f"{prefix}-{i:07d}", "Company" if company else "Person", (name, *aliases), dob, (country,))


def _ftm(e: Entity) -> str:
    props: dict[str, list[str]] = {"name": [e.names[0]]}
    if len(e.names) > 1:
        props["alias"] = list(e.names[1:])
    if e.birth_dates:
        props["birthDate"] = list(e.birth_dates)
    props["nationality" if e.schema == "Person" else "country"] = list(e.countries)
    return json.dumps({"id": e.id, "schema": e.schema, "properties": props, "datasets": ["synthetic"]},
                      ensure_ascii=False, sort_keys=True)


def write_list(out: Path, name: str, kind: str, n: int, seed: int, threshold: float) -> Path:
    """Write ``out/<name>/1/list.yaml`` and ``entities.jsonl`` (FollowTheMoney JSON lines)."""
    d = out / name / "1"
    d.mkdir(parents=True, exist_ok=True)
    lines = [_ftm(e) for e in generate_entities(n, seed, prefix=name[:3])]
    (d / "entities.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (d / "list.yaml").write_text(
        f"# Generated by `python -m engine.screening.synthetic --out lists` (seed {seed}); synthetic, no real person.\n"
        f"list: {name}\nversion: \"1\"\nkind: {kind}\nformat: ftm_jsonl\nfile: entities.jsonl\nthreshold: {threshold}\n"
        f"description: {n} synthetic {'sanctioned' if kind == 'sanctions' else 'politically exposed'} persons and companies\n"
        "source: engine/screening/synthetic.py\n", encoding="utf-8")
    return d


def _misspell(rng: random.Random, name: str) -> str:
    words = name.split()
    i = max(range(len(words)), key=lambda k: len(words[k]))
    w = words[i]
    j = rng.randrange(1, len(w) - 1) if len(w) > 3 else 1
    op = rng.choice(("swap", "drop", "double", "sub"))
    if op == "swap" and j + 1 < len(w):
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    elif op == "drop":
        w = w[:j] + w[j + 1:]
    elif op == "double":
        w = w[:j] + w[j] + w[j:]
    else:
        w = w[:j] + rng.choice("aeiouy") + w[j + 1:]
    words[i] = w
    return " ".join(words)


def _variant(rng: random.Random, e: Entity) -> tuple[str, str]:
    """(kind, query) of one way an applicant's name differs from the listed one."""
    name = e.names[0]
    words = name.split()
    options = ["misspelled", "reordered", "diacritics_case"]
    if len(e.names) > 1:
        options.append("original_script")
    if any(w in AR_VARIANTS for w in words):
        options.append("romanisation")
    if len(words) >= 2 and e.schema == "Person":
        options.append("initial")
    kind = rng.choice(options)
    if kind == "misspelled":
        return kind, _misspell(rng, name)
    if kind == "reordered":
        return kind, " ".join(words[1:] + words[:1])
    if kind == "original_script":
        alias = e.names[1].split()
        return kind, " ".join(alias[::-1]) if rng.random() < 0.5 else e.names[1]
    if kind == "romanisation":
        return kind, " ".join(rng.choice(AR_VARIANTS[w]) if w in AR_VARIANTS else w for w in words)
    if kind == "initial":
        return kind, f"{words[0][0]}. {' '.join(words[1:])}"
    return kind, name.upper().replace("-", " ")


def labelled_queries(entities: list[Entity], n: int, seed: int) -> list[tuple[str, str, str, str]]:
    """``n`` (query name, dob, expected entity id or "", kind): half variants of listed names, half clean names.

    Clean names are new random names whose normalised form is on no list entry; a third of them
    share the surname of a listed person (the hard case: same family, different person).
    """
    rng = random.Random(seed)
    listed = {normalise_name(x) for e in entities for x in e.names}
    persons = [e for e in entities if e.schema == "Person"]
    out: list[tuple[str, str, str, str]] = []
    for _ in range(n // 2):
        e = rng.choice(entities)
        kind, query = _variant(rng, e)
        out.append((query, e.birth_dates[0] if e.birth_dates else "", e.id, kind))
    while len(out) < n:
        if rng.random() < 1 / 3:
            e = rng.choice(persons)
            query = f"{rng.choice(EU_FIRST + AR_FIRST)} {e.names[0].split()[-1]}"
            kind = "clean_same_surname"
        else:
            query, _, _ = random_name(rng)
            kind = "clean"
        if normalise_name(query) in listed:
            continue
        dob = f"{rng.randint(1940, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        out.append((query, dob, "", kind))
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the bundled synthetic lists under ``--out``."""
    ap = argparse.ArgumentParser(prog="python -m engine.screening.synthetic", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("lists"))
    args = ap.parse_args(argv)
    print(write_list(args.out, "sanctions_synthetic", "sanctions", 2000, 19, 0.88))
    print(write_list(args.out, "pep_synthetic", "pep", 1000, 20, 0.9))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
