"""The full-text index behind SOSL: one document per live record of every searchable object.

A document holds the record's text fields (string, textarea, email, phone, url, picklist) in four
columns: ``name`` (the name field, weighted highest), ``email``, ``phone`` (also as digits only, so
``4155550100`` finds ``+1 (415) 555-0100``) and ``body`` (everything else). ``IN NAME FIELDS`` /
``EMAIL FIELDS`` / ``PHONE FIELDS`` search one column, ``ALL FIELDS`` all four.

Text is folded and tokenized here, in Python, the same way for documents and for queries, so both
backends match the same words: Unicode case folding, diacritics removed (``Zoë`` = ``zoe``), tokens are
runs of letters and digits. Fields are kept apart inside a column so a phrase never spans two fields.

* SQLite: an FTS5 table ``il_search`` (unicode61, ``remove_diacritics 2``, prefix indexes), ranked with
  ``bm25``; ``il_search_doc`` maps record ids to FTS rowids so a record is replaced without a scan.
* PostgreSQL: a table ``il_search`` with a ``tsvector`` (weights A name, B email, C phone, D body) under a
  GIN index, ranked with ``ts_rank``.

The index is written only by the write path's ``after_save`` hook (:func:`install_search_hooks`), in
the same transaction as the records, so a rollback leaves it unchanged. :func:`sync` (run when the org
opens) creates it and rebuilds it when it is missing for existing records or the indexed fields changed.

Wildcards: a trailing ``*`` is a prefix search in the index. Other wildcards (``sm?th``, ``ac*e``) search
the index by the prefix before the wildcard and then check each candidate exactly.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Connection, bindparam, select, text

from interlink.metadata.model import FieldType, ObjectDef, Schema
from interlink.store.database import Store

if TYPE_CHECKING:
    from interlink.records.hooks import HookRegistry, SaveEvent

Scope = Literal["ALL", "NAME", "EMAIL", "PHONE"]

INDEXED_TYPES = frozenset({FieldType.STRING, FieldType.TEXTAREA, FieldType.EMAIL, FieldType.PHONE, FieldType.URL,
                           FieldType.PICKLIST})
# Objects the platform does not search (no sObject search layout).
COLUMNS = ("name", "email", "phone", "body")
WILDCARDS = frozenset("*?")
MAX_PER_OBJECT = 2000
_MAX_CANDIDATES = 50_000  # inexact (mid-word wildcard) searches: candidates checked one by one
_MAX_TOKEN = 200
_FIELD_BREAK = "_"  # between two fields in a column: a token no query can contain
_TOKEN_RE = re.compile(r"[^\W_]+")
_SIGNATURE_KEY = "search_index_signature"
_LOCK_ID = 0x1A7E_5EA6
_CHUNK = 500
_BM25_WEIGHTS = "0.0, 0.0, 10.0, 4.0, 4.0, 1.0"  # object_name, record_id, name, email, phone, body
_PG_WEIGHTS = {"name": "A", "email": "B", "phone": "C", "body": "D"}


# -- the query model ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Terms:
    """A word or a quoted phrase: consecutive folded tokens. In a token ``*`` matches any run of characters
    and ``?`` exactly one; a token never starts with a wildcard."""

    tokens: tuple[str, ...]
    text: str = ""


@dataclass(frozen=True)
class AllOf:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Without:
    """``keep AND NOT drop``."""

    keep: Expr
    drop: Expr


Expr = Terms | AllOf | AnyOf | Without


@dataclass(frozen=True)
class IndexQuery:
    """What to look up: ``expr`` in the ``scope`` columns of ``objects`` (None: every searchable object),
    at most ``per_object`` hits per object, best first."""

    expr: Expr
    scope: Scope = "ALL"
    objects: tuple[str, ...] | None = None
    per_object: int = MAX_PER_OBJECT


@dataclass(frozen=True)
class Hit:
    object_name: str
    record_id: str
    score: float  # higher is more relevant


# -- folding and tokens ------------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    decomposed = unicodedata.normalize("NFKD", char)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def fold(value: str) -> str:
    """Case-fold and strip diacritics: ``Zoë Ångström`` -> ``zoe angstrom``."""
    if value.isascii():
        return value.lower()
    return "".join(_fold_char(c) for c in value)


def tokenize(value: str) -> list[str]:
    """The index tokens of a text value: runs of letters and digits after folding."""
    folded = fold(value)
    tokens: list[str] = _TOKEN_RE.findall(folded)
    if len(folded) > _MAX_TOKEN:  # only then can a token be too long
        return [t[:_MAX_TOKEN] for t in tokens]
    return tokens


def pattern_tokens(pieces: Iterable[tuple[str, bool]]) -> tuple[str, ...]:
    """Tokens of a search word from ``(character, is_wildcard)`` pieces (escaped characters are literal).

    Literal letters and digits are folded into tokens, wildcards stay in them, anything else separates.
    """
    tokens: list[str] = []
    current: list[str] = []
    for char, wildcard in pieces:
        if wildcard:
            current.append(char)
            continue
        for folded in _fold_char(char):
            if folded.isalnum():
                current.append(folded)
            elif current:
                tokens.append("".join(current))
                current = []
    if current:
        tokens.append("".join(current))
    return tuple(t[:_MAX_TOKEN] for t in tokens)


def literal_length(token: str) -> int:
    return sum(1 for c in token if c not in WILDCARDS)


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


# -- documents -----------------------------------------------------------------------------------------------------


def searchable(obj: ObjectDef) -> bool:
    """Whether the org's index covers ``obj``: stored, queryable, searchable in its metadata, with at least one
    indexed field (external objects are searched at their source)."""
    return (obj.is_stored and obj.queryable and obj.searchable
            and any(_indexed(f) for f in obj.fields))


def _indexed(fdef: Any) -> bool:
    return fdef.type in INDEXED_TYPES and fdef.name != "Id"


@dataclass(frozen=True)
class _Layout:
    """Which fields of an object feed which column."""

    name: tuple[str, ...]
    email: tuple[str, ...]
    phone: tuple[str, ...]
    body: tuple[str, ...]
    fallback_name: tuple[str, ...]  # people: FirstName/LastName when the computed Name is empty

    @property
    def fields(self) -> frozenset[str]:
        return frozenset((*self.name, *self.email, *self.phone, *self.body, *self.fallback_name))


_layouts: dict[tuple[str, int], tuple[ObjectDef, _Layout]] = {}


def _layout(obj: ObjectDef) -> _Layout:
    # Keyed by identity too: a caller's view of an object (fewer fields) has a layout of its own.
    key = (obj.name, id(obj))
    cached = _layouts.get(key)
    if cached is not None and cached[0] is obj:
        return cached[1]
    name_field = obj.name_field
    name = (name_field.name,) if name_field is not None and _indexed(name_field) else ()
    email = tuple(f.name for f in obj.fields if f.type is FieldType.EMAIL)
    phone = tuple(f.name for f in obj.fields if f.type is FieldType.PHONE)
    taken = {*name, *email, *phone}
    fallback = tuple(n for n in ("FirstName", "MiddleName", "LastName", "Suffix") if obj.has_field(n)) if name else ()
    body = tuple(f.name for f in obj.fields if _indexed(f) and f.name not in taken and f.name not in fallback)
    layout = _Layout(name, email, phone, body, tuple(obj.field(n).name for n in fallback))  # type: ignore[union-attr]
    if len(_layouts) > 1024:
        _layouts.clear()
    _layouts[key] = (obj, layout)
    return layout


def _join(fields: Iterable[list[str]]) -> list[str]:
    tokens: list[str] = []
    for field_tokens in fields:
        if not field_tokens:
            continue
        if tokens:
            tokens.append(_FIELD_BREAK)
        tokens.extend(field_tokens)
    return tokens


def document(obj: ObjectDef, row: dict[str, Any]) -> dict[str, list[str]]:
    """The tokens of each column for one record (fields separated by a break token)."""
    layout = _layout(obj)

    def values(names: Sequence[str]) -> list[str]:
        return [v for v in (row.get(n) for n in names) if isinstance(v, str) and v]

    names = values(layout.name)
    if not any(tokenize(v) for v in names):  # the computed Name of a person holds these otherwise
        names += values(layout.fallback_name)
    phone_fields: list[list[str]] = []
    for value in values(layout.phone):
        phone_fields.append(tokenize(value))
        digits = _digits(value)
        if len(digits) > 1:
            phone_fields.append([digits])
            if len(digits) > 10:
                phone_fields.append([digits[-10:]])
    return {
        "name": _join(tokenize(v) for v in names),
        "email": _join(tokenize(v) for v in values(layout.email)),
        "phone": _join(phone_fields),
        "body": _join(tokenize(v) for v in values(layout.body)),
    }


def _tsvector(columns: dict[str, list[str]]) -> str:
    """A tsvector literal: positions run on through the columns, with a gap between fields."""
    positions: dict[str, list[str]] = {}
    position = 0
    for column in COLUMNS:
        weight = _PG_WEIGHTS[column]
        position += 1
        for token in columns[column]:
            position += 1
            if token == _FIELD_BREAK:
                continue
            positions.setdefault(token, []).append(f"{min(position, 16383)}{weight}")
    return " ".join("'" + token.replace("\\", "\\\\").replace("'", "''") + "':" + ",".join(spots)
                    for token, spots in positions.items())


# -- DDL, sync, rebuild ------------------------------------------------------------------------------------------


def _backend(conn: Connection) -> str:
    return conn.dialect.name


def _create(conn: Connection) -> None:
    if _backend(conn) == "sqlite":
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS il_search_doc (doc_id INTEGER PRIMARY KEY, "
                             "record_id VARCHAR(18) NOT NULL UNIQUE)")
        conn.exec_driver_sql(
            "CREATE VIRTUAL TABLE IF NOT EXISTS il_search USING fts5(object_name UNINDEXED, record_id UNINDEXED, "
            "name, email, phone, body, tokenize=\"unicode61 remove_diacritics 2 tokenchars '_'\", "
            "prefix='2 3 4')")
    else:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_ID})")
        conn.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS il_search (record_id VARCHAR(18) PRIMARY KEY, "
            "object_name VARCHAR(255) NOT NULL, name TEXT NOT NULL DEFAULT '', email TEXT NOT NULL DEFAULT '', "
            "phone TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '', document TSVECTOR NOT NULL)")
        conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_il_search_document ON il_search USING GIN (document)")


def ensure(store: Store) -> None:
    """Create the index tables if missing (idempotent)."""
    with store.write() as conn:
        _create(conn)


def signature(store: Store) -> str:
    """A digest of what is indexed (objects and their fields per column): a change calls for a rebuild."""
    parts = []
    for obj in store.schema:
        if searchable(obj):
            layout = _layout(obj)
            parts.append(f"{obj.name}:{layout.name}:{layout.email}:{layout.phone}:{layout.body}:{layout.fallback_name}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def sync(store: Store) -> bool:
    """Create the index and rebuild it if it is stale: built for other fields, or empty while records
    exist (an org created before the index existed). Returns True when it rebuilt."""
    ensure(store)
    version = store.schema.version
    current = signature(store)
    stored = store.kv_get(_SIGNATURE_KEY)
    if stored is not None and stored.decode() == current:
        _synced[store] = version
        return False
    if stored is None and not _has_records(store):
        with store.write() as conn:
            store.kv_put(conn, _SIGNATURE_KEY, current.encode())
        _synced[store] = version
        return False
    rebuild(store)
    _synced[store] = version
    return True


# The schema version each store's index was last checked against: a deploy while the org runs (another
# process's ``interlink deploy``) is noticed by the next search, which brings the index up to date first.
_synced: weakref.WeakKeyDictionary[Store, str] = weakref.WeakKeyDictionary()


def _check_current(store: Store) -> None:
    if _synced.get(store) != store.schema.version:
        sync(store)


def _has_records(store: Store) -> bool:
    with store.read() as conn:
        for obj in store.schema:
            if searchable(obj):
                table = store.table(obj.name)
                if conn.execute(table.select().with_only_columns(table.c.Id).limit(1)).first() is not None:
                    return True
    return False


def rebuild(store: Store, batch_size: int = 2000) -> int:
    """Reindex every live record of every searchable object; returns how many were indexed."""
    count = 0
    with store.write() as conn:
        _create(conn)
        conn.exec_driver_sql("DELETE FROM il_search")
        if _backend(conn) == "sqlite":
            conn.exec_driver_sql("DELETE FROM il_search_doc")
        for obj in store.schema:
            if not searchable(obj):
                continue
            table = store.table(obj.name)
            columns = [table.c.Id, *(table.c[n] for n in sorted(_layout(obj).fields))]
            last = ""
            while True:
                query = table.select().with_only_columns(*columns).where(table.c.Id > last)
                if obj.has_field("IsDeleted"):
                    query = query.where(table.c.IsDeleted.is_not(True))
                rows = [dict(r._mapping) for r in conn.execute(query.order_by(table.c.Id).limit(batch_size))]
                if not rows:
                    break
                index_records(conn, obj, rows, fresh=True)
                count += len(rows)
                last = rows[-1]["Id"]
        store.kv_put(conn, _SIGNATURE_KEY, signature(store).encode())
    return count


# -- writing -------------------------------------------------------------------------------------------------------


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def index_records(conn: Connection, obj: ObjectDef, rows: Sequence[dict[str, Any]], *, fresh: bool = False) -> None:
    """(Re)index ``rows`` of ``obj`` in the open transaction ``conn`` (``fresh``: none is indexed yet)."""
    if not rows or not searchable(obj):
        return
    docs = [(row["Id"], document(obj, row)) for row in rows if row.get("Id")]
    texts = [{"object_name": obj.name, "record_id": record_id,
              **{c: " ".join(columns[c]) for c in COLUMNS}} for record_id, columns in docs]
    if _backend(conn) == "sqlite":
        for chunk in _chunks(texts):
            record_ids = [t["record_id"] for t in chunk]
            if not fresh:
                _delete_sqlite(conn, record_ids, keep_docs=True)
            conn.execute(text("INSERT OR IGNORE INTO il_search_doc (record_id) VALUES (:record_id)"),
                         [{"record_id": r} for r in record_ids])
            doc_ids = dict(conn.execute(text("SELECT record_id, doc_id FROM il_search_doc WHERE record_id IN "
                                             ":ids").bindparams(bindparam("ids", expanding=True)),
                                        {"ids": record_ids}).all())
            conn.execute(text("INSERT INTO il_search (rowid, object_name, record_id, name, email, phone, body) "
                              "VALUES (:doc_id, :object_name, :record_id, :name, :email, :phone, :body)"),
                         [{**t, "doc_id": doc_ids[t["record_id"]]} for t in chunk])
    else:
        vectors = {record_id: _tsvector(columns) for record_id, columns in docs}
        conn.execute(text(
            "INSERT INTO il_search (record_id, object_name, name, email, phone, body, document) "
            "VALUES (:record_id, :object_name, :name, :email, :phone, :body, CAST(:document AS tsvector)) "
            "ON CONFLICT (record_id) DO UPDATE SET object_name = EXCLUDED.object_name, name = EXCLUDED.name, "
            "email = EXCLUDED.email, phone = EXCLUDED.phone, body = EXCLUDED.body, document = EXCLUDED.document"),
            [{**t, "document": vectors[t["record_id"]]} for t in texts])


def _delete_sqlite(conn: Connection, record_ids: Sequence[str], *, keep_docs: bool) -> None:
    doc_ids = list(conn.execute(text("SELECT doc_id FROM il_search_doc WHERE record_id IN :ids")
                                .bindparams(bindparam("ids", expanding=True)), {"ids": list(record_ids)}).scalars())
    if not doc_ids:
        return
    conn.execute(text("DELETE FROM il_search WHERE rowid IN :docs").bindparams(bindparam("docs", expanding=True)),
                 {"docs": doc_ids})
    if not keep_docs:
        conn.execute(text("DELETE FROM il_search_doc WHERE doc_id IN :docs")
                     .bindparams(bindparam("docs", expanding=True)), {"docs": doc_ids})


def remove_records(conn: Connection, record_ids: Sequence[str]) -> None:
    """Drop ``record_ids`` from the index in the open transaction ``conn``."""
    record_ids = [r for r in record_ids if r]
    for chunk in _chunks(record_ids):
        if _backend(conn) == "sqlite":
            _delete_sqlite(conn, chunk, keep_docs=False)
        else:
            conn.execute(text("DELETE FROM il_search WHERE record_id IN :ids")
                         .bindparams(bindparam("ids", expanding=True)), {"ids": list(chunk)})


def install_search_hooks(hooks: HookRegistry, store: Store) -> Any:
    """Keep the index in step with every write: an ``after_save`` hook, inside the write's transaction."""

    def keep_index(event: SaveEvent) -> None:
        obj = event.object
        if not searchable(obj):
            return
        conn = event.uow.conn
        if event.operation == "delete":
            remove_records(conn, [row["Id"] for row in event.new if row.get("Id")])
            return
        rows = event.new
        if event.operation == "update":
            watched = _layout(obj).fields
            rows = [row for position, row in enumerate(event.new)
                    if watched.intersection(event.changed_fields(position))]
        index_records(conn, obj, rows, fresh=event.operation == "insert")

    return hooks.register("after_save", keep_index)


