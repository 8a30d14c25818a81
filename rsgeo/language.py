"""Which language is a query in, and can the model read it?

A deliberately small, dependency-free heuristic: the writing system decides
for non-Latin scripts (Hangul → Korean, Han → Chinese, Cyrillic → Russian, ...);
for Latin script, function words, a few land-cover words and letters such as
``ã``/``ß``/``ñ`` vote. It is meant for short remote-sensing queries
("floresta de pinheiros perto do rio"), and it says "don't know" rather than
guess: an explicit ``--lang`` always wins.

When the model's text tower reads only English (every model but RS-M-CLIP),
a non-English query is embedded as nonsense; :func:`warn_if_unsupported`
logs one warning per language that names a model reading it.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from rsgeo.errors import opt, spelt

logger = logging.getLogger(__name__)

LANGUAGE_NAMES: dict[str, str] = {
    "en": "English", "pt": "Portuguese", "es": "Spanish", "fr": "French", "de": "German",
    "nl": "Dutch", "it": "Italian", "zh": "Chinese", "ko": "Korean", "ru": "Russian",
    "ja": "Japanese", "ar": "Arabic", "el": "Greek", "he": "Hebrew", "hi": "Hindi", "th": "Thai",
    "uk": "Ukrainian", "pl": "Polish",
}

# (first code point, last code point, language); the first match in a text wins
# except that kana beats Han (Japanese text mixes both).
_SCRIPTS: tuple[tuple[int, int, str], ...] = (
    (0xAC00, 0xD7AF, "ko"), (0x1100, 0x11FF, "ko"), (0x3130, 0x318F, "ko"),
    (0x3040, 0x30FF, "ja"),
    (0x4E00, 0x9FFF, "zh"), (0x3400, 0x4DBF, "zh"),
    (0x0400, 0x04FF, "ru"),
    (0x0370, 0x03FF, "el"), (0x0590, 0x05FF, "he"), (0x0600, 0x06FF, "ar"),
    (0x0900, 0x097F, "hi"), (0x0E00, 0x0E7F, "th"),
)

def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Function words and common land-cover words of short queries, per language.
_WORDS: dict[str, frozenset[str]] = {
    "en": _words(
        "the of and with near in on at from by to for an is are along next beside around many some without "
        "forest river water city beach field fields road roads land building buildings house houses lake sea "
        "crop crops farm farmland bridge harbor harbour airport tree trees grass parking lot residential "
        "industrial area areas urban wetland mountain snow ice bare cloud clouds sand soil rock desert dunes "
        "shrubland grassland meadow pasture orchard vineyard greenhouse greenhouses solar panels port ships "
        "boats island coast shore village town park"
    ),
    "pt": _words(
        "de da do das dos e com perto em na no nas nos um uma umas uns para ao à sem entre junto pelo pela é são "
        "floresta florestas rio rios água cidade praia campo campos estrada estradas terra prédio prédios casa "
        "casas lago mar plantação plantações fazenda vegetação ponte porto aeroporto árvores pinheiros área "
        "áreas urbana cultivo pastagem areia neve gelo"
    ),
    "es": _words(
        "de del la el los las y con cerca en un una unos unas para al sin entre junto por es son "
        "bosque bosques río ríos agua ciudad playa campo campos carretera carreteras tierra edificio edificios "
        "casa casas lago mar cultivo cultivos granja vegetación puente puerto aeropuerto árboles pinos zona "
        "urbana pastizal arena nieve hielo"
    ),
    "fr": _words(
        "de du des la le les et avec près dans sur un une pour au aux sans entre par est sont "
        "forêt forêts rivière fleuve eau ville plage champ champs route routes terre bâtiment bâtiments maison "
        "maisons lac mer culture cultures ferme pont port aéroport arbres pins zone urbaine prairie sable "
        "neige glace"
    ),
    "de": _words(
        "der die das und mit in im am auf bei neben von vom zum zur ein eine einem einer ohne ist sind nahe "
        "wald wälder fluss wasser stadt strand feld felder straße strasse straßen land gebäude haus häuser see "
        "meer acker äcker bauernhof brücke hafen flughafen bäume kiefern gebiet wiese sand schnee eis"
    ),
    "nl": _words(
        "de het een en met bij in op van naast voor zonder tussen is zijn nabij "
        "bos bossen rivier stad strand veld velden weg wegen gebouw gebouwen huis huizen meer zee akker "
        "boerderij brug haven vliegveld bomen dennen gebied weiland zand sneeuw ijs"
    ),
    "it": _words(
        "di del della dei delle il lo la le gli e con vicino in nel nella un una per al senza tra è sono "
        "foresta foreste bosco fiume fiumi acqua città spiaggia campo campi strada strade terra edificio "
        "edifici casa case lago mare coltivazione fattoria ponte porto aeroporto alberi pini zona urbana "
        "prato sabbia neve ghiaccio"
    ),
}
_LETTERS: dict[str, str] = {"pt": "ãõ", "es": "ñ¿¡", "fr": "èêùûœëï", "de": "äöüß"}
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "pt": ("ção", "ções", "ões"), "es": ("ción", "ciones"), "de": ("ung", "ungen", "keit"), "it": ("zione", "zioni"),
}
_TOKEN = re.compile(r"[^\W\d_]+", re.UNICODE)


def _script_language(text: str) -> str | None:
    found: set[str] = set()
    for ch in text:
        cp = ord(ch)
        if cp < 0x0370:
            continue
        for lo, hi, lang in _SCRIPTS:
            if lo <= cp <= hi:
                found.add(lang)
                break
    if not found:
        return None
    for lang in ("ko", "ja", "zh", "ru", "el", "he", "ar", "hi", "th"):
        if lang in found:
            return lang
    return None


def language_scores(text: str) -> dict[str, float]:
    """Votes per Latin-script language (empty when the text gives no evidence)."""
    lowered = unicodedata.normalize("NFC", text.casefold())
    tokens = _TOKEN.findall(lowered)
    scores: dict[str, float] = {}
    for lang, words in _WORDS.items():
        score = float(sum(1 for t in tokens if t in words))
        score += 1.5 * sum(lowered.count(ch) for ch in _LETTERS.get(lang, ""))
        score += sum(1 for t in tokens for s in _SUFFIXES.get(lang, ()) if t.endswith(s) and len(t) > len(s) + 1)
        if score:
            scores[lang] = score
    return scores


def guess_languages(text: str) -> tuple[str, ...]:
    """The most likely languages of ``text`` (ties kept), or ``()`` when unknown."""
    script = _script_language(text)
    if script is not None:
        return (script,)
    scores = language_scores(text)
    if not scores:
        return ()
    best = max(scores.values())
    return tuple(sorted(lang for lang, s in scores.items() if s == best))


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of ``text``'s language, or ``None`` when not sure."""
    guesses = guess_languages(text)
    return guesses[0] if len(guesses) == 1 else None


