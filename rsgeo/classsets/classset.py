"""Class sets: the classes of a zero-shot classification, with readable names.

A class keeps the dataset's label (``id``: a folder name such as
``AnnualCrop``), the readable name the text tower reads ("annual crop land"),
optional synonyms, names in other languages, and for map legends a raster
``code`` and a ``colour``. All prompts of a class (templates × name and
synonyms) are averaged into one class embedding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from rsgeo.errors import OptionError, opt


def match_key(text: str) -> str:
    """Case-, space- and punctuation-insensitive key: ``"Sea Lake"`` → ``"sealake"``."""
    return re.sub(r"[\W_]+", "", text.casefold(), flags=re.UNICODE)


@dataclass(frozen=True)
class ClassEntry:
    """One class of a class set.

    ``translations`` maps a language code to that language's terms, the
    readable name first and synonyms after it.
    """

    id: str
    name: str
    synonyms: tuple[str, ...] = ()
    translations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    code: int | None = None
    colour: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def languages(self) -> frozenset[str]:
        return frozenset({"en", *self.translations})

    def terms(self, lang: str | None = None, *, synonyms: bool = True) -> tuple[str, ...]:
        """The readable name (and synonyms) in ``lang``; English when ``None``."""
        if lang in (None, "en"):
            out = (self.name, *self.synonyms)
        else:
            out = self.translations.get(lang, ())
            if not out:
                raise OptionError(f"class {self.id!r} has no name in language {lang!r}")
        return out if synonyms else out[:1]

    def label(self, lang: str | None = None) -> str:
        return self.terms(lang)[0]

    def match_keys(self) -> set[str]:
        """Keys that identify this class in dataset folder names or user input."""
        words = [self.id, self.name, *self.synonyms, *self.aliases]
        words += [terms[0] for terms in self.translations.values() if terms]
        return {match_key(w) for w in words if match_key(w)}


@dataclass(frozen=True)
class ClassSet:
    """An ordered set of classes, read in one language (``lang``; ``None`` = English)."""

    name: str
    classes: tuple[ClassEntry, ...]
    title: str = ""
    lang: str | None = None
    source: str = "builtin"
    reference: str | None = None

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def languages(self) -> tuple[str, ...]:
        """Languages every class has a name in (English always first)."""
        common = frozenset.intersection(*(c.languages for c in self.classes)) if self.classes else frozenset({"en"})
        return ("en", *sorted(common - {"en"}))

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.classes)

    @property
    def names(self) -> tuple[str, ...]:
        """Readable class names in the set's language."""
        return tuple(c.label(self.lang) for c in self.classes)

    @property
    def codes(self) -> tuple[int | None, ...]:
        return tuple(c.code for c in self.classes)

    @property
    def colours(self) -> dict[str, str] | None:
        """``{name: "r,g,b"}`` for classes with a legend colour, or ``None``."""
        found = {c.label(self.lang): c.colour for c in self.classes if c.colour}
        return found or None

    def in_language(self, lang: str | None) -> ClassSet:
        """This set read in ``lang``; OptionError naming the available languages."""
        from rsgeo.language import normalise_lang

        code = normalise_lang(lang)
        if code in (None, "en"):
            return replace(self, lang=code)
        if code not in self.languages:
            raise OptionError(
                f"class set {self.name} has no names in {code!r} (it has: {', '.join(self.languages)}); "
                f"write the classes in that language with {opt('classes')} or a class set file"
            )
        return replace(self, lang=code)

    def subset(self, indices: Sequence[int]) -> ClassSet:
        """These classes only, in the order of ``indices``."""
        return replace(self, classes=tuple(self.classes[i] for i in indices))

    def prompt_names(self, *, synonyms: bool = True) -> list[list[str]]:
        """Per class, the terms prompted: its name and (by default) synonyms."""
        return [list(c.terms(self.lang, synonyms=synonyms)) for c in self.classes]

    def prompts(self, templates: Sequence[str], *, synonyms: bool = True) -> list[list[str]]:
        """Per class, every template filled with every term (one group per class)."""
        return [[t.format(term) for term in terms for t in templates] for terms in self.prompt_names(synonyms=synonyms)]

    def index(self, label: str) -> int | None:
        """Position of the class ``label`` names (id, name, synonym or alias), or ``None``."""
        key = match_key(label)
        # Dataset labels first, then readable names, then synonyms and aliases.
        for keys_of in (lambda c: {match_key(c.id)}, lambda c: {match_key(c.name)}, ClassEntry.match_keys):
            for i, c in enumerate(self.classes):
                if key in keys_of(c):
                    return i
        return None