# -- searching -----------------------------------------------------------------------------------------------------


def _expand(expr: Expr) -> Expr:
    """Phone-style numbers (``415 555 0100``, ``(415) 555-0100``) also match their digits-only form."""
    match expr:
        case Terms(tokens=tokens) if len(tokens) > 1 and all(t.isdigit() for t in tokens):
            return AnyOf((expr, Terms(("".join(tokens)[:_MAX_TOKEN],), expr.text)))
        case Terms():
            return expr
        case AllOf(items=items):
            return AllOf(tuple(_expand(i) for i in items))
        case AnyOf(items=items):
            return AnyOf(tuple(_expand(i) for i in items))
        case Without(keep=keep, drop=drop):
            return Without(_expand(keep), _expand(drop))
    raise TypeError(expr)


def _literal_prefix(token: str) -> str:
    cut = min((token.index(w) for w in WILDCARDS if w in token), default=len(token))
    return token[:cut]


def _token_kind(token: str) -> tuple[str, bool, bool]:
    """(literal prefix, is prefix search, exact in the index)."""
    prefix = _literal_prefix(token)
    if prefix == token:
        return token, False, True
    if not prefix:
        raise ValueError(f"a search token cannot start with a wildcard: {token!r}")
    return prefix, True, token == prefix + "*"