def normalise_lang(code: str | None) -> str | None:
    """``"pt-BR"`` → ``"pt"``, ``" ZH "`` → ``"zh"``; ``None``/blank → ``None``."""
    if code is None or not code.strip():
        return None
    return re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def unsupported_language_warnings(
    texts: Iterable[str],
    *,
    languages: Sequence[str] | None,
    model: str,
    lang: str | None = None,
) -> list[str]:
    """One message per language of ``texts`` (or ``lang``) that ``model`` cannot read.

    ``languages=None`` (the model's languages are unknown) gives no message; so
    does text whose language is unclear or could be English.
    """
    if not languages:
        return []
    readable = set(languages)
    found: dict[str, str] = {}  # language code → what is in that language
    if lang:
        code = normalise_lang(lang) or "en"
        if code not in readable:
            found[code] = f"{opt('lang', code)} asks for {language_name(code)} names"
    else:
        for text in texts:
            guesses = guess_languages(text)
            if not guesses or "en" in guesses or any(g in readable for g in guesses):
                continue
            code = guesses[0] if len(guesses) == 1 else "/".join(guesses)
            names = " or ".join(language_name(c) for c in code.split("/"))
            found.setdefault(code, f"{text!r} looks {names} ({code})")
    return [spelt(_message(code, subject, model, readable)) for code, subject in found.items()]


def _message(code: str, subject: str, model: str, readable: set[str]) -> str:
    from rsgeo.zoo.registry import models_for_language

    codes = code.split("/")
    names = " or ".join(language_name(c) for c in codes)
    reads = ", ".join(language_name(c) for c in sorted(readable))
    alternatives = models_for_language(codes[0])
    advice = (
        f"use {opt('model', alternatives[0].name)} for {names}, or write it in English"
        if alternatives
        else f"no model in rsgeo's registry reads {names}; write it in English"
    )
    return f"{subject}, but {model} reads only {reads}: {advice}"


def warn_if_unsupported(encoder: Any, texts: Iterable[str], *, lang: str | None = None) -> list[str]:
    """Log (and return) a warning per language of ``texts`` the encoder cannot read."""
    model = getattr(getattr(encoder, "identity", None), "model_id", "this model")
    messages = unsupported_language_warnings(
        texts, languages=getattr(encoder, "languages", None), model=model, lang=lang
    )
    for message in messages:
        logger.warning("%s", message)
    return messages
