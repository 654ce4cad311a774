"""Name normalisation for sanctions and PEP screening: one spelling per name, and blocking keys.

A listed name and the name an applicant gives differ in ways that carry no information: case,
accents (``Müller``/``Muller``), punctuation and hyphens (``Al-Hassan``/``Al Hassan``), the script
(``Иванов``/``Ivanov``, ``Παπαδόπουλος``/``Papadopoulos``; Greek ``ου``, ``μπ``, ``ντ`` as ``ou``, ``b``, ``d``) and the romanisation of Arabic names
(``Mohammed``/``Muhammad``/``Mohamed``, ``Abdul``/``Abd al``). :func:`normalise_name` removes them:

1. Unicode NFKD and removal of combining marks (diacritics); ``ß`` → ``ss``, ``ø`` → ``o``,
   ``æ`` → ``ae``, ``ł`` → ``l``, ``đ`` → ``d``;
2. Cyrillic and Greek letters transliterated letter by letter (a simplified ISO 9 / ELOT 743:
   ``ж`` → ``zh``, ``щ`` → ``shch``, ``θ`` → ``th``, ``χ`` → ``ch``);
3. case folded; every character that is not a letter or digit becomes a space;
4. common romanisation variants of Arabic name parts mapped to one form (``ARABIC_VARIANTS``), and
   the article (``al``, ``el``, ``ul`` and the assimilated ``ad``, ``ar``, ``as``...) written ``al``
   and joined to the word it follows (``El Hassan`` → ``alhasan``).

Word order and initials are left to the matcher (engine.screening.match): it compares sorted
tokens and lets a one-letter token match a word with that initial.

:func:`phonetic_key` is a blocking key, not a similarity: a word's first letter and the
consonant skeleton of the rest after merging letters that sound alike (a Soundex-like code, after
Russell & Odell's Soundex, US patent 1,261,167, with vowels dropped and no length cap but 4 codes).
Names that share a token or the key of a token are compared; others are not.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = ["ARABIC_VARIANTS", "blocking_keys", "normalise_name", "phonetic_key", "tokens"]

_SPECIAL = {"ß": "ss", "ø": "o", "Ø": "o", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ł": "l", "Ł": "l",
            "đ": "d", "Đ": "d", "ð": "d", "þ": "th", "ı": "i", "’": "", "'": "", "`": ""}
_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
    "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "",
    "э": "e", "ю": "yu", "я": "ya", "і": "i", "ї": "yi", "є": "ye", "ґ": "g",
}
_GREEK = {
    "α": "a", "β": "v", "γ": "g", "δ": "d", "ε": "e", "ζ": "z", "η": "i", "θ": "th", "ι": "i", "κ": "k",
    "λ": "l", "μ": "m", "ν": "n", "ξ": "x", "ο": "o", "π": "p", "ρ": "r", "σ": "s", "ς": "s", "τ": "t",
    "υ": "y", "φ": "f", "χ": "ch", "ψ": "ps", "ω": "o",
}
_GREEK_DIGRAPHS = (("ου", "ou"), ("ού", "ou"), ("Ου", "Ou"), ("ΟΥ", "OU"), ("μπ", "b"), ("Μπ", "B"), ("ντ", "d"), ("Ντ", "D"))
_TABLE = str.maketrans({**_SPECIAL, **_CYRILLIC, **{k.upper(): v for k, v in _CYRILLIC.items()},
                        **_GREEK, **{k.upper(): v for k, v in _GREEK.items()}})
# Romanisation variants of common Arabic name parts -> one spelling (forms seen on OFAC/UN lists).
ARABIC_VARIANTS = {
    **dict.fromkeys(("mohammed", "mohammad", "muhammad", "muhammed", "mohamed", "mohamad", "mohamet",
                     "mehmet", "mohd", "muhamad", "mahomed"), "muhammad"),
    **dict.fromkeys(("abdul", "abdel", "abdal", "abdoul", "abdol"), "abd"),
    **dict.fromkeys(("hussein", "husein", "hussain", "husain", "hossein", "huseyin"), "husayn"),
    **dict.fromkeys(("hassan", "hasan", "hasen"), "hasan"),
    **dict.fromkeys(("ahmed", "ahmad", "ahmet", "achmed"), "ahmad"),
    **dict.fromkeys(("yusuf", "youssef", "yousef", "yousuf", "yusef", "josef"), "yusuf"),
    **dict.fromkeys(("osama", "usama", "ussama"), "usama"),
    **dict.fromkeys(("omar", "umar", "omer"), "umar"),
    **dict.fromkeys(("abdullah", "abdallah", "abdulla", "abdalla"), "abdallah"),
    **dict.fromkeys(("khaled", "khalid", "halid"), "khalid"),
    **dict.fromkeys(("said", "saeed", "sayed", "sayyid", "saied"), "said"),
    **dict.fromkeys(("ali", "aly"), "ali"),
}
_ARTICLES = frozenset({"al", "el", "ul", "ad", "ar", "as", "at", "az", "an"})
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise_name(text: str) -> str:
    """``text`` in one canonical spelling: ASCII letters and digits, single spaces (module docstring).

    ``"Muḥammad  AL-Hassan"`` → ``"muhammad alhasan"``; ``"Иванов Иван"`` → ``"ivanov ivan"``.
    Never raises; an empty or all-punctuation name gives ``""``.
    """
    for digraph, latin in _GREEK_DIGRAPHS:
        if digraph in text:
            text = text.replace(digraph, latin)
    t = text.translate(_TABLE)
    t = unicodedata.normalize("NFKD", t)
    t = "".join(c for c in t if not unicodedata.combining(c)).translate(_TABLE)
    words = [ARABIC_VARIANTS.get(w, w) for w in _NON_ALNUM.sub(" ", t.casefold()).split()]
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w in _ARTICLES and i + 1 < len(words):
            out.append("al" + words[i + 1])  # al/el/ul and the assimilated ad-, ar-, as- ... are one article
            i += 2
            continue
        out.append(w)
        i += 1
    return " ".join(out)


def tokens(normalised: str) -> tuple[str, ...]:
    """The words of a normalised name."""
    return tuple(normalised.split())


_CODES = {**dict.fromkeys("bfpv", "1"), **dict.fromkeys("cgjkqsxz", "2"), **dict.fromkeys("dt", "3"),
          "l": "4", **dict.fromkeys("mn", "5"), "r": "6"}


def phonetic_key(token: str) -> str:
    """A Soundex-like key of one normalised token: first letter, then up to 4 consonant-class codes.

    ``"smith"`` and ``"smyth"`` → ``"s53"``; ``"ivanov"`` and ``"ivanoff"`` → ``"i151"``. A token not
    starting with a letter is its own key (at most 32 characters).
    """
    return _phonetic(token[:32])


@lru_cache(maxsize=65536)  # tokens are cut to 32 characters: the cache holds at most ~4 MB
def _phonetic(token: str) -> str:
    if not token or not token[0].isalpha():
        return token
    out = [token[0]]
    last = _CODES.get(token[0], "")
    for c in token[1:]:
        code = _CODES.get(c, "")
        if code and code != last:
            out.append(code)
            if len(out) == 5:
                break
        if c not in "hw":
            last = code
    return "".join(out)


def blocking_keys(normalised: str) -> set[str]:
    """The keys under which a name is indexed and looked up: each token of 2+ letters and its phonetic key."""
    keys: set[str] = set()
    for t in tokens(normalised):
        if len(t) >= 2:
            keys.add("t:" + t)
            keys.add("p:" + phonetic_key(t))
    return keys