def _fts(expr: Expr) -> tuple[str, bool]:
    """An FTS5 query that finds at least what ``expr`` matches, and whether it is exactly that."""
    match expr:
        case Terms(tokens=tokens):
            parts, exact = [], True
            for token in tokens:
                literal, prefix, token_exact = _token_kind(token)
                parts.append('"' + literal.replace('"', '""') + '"' + (" *" if prefix else ""))
                exact = exact and token_exact
            return " + ".join(parts), exact
        case AllOf(items=items) | AnyOf(items=items):
            compiled = [_fts(i) for i in items]
            joiner = " AND " if isinstance(expr, AllOf) else " OR "
            return joiner.join(f"({q})" for q, _ in compiled), all(e for _, e in compiled)
        case Without(keep=keep, drop=drop):
            keep_q, keep_exact = _fts(keep)
            drop_q, drop_exact = _fts(drop)
            if not drop_exact:  # cannot subtract a superset: keep the candidates, check them later
                return keep_q, False
            return f"({keep_q}) NOT ({drop_q})", keep_exact
    raise TypeError(expr)


def _pg(expr: Expr, weights: str) -> tuple[str, bool]:
    """A tsquery literal that finds at least what ``expr`` matches, and whether it is exactly that."""
    match expr:
        case Terms(tokens=tokens):
            parts, exact = [], True
            for token in tokens:
                literal, prefix, token_exact = _token_kind(token)
                lexeme = "'" + literal.replace("\\", "\\\\").replace("'", "''") + "'"
                label = ("*" if prefix else "") + weights
                parts.append(lexeme + (":" + label if label else ""))
                exact = exact and token_exact
            return " <-> ".join(parts), exact
        case AllOf(items=items) | AnyOf(items=items):
            compiled = [_pg(i, weights) for i in items]
            joiner = " & " if isinstance(expr, AllOf) else " | "
            return joiner.join(f"({q})" for q, _ in compiled), all(e for _, e in compiled)
        case Without(keep=keep, drop=drop):
            keep_q, keep_exact = _pg(keep, weights)
            drop_q, drop_exact = _pg(drop, weights)
            if not drop_exact:
                return keep_q, False
            return f"({keep_q}) & !({drop_q})", keep_exact
    raise TypeError(expr)


