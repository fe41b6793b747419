"""Which value of which feature a phrase names: "the British person" is ``brit``, "the person whose birthday is in
February" is ``feb``, "the person's child is named Alice" is the child Alice and not the person named Alice.

Logic-grid puzzles name a value through a describing phrase that the puzzle never lists (ZebraLogic shows only
the values: `brit`, `feb`, `roses`; its clues say "the British person", "February", "the rose bouquet"). A phrase
is resolved by the value words it contains, in a few surface forms (plurals and singulars, month names,
nationality adjectives, spacing and hyphens), the longest match winning ("very short" over "short"). When two
features share a value ("Alice" as a name and as a child, "red" as a favourite colour and a hair colour) the
words around it decide, by the words of each feature's own description line ("child", "hair"); when nothing
decides, the phrase is ambiguous and is not resolved: a clue that cannot be read is reported, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Entity", "Lexicon", "Resolution", "normalize", "surface_forms"]

_MONTHS = {
    "jan": "january", "feb": "february", "mar": "march", "apr": "april", "jun": "june", "jul": "july",
    "aug": "august", "sep": "september", "sept": "september", "oct": "october", "nov": "november",
    "dec": "december",
}
_NATIONS = {
    "brit": ("british", "briton", "englishman", "english"), "swede": ("swedish",), "dane": ("danish",),
    "spaniard": ("spanish",), "englishman": ("english", "british"), "norwegian": (), "german": (),
    "chinese": (), "mexican": (), "japanese": (), "italian": (), "french": ("frenchman",),
    "ukrainian": (), "american": (), "irish": ("irishman",), "dutch": ("dutchman",),
}
# words that say nothing about which feature a phrase is about
_STOP = frozenset({"a", "an", "the", "person", "people", "persons", "one", "ones", "who", "whose", "which", "that",
    "is", "are", "was", "be", "been", "being", "with", "has", "have", "had", "of", "in", "on", "at", "for", "to",
    "by", "their", "them", "they", "his", "her", "its", "each", "every", "everyone", "all", "and", "or", "unique",
    "different", "favorite", "favourite", "loves", "love", "lover", "likes", "like", "enjoys", "enjoy", "prefers",
    "prefer", "keeps", "keep", "owns", "own", "owner", "uses", "use", "name", "named", "names", "someone",
    "somebody", "house", "houses", "lives", "live", "residing", "resides", "partial", "fond", "following",
    "characteristics"})
_WORD = re.compile(r"[a-z0-9]+")


def normalize(text: str) -> str:
    """Lower case, hyphens and underscores as spaces, letters and digits apart ("F-150" and "f150" both read
    "f 150"), single spaces: the form phrases and values are compared in."""
    text = text.lower().replace("’", "'").replace("`", " ")
    text = re.sub(r"[-_/]", " ", text)
    text = re.sub(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])", " ", text)
    return " ".join(text.split())


def surface_forms(value: str) -> set[str]:
    """The normalised ways a phrase may write ``value``: itself, plural and singular, a month's full name, a
    nationality's adjective ("brit" -> "british")."""
    v = normalize(value)
    if not v:
        return set()
    forms = {v}
    head, _, last = v.rpartition(" ")
    prefix = head + " " if head else ""
    if last.isalpha() and len(last) > 2:
        if last.endswith("ies"):
            forms.add(prefix + last[:-3] + "y")
        elif last.endswith("es"):  # "roses" -> "rose", "glasses" -> "glass": both are kept
            forms.update((prefix + last[:-1], prefix + last[:-2]))
        elif last.endswith("s") and not last.endswith("ss"):
            forms.add(prefix + last[:-1])
        if last.endswith("y") and last[-2:-1] not in "aeiou":
            forms.add(prefix + last[:-1] + "ies")
        elif last.endswith(("s", "x", "ch", "sh")):
            forms.add(prefix + last + "es")
        else:
            forms.add(prefix + last + "s")
    if v in _MONTHS:
        forms.add(_MONTHS[v])
    for short, full in _MONTHS.items():
        if v == full:
            forms.add(short)
    for nation, adjectives in _NATIONS.items():
        if v == nation:
            forms.update(adjectives)
    return forms


_IRREGULAR = {"children": "child", "people": "person", "men": "man", "women": "woman", "mothers": "mother"}
# words that run together in lower-case keys ("haircolor", "bookgenre", "phonemodel", "favoritesport")
_KEY_WORDS = ("hair", "color", "colour", "book", "genre", "phone", "model", "car", "music", "sport", "house", "style",
              "favorite", "food", "drink", "pet", "animal", "birthday", "month", "smoothie", "flower", "cigar",
              "vacation", "hobby", "height", "education", "occupation", "nationality", "name", "mother", "child",
              "children")


def _split_key(word: str) -> list[str]:
    """A run-together key as its words ("haircolor" -> hair, color); a word it cannot split is kept whole."""
    for head in sorted(_KEY_WORDS, key=len, reverse=True):
        if word.startswith(head) and word != head:
            rest = word[len(head):]
            tail = _split_key(rest)
            if all(t in _KEY_WORDS or _stem(t) in _KEY_WORDS for t in tail):
                return [head, *tail]
    return [word]


