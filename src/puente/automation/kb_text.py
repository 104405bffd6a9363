"""How the knowledge-base bot reads a customer's words without any service: accents and
case folded, each word cut to a stem (for SQLite, which has no stemmer of its own; see
docs/decisions/0009), how alike a question and a phrasing are, whether the customer asks
for a person, and which of Spanish and English they write in."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_WORD = re.compile(r"[^\W_]+")
MIN_STEM = 3


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = {
    "es": _words(
        """a al algo algun alguna algunas alguno algunos ante asi buenas buenos como con
        contra cual cuales de del desde e el ella ellas ellos en entre era eres es
        esa esas ese eso esos esta estan estas este esto estos estoy favor fue
        gracias ha han hay he la las le les lo los me mi mis muy nos nuestra
        nuestro o os para pero podemos podria podrian por porfa porfavor pueda
        puede pueden puedo que queremos queria quiero quisiera saber se sea si sin
        sobre somos son soy su sus te ti tu tus un una unas uno unos usted ustedes
        vos y ya yo"""
    ),
    "en": _words(
        """a about am an and any are as at be been but by can could did do does for from had
        has have how i if in is it its me my of on or our please so tell thank
        thanks that the their them there they this to us want was we what which
        will with would you your"""
    ),
}

# Longest first: the first that leaves a stem of MIN_STEM letters or more is cut. Verb
# endings, plurals and the common noun and adjective endings, so that "envío", "envíos"
# and "enviar", or "devolución" and "devoluciones", meet on one stem.
_ES_SUFFIXES = tuple(
    sorted(
        _words(
            """amientos imientos amiento imiento aciones iciones uciones ciones siones adoras
            adores amente ancias encias idades acion icion ucion adora mente
            ancia encia ables ibles istas iendo ieron cion sion ador idad able
            ible ista osos osas ando aron aban amos emos imos ados idas idos
            adas oso osa ado ida ido ada ar er ir an en es as os a e o s"""
        ),
        key=lambda suffix: (-len(suffix), suffix),
    )
)
_EN_SUFFIXES = ("ment", "ing", "ed", "ly")
_DOUBLE_OK = frozenset("lsz")


def fold(text: str) -> str:
    """Lower case without accents: "Envío" and "ENVIO" both read "envio"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def stem(word: str, language: str) -> str:
    """A folded word's stem: a light suffix-stripping stemmer, no dictionary."""
    return _stem_en(word) if language == "en" else _stem_es(word)


def _stem_es(word: str) -> str:
    for suffix in _ES_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= MIN_STEM:
            return word[: -len(suffix)]
    return word


def _stem_en(word: str) -> str:
    if word.endswith("ies") and len(word) > MIN_STEM + 2:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "xes", "zes", "ches", "shes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > MIN_STEM:
        word = word[:-1]
    for suffix in _EN_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= MIN_STEM:
            word = word[: -len(suffix)]
            break
    # "shipping" -> "shipp" -> "ship"; "ball" and "pass" keep their double letter.
    if len(word) > MIN_STEM and word[-1] == word[-2] and word[-1] not in _DOUBLE_OK:
        word = word[:-1]
    return word


def terms(text: str, language: str) -> list[str]:
    """The distinct stems of a text's words that are not stop words, in order."""
    stop = STOPWORDS.get(language, STOPWORDS["es"])
    seen: dict[str, None] = {}
    for word in words(text):
        if word not in stop:
            seen.setdefault(stem(word, language), None)
    return list(seen)


def likeness(question: Iterable[str], phrasing: Iterable[str]) -> float:
    """How alike two sets of terms are, from 0 (nothing shared) to 1 (the same terms in
    any order): twice the shared terms over the terms of both (Dice's coefficient)."""
    a, b = set(question), set(phrasing)
    if not a or not b:
        return 0.0
    return 2 * len(a & b) / (len(a) + len(b))


# -- asking for a person --------------------------------------------------------------------

_ES_PERSON = (
    r"persona|personas|humano|humana|humanos|asesor|asesora|asesores|agente|agentes|"
    r"operador|operadora|ejecutivo|ejecutiva|representante|encargado|encargada|vendedor|"
    r"vendedora|alguien"
)
_EN_PERSON = (
    r"human|humans|person|people|agent|agents|representative|rep|operator|someone|"
    r"somebody|staff|employee"
)
_ASKS = {
    "es": (
        # "quiero hablar con una persona", "¿me pasas con un asesor?", "comunícame con alguien"
        re.compile(
            r"\b(hablar|hablo|habla|comunicar|comunicarme|comunicame|contactar|pasar|pasame|"
            r"pasas|pasan|conectar|conectarme|conectame|transferir|transfiere|atienda|"
            r"atiende|atender)\b.*\b(" + _ES_PERSON + r")\b"
        ),
        # "necesito un asesor", "quiero un humano" (not "alguien": "necesito que alguien…")
        re.compile(
            r"\b(quiero|quisiera|necesito|deseo|prefiero|busco)\b.*\b("
            + _ES_PERSON.removesuffix("|alguien")
            + r")\b"
        ),
        re.compile(r"\b(persona|humano|agente|asesor|operador)\s+(real|de verdad)\b"),
        re.compile(r"\batencion\s+(humana|personal|personalizada)\b"),
    ),
    "en": (
        re.compile(r"\b(talk|speak|chat|connect|transfer|put|get)\b.*\b(" + _EN_PERSON + r")\b"),
        re.compile(r"\b(want|need|like)\b.*\b(human|person|agent|representative|operator)\b"),
        re.compile(r"\b(human|agent|representative|operator)\b.*\bplease\b"),
        re.compile(r"\b(real|live)\s+(person|human|agent)\b"),
    ),
}
_PERSON_WORD = re.compile(_ES_PERSON + "|" + _EN_PERSON)
# What may stand beside a person's title in a request of a word or two: "un asesor por
# favor", "a human please", "agente humano".
_COURTESY = frozenset(
    [
        "a",
        "an",
        "the",
        "un",
        "una",
        "el",
        "la",
        "por",
        "favor",
        "porfa",
        "please",
        "pls",
        "real",
        "ya",
        "now",
        "ahora",
    ]
)


def asks_for_person(text: str) -> str | None:
    """The language ("es" or "en") in which `text` asks for a person rather than the bot,
    or None. Accents and case do not matter; a word alone ("agente", "human please")
    counts, a sentence that merely mentions people ("¿cuántas personas caben?") does not."""
    said = " ".join(words(text))
    for language, patterns in _ASKS.items():
        if any(p.search(said) for p in patterns):
            return language
    titles = [w for w in said.split() if w not in _COURTESY]
    if titles and all(_PERSON_WORD.fullmatch(w) for w in titles):
        return "en" if re.fullmatch(_EN_PERSON, titles[0]) else "es"
    return None


def guess_language(text: str) -> str | None:
    """Spanish ("es") or English ("en") when the stop words say so clearly, else None."""
    counts = {lang: sum(w in stop for w in words(text)) for lang, stop in STOPWORDS.items()}
    if counts["es"] == counts["en"]:
        return None
    return "es" if counts["es"] > counts["en"] else "en"