@lru_cache(maxsize=1024)
def _token_regex(token: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in token))


def _phrase_in(patterns: Sequence[re.Pattern[str]], tokens: Sequence[str]) -> bool:
    width = len(patterns)
    for start in range(len(tokens) - width + 1):
        if all(p.fullmatch(tokens[start + i]) for i, p in enumerate(patterns)):
            return True
    return False


def matches(expr: Expr, columns: Sequence[Sequence[str]]) -> bool:
    """Exactly whether a document (token lists of the searched columns) matches ``expr``."""
    match expr:
        case Terms(tokens=tokens):
            patterns = [_token_regex(t) for t in tokens]
            return any(_phrase_in(patterns, column) for column in columns)
        case AllOf(items=items):
            return all(matches(i, columns) for i in items)
        case AnyOf(items=items):
            return any(matches(i, columns) for i in items)
        case Without(keep=keep, drop=drop):
            return matches(keep, columns) and not matches(drop, columns)
    raise TypeError(expr)


def _scope_columns(scope: Scope) -> tuple[str, ...]:
    return COLUMNS if scope == "ALL" else (scope.lower(),)


def _hidden_fields(obj: ObjectDef, view: Schema | None) -> bool:
    """Whether the caller's ``view`` of the schema lacks some of ``obj``'s indexed fields (field-level security)."""
    if view is None:
        return False
    seen = view.object(obj.name)
    return seen is None or _layout(seen).fields != _layout(obj).fields


