"""Reading a logic-grid trace: the assignments it states, step by step, and the grids it writes.

Prose is read by the ``constraints`` verifier's :class:`ClaimReader` over the puzzle's vocabulary (every value,
its surface forms and the describing phrases the clues use: "the Norwegian lives in house 1", "the person who
loves fantasy books is in the third house", "Peter is not in house 2", "the cat lover is directly left of
Bob", "House 2: Peter, German, tea"). Grids are read here:

- markdown tables, houses as rows (``| House | Name | Color |`` / ``| 1 | Bob | red |``) or as columns
  (``| | House 1 | House 2 |`` / ``| Name | Bob | Peter |``), blank or uncertain cells ("?", "-", "Bob/Eric")
  left out;
- JSON, the ZebraLogic answer format (``"House 1": {"Name": "Bob", ...}``), read as it streams, a line at a time;
- rows with keys (``House 1: Name = Bob, Color: red``).

A cell counts only when it is exactly a value of its feature (or, without a column, exactly one value). Each
step's claims carry whether the step asserts them (see :class:`interlock.verifiers.revisions.Stance`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from interlock import Span
from interlock.verifiers.constraints import nodes as N
from interlock.verifiers.constraints.claims import DEFAULT_PATTERNS, ClaimPattern, ClaimReader
from interlock.verifiers.constraints.nodes import Node
from interlock.verifiers.revisions import NONE, Stance, mask_mentions, unescape
from interlock.verifiers.zebra.lexicon import Entity, normalize
from interlock.verifiers.zebra.model import Encoding, reading_spec, translate
from interlock.verifiers.zebra.puzzle import ZebraPuzzle

__all__ = ["GridCell", "ReadState", "ZebraClaim", "ZebraReading"]

_HOUSE = r"(?:the\s+)?(?:house\s+(?:number\s+|no\.?\s*|#)?(?:{n}|{nw})|{n}\s+house|{nx}\s+house)"
# phrasings the default patterns miss: "Peter must be in house 2", "Peter is therefore in house 2"
_EXTRA = (
    ClaimPattern(r"{a}\s+(?:must|can)\s*(?:not|n't)\s+(?:be|live)\s+in\s+" + _HOUSE, "different", "must not be in"),
    ClaimPattern(r"{a}\s+(?:cannot|can't|could\s*n[o']t|does\s*n[o']t|do\s*n[o']t)\s+(?:be|live)\s+in\s+" + _HOUSE,
                 "different", "cannot be in"),
    ClaimPattern(r"{a}\s+(?:must|has\s+to|needs\s+to)\s+(?:be|live)\s+in\s+" + _HOUSE, "equal", "must be in"),
    ClaimPattern(r"{a}\s+(?:is|lives)\s+(?:therefore|thus|then|also|now|indeed|definitely|clearly|hence|so)\s+in\s+"
                 + _HOUSE, "equal", "is therefore in"),
    ClaimPattern(r"{a}\s+(?:occupies|gets|takes)\s+" + _HOUSE, "equal", "occupies"),
    ClaimPattern(r"{a}\s+(?:can\s+only|could\s+only|has\s+to|must\s+then)\s+(?:be|live|go)\s+(?:in|into)\s+" + _HOUSE,
                 "equal", "can only be in"),
    ClaimPattern(r"{a}\s+(?:goes|belongs|sits|is\s+placed|is\s+put)\s+(?:in|into)\s+" + _HOUSE, "equal", "goes in"),
    ClaimPattern(r"\b(?:we|i)\s+(?:can\s+)?(?:place|put|assign)\s+{a}\s+(?:in|into|to)\s+" + _HOUSE, "equal",
                 "we place"),
)
_NUMBER_PATTERNS = {"is number", "is not number"}  # "Peter is 7" is an age, not a house
_ROLE_NOUNS = (r"(?:\s+(?:lover|owner|keeper|enthusiast|drinker|smoker|fan|person|one|people|user|eater|reader|"
               r"player|driver|type|style|house|home|books?|music|smoothies?|vacations?|trips?|breaks?))*")
_ROW = re.compile(r"^[ \t>*•+\-\d.)]*(?:\*\*|__)?(?:house|position|pos\.?)[ \t]*#?[ \t]*(?P<n>\d+)(?:\*\*|__)?"
                  r"[ \t]*(?:\*\*|__)?[ \t]*(?::|=|–|—|→|->|-)[ \t]*(?P<cells>[^\n]+)", re.IGNORECASE)
_CELL_SPLIT = re.compile(r"[^,;|()\[\]{}]+")
_KEYED = re.compile(r"^\s*(?P<k>[A-Za-z][A-Za-z _-]{0,30}?)\s*(?::|=|→|->|-)\s*(?P<v>.+?)\s*$")
_UNSURE = re.compile(r"\?|\bor\b|/|\bnot\b|n't\b|\bno\b|\bmaybe\b|\bperhaps\b|\bpossibly\b|\bprobably\b|"
                     r"\bunknown\b|\btbd\b|\bcould\b|\bmight\b|\bneither\b|\bnor\b|≠|!=|\beither\b|\bexcept\b",
                     re.IGNORECASE)
_MARKUP = re.compile(r"\*\*|__|`|~~|\*")
_JSON_HOUSE = re.compile(r'"(?:house|House|HOUSE)[ _]?(?P<n>\d+)"\s*:\s*\{')
_JSON_PAIR = re.compile(r'"(?P<k>[^"\n]{1,40})"\s*:\s*"(?P<v>[^"\n]{0,80})"')
# "..., House 4 and House 5": the house a claim names begins a list of houses
_HOUSE_LIST = re.compile(r"\s*(?:,\s*(?:and\s+|or\s+)?|\s+(?:and|or|&)\s+|/)(?:the\s+)?(?:house\b|\d|"
                         r"(?:first|second|third|fourth|fifth|sixth|seventh)\b)", re.IGNORECASE)
# "Carol, Alice, and Bob ...": the claim's subject is preceded by another item and a comma or "and"
_LIST_TAIL = re.compile(r"(?P<item>[\w'’ -]{1,60}?)\s*(?:,\s*(?:and\s+|or\s+)?|\s+(?:and|or|&)\s+)(?:the\s+)?$",
                        re.IGNORECASE)
# table rows and JSON lines are read as grids only
_GRID_LINE = re.compile(r'^\s*(?:\||"[^"\n]{1,40}"\s*:)')
# lines that hold a grid's structure, not prose: braces, brackets, fences, a key opening an object
_STRUCTURE = re.compile(r'^(?:[\s{}\[\],:`]*|```\w*|"[^"\n]{1,40}"\s*:\s*[{\[]?\s*)$')


@dataclass(frozen=True)
class ZebraClaim:
    """A claim of the trace: what it says (``text``), where, its node, and whether the step asserts it."""

    text: str
    span: Span
    node: Node
    asserted: bool
    origin: str  # "prose", "row", "grid"
    block: int = -1  # the grid a cell belongs to (a table, a JSON object, a run of rows); -1 for prose

    @property
    def end(self) -> int:
        return self.span.end


@dataclass(frozen=True)
class GridCell:
    """A cell of a grid the trace writes: ``entity`` in ``house``."""

    entity: Entity
    house: int
    span: Span
    block: int


@dataclass(frozen=True)
class ReadState:
    """What one step leaves for the next: the open hedge and the grid being read (its number, its kind, the last
    house it wrote, the table's columns, the JSON house object open)."""

    carry: int = NONE
    block: int = 0
    open_kind: str = ""  # "table", "json", "rows" or "" (none open)
    last_house: int = 0
    table: tuple[tuple[int | None, int | None], ...] | None = None  # per column: (house, feature)
    table_rows: bool = False  # houses are rows (the first cell is the house)
    json_house: int | None = None
    json_depth: int = 0


@dataclass(frozen=True)
class ZebraReading:
    """What a step says: its claims and the grid cells among them."""

    claims: tuple[ZebraClaim, ...]
    cells: tuple[GridCell, ...]


class TraceReader:
    """Reads one puzzle's traces step by step (use with :class:`~interlock.verifiers.stepwise.StepwiseReader`)."""

    def __init__(self, puzzle: ZebraPuzzle, enc: Encoding) -> None:
        self.puzzle = puzzle
        self.enc = enc
        spec, self.names = reading_spec(puzzle)
        target_of = {e: k for k, e in self.names.items()}
        for alias, entity in self._aliases().items():
            target = target_of[entity]
            if alias != target and alias not in spec.variables:
                spec.alias(alias, target)
        patterns = [p for p in DEFAULT_PATTERNS if p.name not in _NUMBER_PATTERNS]
        self.prose = ClaimReader(spec, [*_EXTRA, *patterns], symbolic=False)
        self.stance = Stance()

    def _aliases(self) -> dict[str, Entity]:
        """Every unambiguous way of naming an entity: its value's surface forms (raw and normalised), and the
        describing phrases the clues use (with and without "the person who")."""
        lexicon = self.puzzle.lexicon
        out: dict[str, set[Entity]] = {}

        def add(text: str, entity: Entity) -> None:
            key = N.canon(re.sub(r"(?<=\w)-(?=\w)", " ", text))
            key = re.sub(r"^(?:the|a|an)\s+", "", key).strip(" .,")
            if key and not key.isdigit() and key not in ("and", "or", "not", "the", "abs", "true", "false"):
                out.setdefault(key, set()).add(entity)

        for form, entities in lexicon.forms().items():
            for entity in entities:
                add(form, entity)
        for entity in self.puzzle.entities():
            add(entity.value, entity)
        for clue in self.puzzle.clues:
            for phrase, entity in clue.phrases:
                add(phrase, entity)
        chosen: dict[str, Entity] = {}
        for key, entities in out.items():
            # a value two features share ("alice": a name and a child) goes to the one a bare mention means
            best = next(iter(entities)) if len(entities) == 1 else lexicon.by_cues(entities, set())
            if best is not None:
                chosen[key] = best
        return chosen

    # -- one step -------------------------------------------------------------------------------------
    def step(self, state: ReadState, text: str, start: int, end: int) -> tuple[ReadState, list[ZebraReading]]:
        raw = text[start:end]
        piece = mask_mentions(unescape(raw))
        piece = re.sub(r"(?<=\w)-(?=\w)", " ", piece)
        asserts, carry = self.stance(piece, state.carry)
        state = replace(state, carry=carry)
        claims: list[ZebraClaim] = []
        cells: list[GridCell] = []
        state = self._grid(state, piece, start, cells)
        for cell in cells:
            node = self.enc.at(cell.entity, cell.house)
            what = f"House {cell.house}: {self.puzzle.features[cell.entity.feature].key} = {cell.entity.value}"
            claims.append(ZebraClaim(what, cell.span, node, asserts, "grid", cell.block))
        if asserts and not _GRID_LINE.match(piece):
            found, _ = self.prose.read(piece, start, after_hedge=NONE)
            for c in found:
                translated = translate(c.node, self.names, self.enc)
                if translated is None or self._in_a_list(piece, c.span.start - start, c.span.end - start):
                    continue
                node = translated[0]
                if any(c.span.start < x.span.end and x.span.start < c.span.end and x.node == node for x in claims):
                    continue
                origin = "row" if c.pattern == "row" else "prose"
                claims.append(ZebraClaim(raw[c.span.start - start:c.span.end - start].strip() or c.text, c.span,
                                         node, True, origin))
        return state, [ZebraReading(tuple(claims), tuple(cells))]

    def _in_a_list(self, piece: str, lo: int, hi: int) -> bool:
        """Whether a claim is one item of a list the sentence states together ("Carol, Alice and Bob must be in
        House 3, House 4 and House 5"): its subject ends a list of values, or its house begins a list of houses.
        Read alone it would say something the text does not."""
        if _HOUSE_LIST.match(piece, hi):
            return True
        before = _LIST_TAIL.search(piece, 0, lo)
        if before is None:
            return False
        item = normalize(before.group("item"))
        return any(end == len(item) for _, end, _ in self.puzzle.lexicon.mentions(item))

    # -- grids ----------------------------------------------------------------------------------------
    def _grid(self, state: ReadState, piece: str, start: int, cells: list[GridCell]) -> ReadState:
        stripped = piece.strip()
        if not stripped:
            return state
        if stripped.startswith("|"):
            return self._table_line(state, piece, start, cells)
        if state.open_kind == "table":
            state = replace(state, open_kind="", table=None)
        if state.json_house is not None or _JSON_HOUSE.search(piece):
            return self._json(state, piece, start, cells)
        row = _ROW.match(piece)
        if row is not None:
            house = int(row.group("n"))
            if state.open_kind != "rows" or house <= state.last_house:
                state = replace(state, block=state.block + 1, open_kind="rows")
            state = replace(state, last_house=house)
            if 1 <= house <= self.puzzle.houses:
                for m in _CELL_SPLIT.finditer(row.group("cells")):
                    found = self._cell(m.group(), None)
                    if found is not None:
                        s = start + row.start("cells") + m.start()
                        cells.append(GridCell(found, house, Span(s, s + len(m.group().rstrip())), state.block))
            return state
        if state.open_kind and not _STRUCTURE.match(stripped):
            state = replace(state, open_kind="")
        return state

    def _table_line(self, state: ReadState, piece: str, start: int, cells: list[GridCell]) -> ReadState:
        line = piece.rstrip("\n")
        first_bar = line.index("|")
        parts = [(m.start(), m.group()) for m in re.finditer(r"[^|]+", line) if m.start() > first_bar]
        if parts and not parts[-1][1].strip() and parts[-1][0] + len(parts[-1][1]) >= len(line.rstrip()):
            parts = parts[:-1]
        texts = [t.strip() for _, t in parts]
        if all(re.fullmatch(r":?-+:?", t) for t in texts if t) and any(texts):
            return state  # the separator under the header
        if state.open_kind != "table" or state.table is None:
            columns, rows = self._header(texts)
            return replace(state, block=state.block + 1, open_kind="table", table=columns, table_rows=rows,
                           last_house=0)
        columns = state.table
        if state.table_rows:
            house = _house_number(_MARKUP.sub("", texts[0])) if texts else None
            if house is None or not 1 <= house <= self.puzzle.houses:
                return state
            for (pos, text), (_, feature) in zip(parts[1:], columns[1:], strict=False):
                self._table_cell(text, house, feature, start + pos, state.block, cells)
        else:
            feature = self.puzzle.feature_by_key(_MARKUP.sub("", texts[0])) if texts else None
            for (pos, text), (house, _) in zip(parts[1:], columns[1:], strict=False):
                if house is not None and 1 <= house <= self.puzzle.houses:
                    self._table_cell(text, house, feature, start + pos, state.block, cells)
        return state

    def _header(self, texts: list[str]) -> tuple[tuple[tuple[int | None, int | None], ...] | None, bool]:
        """The columns of a table from its header: houses as columns, or features as columns (houses as rows)."""
        clean = [_MARKUP.sub("", t).strip() for t in texts]
        houses = [_house_number(t) for t in clean]
        if sum(h is not None for h in houses[1:]) >= 2:
            return tuple((h, None) for h in houses), False
        if clean and re.fullmatch(r"(?:house|#|no\.?|position|pos\.?|h)?", clean[0], re.IGNORECASE):
            features = [self.puzzle.feature_by_key(t) for t in clean]
            if sum(f is not None for f in features[1:]) >= 1:
                return tuple((None, f) for f in features), True
        return None, False

    def _table_cell(self, text: str, house: int, feature: int | None, pos: int, block: int,
                    cells: list[GridCell]) -> None:
        found = self._cell(text, feature)
        if found is not None:
            lead = len(text) - len(text.lstrip())
            cells.append(GridCell(found, house, Span(pos + lead, pos + lead + len(text.strip())), block))

    def _json(self, state: ReadState, piece: str, start: int, cells: list[GridCell]) -> ReadState:
        """A JSON grid as it streams: ``"House N": {`` opens a house, ``"Key": "value"`` pairs fill it, ``}``
        closes it; houses numbered upwards belong to one grid."""
        events: list[tuple[int, str, re.Match[str] | None]] = []
        opens = list(_JSON_HOUSE.finditer(piece))
        for opened in opens:
            events.append((opened.start(), "open", opened))
        for pair in _JSON_PAIR.finditer(piece):
            events.append((pair.start(), "pair", pair))
        for brace in re.finditer(r"[{}]", piece):
            if not any(o.start() <= brace.start() < o.end() for o in opens):
                events.append((brace.start(), brace.group(), None))
        events.sort(key=lambda e: e[0])
        for _, kind, m in events:
            if kind == "open" and m is not None:
                n = int(m.group("n"))
                if state.open_kind != "json" or n <= state.last_house:
                    state = replace(state, block=state.block + 1, open_kind="json")
                state = replace(state, last_house=n, json_depth=1,
                                json_house=n if 1 <= n <= self.puzzle.houses else None)
            elif kind == "{" and state.json_house is not None:
                state = replace(state, json_depth=state.json_depth + 1)
            elif kind == "}" and state.json_house is not None:
                depth = state.json_depth - 1
                state = replace(state, json_depth=max(depth, 0), json_house=None if depth <= 0 else state.json_house)
            elif kind == "pair" and m is not None and state.json_house is not None and state.json_depth == 1:
                feature = self.puzzle.feature_by_key(m.group("k"))
                found = self._cell(m.group("v"), feature) if feature is not None else None
                if found is not None:
                    cells.append(GridCell(found, state.json_house, Span(start + m.start("v"), start + m.end("v")),
                                          state.block))
        return state

    def _cell(self, text: str, feature: int | None) -> Entity | None:
        """The entity a grid cell holds: exactly one value (of ``feature`` when known), or None."""
        cell = _MARKUP.sub("", text).strip().strip(".:").strip()
        if not cell or _UNSURE.search(cell):
            return None
        keyed = _KEYED.match(cell)
        if keyed is not None and feature is None:
            key_feature = self.puzzle.feature_by_key(keyed.group("k"))
            if key_feature is not None:
                feature, cell = key_feature, keyed.group("v")
        lexicon = self.puzzle.lexicon
        if feature is not None:
            value = lexicon.value_of(cell, feature) or lexicon.value_of(_strip_roles(cell), feature)
            return Entity(feature, value) if value is not None else None
        for candidate in (normalize(cell), _strip_roles(normalize(cell))):
            candidate = re.sub(r"^(?:the|a|an)\s+", "", candidate)
            entities = lexicon.entities_of(candidate)
            if entities:
                if len(entities) == 1:
                    return next(iter(entities))
                return lexicon.by_cues(entities, set())
        return None


def _strip_roles(cell: str) -> str:
    return re.sub(_ROLE_NOUNS + r"$", "", cell.strip(), flags=re.IGNORECASE).strip()


def _house_number(text: str) -> int | None:
    m = re.fullmatch(r"\s*(?:\*\*)?(?:house|h|#|position|pos\.?)?\s*#?\s*(\d+)(?:\*\*)?\s*", text, re.IGNORECASE)
    return int(m.group(1)) if m else None