def _stem(word: str) -> str:
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _cue_words(text: str) -> set[str]:
    words = re.findall(r"[a-z]+", re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text).lower())
    split = [part for w in words for part in _split_key(w)]
    return {_stem(w) for w in split if w not in _STOP and len(w) > 2}


@dataclass(frozen=True, order=True)
class Entity:
    """One value of one feature: ``feature`` is the feature's index in the puzzle, ``value`` as the prompt wrote
    it."""

    feature: int
    value: str


@dataclass(frozen=True)
class Resolution:
    """What a phrase names: the entity, or why it names none (``problem``)."""

    entity: Entity | None
    problem: str = ""


class Lexicon:
    """Resolves phrases to the values of one puzzle's features.

    ``features`` are ``(cue text, values)`` pairs: the cue text is what describes the feature (its description
    line and its key), whose words decide between features that share a value.
    """

    def __init__(self, features: Sequence[tuple[str, Sequence[str]]]) -> None:
        self.features = [(cue, tuple(values)) for cue, values in features]
        self._forms: dict[str, set[Entity]] = {}
        for i, (_, values) in enumerate(self.features):
            for value in values:
                for form in surface_forms(value):
                    self._forms.setdefault(form, set()).add(Entity(i, value))
        alternatives = sorted(self._forms, key=lambda f: (-len(f), f))
        parts = [r"\s+".join(re.escape(w) for w in f.split()) for f in alternatives]
        self._pattern = re.compile(r"(?<![a-z0-9])(?:" + "|".join(parts) + r")(?![a-z0-9])" if parts else r"(?!x)x")
        self._cues = [_cue_words(cue) for cue, _ in self.features]

    def entities_of(self, form: str) -> frozenset[Entity]:
        """The entities a normalised surface form may name (empty: none)."""
        return frozenset(self._forms.get(form, ()))

    def forms(self) -> dict[str, set[Entity]]:
        """Every surface form and the entities it may name (more than one where features share a value)."""
        return {k: set(v) for k, v in self._forms.items()}

    def mentions(self, phrase: str) -> list[tuple[int, int, set[Entity]]]:
        """The value forms in a normalised phrase, longest first where they overlap: ``(start, end, entities)``."""
        found: list[tuple[int, int, set[Entity]]] = []
        for m in self._pattern.finditer(phrase):
            found.append((m.start(), m.end(), self._forms[" ".join(m.group().split())]))
        return found

    def resolve(self, phrase: str, *, feature: int | None = None) -> Resolution:
        """The entity a describing phrase names ("the person who loves fantasy books"), or why it names none.

        ``feature``: the phrase is known to name a value of this feature (a table column, a JSON key)."""
        text = normalize(phrase)
        found = self.mentions(text)
        if feature is not None:
            found = [(s, e, {x for x in ents if x.feature == feature}) for s, e, ents in found]
            found = [f for f in found if f[2]]
        if not found:
            return Resolution(None, f"no value of the puzzle in {phrase.strip()!r}")
        entities: set[Entity] = set().union(*(ents for _, _, ents in found))
        if len({x.value.lower() for x in entities}) > 1 and len(found) > 1:
            # two different values: only acceptable when every one is the same entity (it cannot be)
            shown = ", ".join(sorted({x.value for x in entities}))
            return Resolution(None, f"{phrase.strip()!r} names more than one value ({shown})")
        if len(entities) == 1:
            return Resolution(next(iter(entities)))
        start, end, _ = found[0]
        context = _cue_words(text[:start] + " " + text[end:])
        best = self.by_cues(entities, context)
        if best is None:
            features = ", ".join(sorted({self.features[x.feature][0].split(":")[0] for x in entities}))
            return Resolution(None, f"{phrase.strip()!r} may name a value of several features ({features})")
        return Resolution(best)

    def by_cues(self, entities: Iterable[Entity], context: set[str]) -> Entity | None:
        """Between features that share a value: the one whose description words the phrase uses, less one for a
        feature whose own distinctive words (those the others lack) are all absent. A tie decides nothing."""
        candidates = sorted(entities)
        scores: list[int] = []
        for x in candidates:
            cues = self._cues[x.feature]
            others = set().union(*(self._cues[y.feature] for y in candidates if y.feature != x.feature))
            distinctive = cues - others
            score = len(cues & context)
            if distinctive and not distinctive & context:
                score -= 1
            scores.append(score)
        top = max(scores)
        if scores.count(top) != 1:
            return None
        return candidates[scores.index(top)]

    def value_of(self, text: str, feature: int) -> str | None:
        """The value of ``feature`` that a table or JSON cell holds, or None: the cell must be one value (in any
        of its forms), nothing else."""
        cell = normalize(text)
        cell = re.sub(r"^(?:the|a|an)\s+", "", cell)
        hits = {x.value for x in self._forms.get(cell, set()) if x.feature == feature}
        if len(hits) == 1:
            return next(iter(hits))
        return None

    def words(self) -> set[str]:
        """Every word of every value form (to tell cells that mention no value from unread ones)."""
        return {w for f in self._forms for w in _WORD.findall(f)}