def _visible_documents(conn: Connection, store: Store, seen: ObjectDef,
                       record_ids: Sequence[str]) -> dict[str, dict[str, list[str]]]:
    """The documents of ``record_ids`` made of the fields the caller's view ``seen`` of their object has."""
    table = store.table(seen.name)
    names = sorted(_layout(seen).fields)
    documents: dict[str, dict[str, list[str]]] = {}
    for chunk in _chunks(record_ids):
        query = select(table.c.Id, *(table.c[n] for n in names)).where(table.c.Id.in_(list(chunk)))
        for row in conn.execute(query):
            documents[row.Id] = document(seen, dict(row._mapping))
    return documents


def _without_exclusions(expr: Expr) -> Expr:
    """``expr`` with each ``AND NOT`` dropped: what it matches, and more."""
    match expr:
        case Without(keep=keep):
            return _without_exclusions(keep)
        case AllOf(items=items):
            return AllOf(tuple(_without_exclusions(i) for i in items))
        case AnyOf(items=items):
            return AnyOf(tuple(_without_exclusions(i) for i in items))
    return expr


def search(store: Store, plan: IndexQuery, view: Schema | None = None) -> list[Hit]:
    """Records matching ``plan``, best first, at most ``plan.per_object`` per object.

    ``view`` is the caller's view of the schema: for an object some of whose indexed fields the caller may not read,
    each candidate is checked again against the fields they can read only, so a hidden field's value never finds a
    record.
    """
    objects = [obj for obj in (store.schema.object(n) for n in plan.objects) if obj is not None] \
        if plan.objects is not None else list(store.schema)
    names = [obj.name for obj in objects if searchable(obj)]
    if not names:
        return []
    _check_current(store)
    expr = _expand(plan.expr)
    columns = _scope_columns(plan.scope)
    restricted = {obj.name: view.object(obj.name) for obj in objects
                  if obj.name in names and view is not None and _hidden_fields(obj, view)}
    # A hidden field's words must not exclude a record either: the index looks up a superset, checked below.
    lookup = _without_exclusions(expr) if restricted else expr
    with store.read() as conn:
        if store.backend == "sqlite":
            query, exact = _fts(lookup)
            if plan.scope != "ALL":
                query = f"{{{columns[0]}}} : ({query})"
            inner = (f"SELECT object_name, record_id, -bm25(il_search, {_BM25_WEIGHTS}) AS score, "
                     f"{', '.join(columns)} FROM il_search WHERE il_search MATCH :q AND object_name IN :objects")
        else:
            weights = "" if plan.scope == "ALL" else _PG_WEIGHTS[columns[0]]
            query, exact = _pg(lookup, weights)
            inner = (f"SELECT object_name, record_id, ts_rank(document, q) AS score, {', '.join(columns)} "
                     "FROM il_search, CAST(:q AS tsquery) AS q WHERE document @@ q AND object_name IN :objects")
        params: dict[str, Any] = {"q": query, "objects": names}
        exact = exact and not restricted  # candidates of restricted objects are checked one by one below
        if exact:
            sql = (f"SELECT object_name, record_id, score FROM (SELECT object_name, record_id, score, row_number() "
                   f"OVER (PARTITION BY object_name ORDER BY score DESC, record_id) AS rn FROM ({inner}) AS m) "
                   "AS ranked WHERE rn <= :cap ORDER BY score DESC, record_id")
            params["cap"] = plan.per_object
        else:
            sql = f"SELECT * FROM ({inner}) AS m ORDER BY score DESC, record_id LIMIT :cap"
            params["cap"] = _MAX_CANDIDATES
        rows = conn.execute(text(sql).bindparams(bindparam("objects", expanding=True)), params).all()
        visible: dict[str, dict[str, list[str]]] = {}
        for name, seen in restricted.items():
            candidates = [r.record_id for r in rows if r.object_name == name]
            if seen is not None and candidates:
                visible.update(_visible_documents(conn, store, seen, candidates))
    if exact:
        return [Hit(r.object_name, r.record_id, float(r.score)) for r in rows]
    hits: list[Hit] = []
    taken: dict[str, int] = {}
    for row in rows:
        if taken.get(row.object_name, 0) >= plan.per_object:
            continue
        if row.object_name in restricted:
            doc = visible.get(row.record_id)
            found = doc is not None and matches(expr, [doc[c] for c in columns])
        else:
            found = matches(expr, [str(getattr(row, c)).split() for c in columns])
        if found:
            taken[row.object_name] = taken.get(row.object_name, 0) + 1
            hits.append(Hit(row.object_name, row.record_id, float(row.score)))
    return hits


__all__ = [
    "COLUMNS",
    "AllOf",
    "AnyOf",
    "Expr",
    "Hit",
    "IndexQuery",
    "Scope",
    "Terms",
    "Without",
    "document",
    "ensure",
    "fold",
    "index_records",
    "install_search_hooks",
    "matches",
    "pattern_tokens",
    "rebuild",
    "remove_records",
    "search",
    "searchable",
    "signature",
    "sync",
    "tokenize",
]
