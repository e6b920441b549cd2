"""System query options (``$select``, ``$expand``, ``$filter``, ``$orderby``, ``$top``, ``$skip``, ``$count``) turned
into one SOQL query and the shape its rows are rendered in.

::

    GET /odata/v4/Account?$select=Name&$expand=Contacts($select=LastName;$top=3)&$filter=Industry eq 'Banking'
    -> SELECT Id, Name, (SELECT Id, LastName FROM Contacts LIMIT 3) FROM Account
       WHERE Industry = 'Banking'

Expansion goes one level: to parents (``Contact?$expand=Account`` selects ``Account.Name``, …) and to children
(a child subquery, which may carry its own ``$select``, ``$filter``, ``$orderby`` and ``$top`` in OData 4.0).
``$skip`` up to SOQL's OFFSET cap (2000) is the query's ``OFFSET``; past it, the query engine starts its page
at the offset instead (no cap there). Server-driven paging is offset paging too: see service.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from interlink.api.odata.filter import translate_filter, translate_orderby
from interlink.api.odata.model import ChildNav, EntitySet, ParentNav, Property, ServiceModel
from interlink.errors import MalformedQueryError

MAX_SOQL_OFFSET = 2000
# Options the producer reads; the other system query options are refused rather than silently ignored.
_V4_OPTIONS = {"$select", "$expand", "$filter", "$orderby", "$top", "$skip", "$count", "$format", "$skiptoken"}
_V2_OPTIONS = {"$select", "$expand", "$filter", "$orderby", "$top", "$skip", "$inlinecount", "$format", "$skiptoken"}
_EXPAND_OPTIONS = {"$select", "$filter", "$orderby", "$top"}


@dataclass
class Selection:
    """What one level of the answer holds: properties, expanded parents, expanded children."""

    entity_set: EntitySet
    properties: list[Property]
    parents: list[tuple[ParentNav, Selection]] = field(default_factory=list)
    children: list[tuple[ChildNav, ChildQuery]] = field(default_factory=list)

    def soql_fields(self) -> list[str]:
        """The SELECT list: properties, parent paths and child subqueries."""
        fields = [p.name for p in self.properties]
        for nav, parent in self.parents:
            fields.extend(f"{nav.name}.{p.name}" for p in parent.properties)
        for _nav, child in self.children:
            fields.append(f"({child.soql()})")
        return list(dict.fromkeys(fields))


@dataclass
class ChildQuery:
    """An expanded collection: the child subquery's selection, condition, order and limit."""

    nav: ChildNav
    selection: Selection
    where: str | None = None
    order_by: list[str] = field(default_factory=list)
    limit: int | None = None

    def soql(self) -> str:
        text = f"SELECT {', '.join(self.selection.soql_fields())} FROM {self.nav.name}"
        if self.where:
            text += f" WHERE {self.where}"
        if self.order_by:
            text += f" ORDER BY {', '.join(self.order_by)}"
        if self.limit is not None:
            text += f" LIMIT {self.limit}"
        return text


@dataclass
class QueryPlan:
    """One OData read as SOQL: the text to run, how to render it, and where its rows start."""

    entity_set: EntitySet
    selection: Selection
    where: str | None
    order_by: list[str]
    skip: int
    top: int | None
    count: bool
    soql: str = ""
    engine_offset: int = 0  # rows the engine skips beyond the SOQL OFFSET ($skip past the OFFSET cap)

    def count_soql(self) -> str:
        """``SELECT COUNT()`` over the same condition (``@odata.count`` ignores ``$top`` and ``$skip``)."""
        text = f"SELECT COUNT() FROM {self.entity_set.obj.name}"
        return text + (f" WHERE {self.where}" if self.where else "")


# -- helpers -------------------------------------------------------------------------------------------------------

def split_top_level(text: str, separator: str) -> list[str]:
    """Split ``text`` on ``separator`` outside quotes and parentheses (``a,b($filter=x eq 'p,q'),c``)."""
    parts: list[str] = []
    depth = 0
    in_quote = False
    current: list[str] = []
    for char in text:
        if char == "'":
            in_quote = not in_quote  # a doubled '' toggles twice: still inside
        elif not in_quote and char == "(":
            depth += 1
        elif not in_quote and char == ")":
            depth -= 1
        if char == separator and depth == 0 and not in_quote:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    if depth != 0 or in_quote:
        raise MalformedQueryError(f"Unbalanced parentheses or quotes in: {text}", [])
    return [p for p in parts if p]


MAX_ROWS_OPTION = 2**31 - 1  # larger $top and $skip values mean the same as this one


def non_negative(params: Mapping[str, str], name: str) -> int | None:
    """``$top``/``$skip`` as an integer (None when absent); 400 for anything but a non-negative whole number."""
    raw = params.get(name)
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise MalformedQueryError(f"{name} must be a non-negative whole number, not '{raw}'", [name])
    # Past any real table either way; the database refuses integers beyond 64 bits.
    return min(int(raw.strip()), MAX_ROWS_OPTION)


def _boolean_option(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    if raw.strip().lower() not in ("true", "false"):
        raise MalformedQueryError(f"{name} must be true or false, not '{raw}'", [name])
    return raw.strip().lower() == "true"


def check_options(params: Mapping[str, str], version: int) -> None:
    """Refuse system query options the producer does not implement (``$search``, ``$apply``, ``$levels``…)."""
    known = _V4_OPTIONS if version == 4 else _V2_OPTIONS
    for name in params:
        if name.startswith("$") and name not in known:
            raise MalformedQueryError(f"The query option {name} is not supported", [name])


# -- $select and $expand -------------------------------------------------------------------------------------------

def _with_id(entity_set: EntitySet, properties: list[Property]) -> list[Property]:
    key = entity_set.properties["id"]
    return [key, *[p for p in properties if p.name != "Id"]]


def _all_properties(entity_set: EntitySet) -> list[Property]:
    return list(entity_set.properties.values())


def _select_v4(entity_set: EntitySet, raw: str | None) -> list[Property]:
    if raw is None or not raw.strip():
        return _all_properties(entity_set)
    chosen: list[Property] = []
    for name in split_top_level(raw, ","):
        if name == "*":
            return _all_properties(entity_set)
        if entity_set.navigation(name) is not None and name.lower() not in entity_set.properties:
            continue  # selecting a navigation property asks for its link, which minimal metadata leaves out
        if "/" in name or "(" in name:
            raise MalformedQueryError(f"$select item '{name}' is not supported: select properties by name, "
                                      "and properties of expanded entities inside $expand(…($select=…))", ["$select"])
        chosen.append(entity_set.property(name))
    return _with_id(entity_set, chosen)


def _expand_item_v4(item: str) -> tuple[str, dict[str, str]]:
    name, paren, rest = item.partition("(")
    name = name.strip()
    options: dict[str, str] = {}
    if paren:
        if not rest.endswith(")"):
            raise MalformedQueryError(f"Malformed $expand item: {item}", ["$expand"])
        for part in split_top_level(rest[:-1], ";"):
            key, equals, value = part.partition("=")
            key = key.strip()
            if not equals:
                raise MalformedQueryError(f"Malformed option in $expand: {part}", ["$expand"])
            if key not in _EXPAND_OPTIONS:
                reason = "expansion goes one level deep" if key in ("$expand", "$levels") else "it is not supported"
                raise MalformedQueryError(f"{key} inside $expand is not supported: {reason}", ["$expand"])
            options[key] = value.strip()
    if "/" in name:
        raise MalformedQueryError(f"$expand={name} is not supported: expansion goes one level deep, and $ref and "
                                  "type casts are not supported", ["$expand"])
    return name, options


def _navigation(entity_set: EntitySet, name: str) -> ParentNav | ChildNav:
    nav = entity_set.navigation(name)
    if nav is None:
        raise MalformedQueryError(f"No navigation property '{name}' exists in type '{entity_set.type_name}'",
                                  ["$expand"])
    return nav


def _expand(selection: Selection, model: ServiceModel, items: list[tuple[str, dict[str, str]]],
            v2_select: dict[str, list[str]] | None = None) -> None:
    entity_set = selection.entity_set
    expanded: set[str] = set()
    for name, options in items:
        navs = (list(entity_set.parents.values()) + list(entity_set.children.values())) if name == "*" \
            else [_navigation(entity_set, name)]
        for nav in navs:
            if nav.name in expanded:
                continue
            expanded.add(nav.name)
            if isinstance(nav, ParentNav):
                if set(options) - {"$select"}:
                    raise MalformedQueryError(f"{nav.name} is a single entity: only $select applies inside its "
                                              "$expand", ["$expand"])
                target = model.sets[nav.target.lower()]
                selection.parents.append((nav, Selection(target, _nested_select(target, options, v2_select, nav))))
                continue
            child = model.sets[nav.child.lower()]
            query = ChildQuery(nav, Selection(child, _nested_select(child, options, v2_select, nav)))
            if options.get("$filter"):
                query.where = translate_filter(options["$filter"], child, model)
            if options.get("$orderby"):
                query.order_by = translate_orderby(options["$orderby"], child, model)
            query.limit = non_negative(options, "$top")
            selection.children.append((nav, query))


def _nested_select(target: EntitySet, options: dict[str, str], v2_select: dict[str, list[str]] | None,
                   nav: ParentNav | ChildNav) -> list[Property]:
    if v2_select is not None:
        names = v2_select.get(nav.name.lower())
        if not names or "*" in names:
            return _all_properties(target)
        return _with_id(target, [target.property(n) for n in names])
    return _select_v4(target, options.get("$select"))


def _selection_v4(entity_set: EntitySet, model: ServiceModel, params: Mapping[str, str]) -> Selection:
    selection = Selection(entity_set, _select_v4(entity_set, params.get("$select")))
    raw_expand = params.get("$expand")
    if raw_expand:
        _expand(selection, model, [_expand_item_v4(item) for item in split_top_level(raw_expand, ",")])
    return selection


def _selection_v2(entity_set: EntitySet, model: ServiceModel, params: Mapping[str, str]) -> Selection:
    """OData 2.0: ``$expand=A,B`` and ``$select=Name,A/Name`` (paths select inside expanded entities)."""
    expand_names: list[str] = []
    for item in split_top_level(params.get("$expand") or "", ","):
        if "/" in item or "(" in item:
            raise MalformedQueryError(f"$expand={item} is not supported: expansion goes one level deep", ["$expand"])
        expand_names.append(item)
    nested: dict[str, list[str]] = {}
    own: list[str] = []
    raw_select = params.get("$select")
    for item in split_top_level(raw_select or "", ","):
        head, slash, tail = item.partition("/")
        if slash:
            if "/" in tail:
                raise MalformedQueryError(f"$select={item} is not supported: paths go one level deep", ["$select"])
            nested.setdefault(head.lower(), []).append(tail)
        elif entity_set.navigation(item) is not None and item.lower() not in entity_set.properties:
            nested.setdefault(item.lower(), []).append("*")
        else:
            own.append(item)
    if raw_select and raw_select.strip() and "*" not in own:
        properties = _with_id(entity_set, [entity_set.property(name) for name in own])
    else:
        properties = _all_properties(entity_set)
    for head in nested:
        nav = _navigation(entity_set, head)
        if not any(n.lower() == nav.name.lower() for n in expand_names):
            raise MalformedQueryError(f"$select={nav.name}/… needs $expand={nav.name}", ["$select"])
    selection = Selection(entity_set, properties)
    _expand(selection, model, [(name, {}) for name in expand_names], nested)
    return selection


def selection_for(entity_set: EntitySet, model: ServiceModel, params: Mapping[str, str], version: int) -> Selection:
    """The rendered shape asked for by ``$select`` and ``$expand``."""
    if version == 4:
        return _selection_v4(entity_set, model, params)
    return _selection_v2(entity_set, model, params)


# -- the whole query -----------------------------------------------------------------------------------------------

def build_plan(entity_set: EntitySet, model: ServiceModel, params: Mapping[str, str], version: int, *,
               conditions: tuple[str, ...] = ()) -> QueryPlan:
    """The SOQL for a read of ``entity_set`` with the request's query options.

    ``conditions`` are ANDed with ``$filter`` (the key of a single entity, the parent of a navigation).
    """
    check_options(params, version)
    selection = selection_for(entity_set, model, params, version)
    parts = list(conditions)
    raw_filter = params.get("$filter")
    if raw_filter is not None:
        parts.append(translate_filter(raw_filter, entity_set, model))
    where = " AND ".join(f"({p})" for p in parts) if len(parts) > 1 else (parts[0] if parts else None)
    order_by = translate_orderby(params["$orderby"], entity_set, model) if params.get("$orderby") else []
    skip = non_negative(params, "$skip") or 0
    top = non_negative(params, "$top")
    if version == 4:
        count = _boolean_option(params, "$count")
    else:
        inline = (params.get("$inlinecount") or "none").strip().lower()
        if inline not in ("allpages", "none"):
            raise MalformedQueryError(f"$inlinecount must be allpages or none, not '{inline}'", ["$inlinecount"])
        count = inline == "allpages"
    plan = QueryPlan(entity_set, selection, where, order_by, skip, top, count)
    text = f"SELECT {', '.join(selection.soql_fields())} FROM {entity_set.obj.name}"
    if where:
        text += f" WHERE {where}"
    if order_by:
        text += f" ORDER BY {', '.join(order_by)}"
    if skip <= MAX_SOQL_OFFSET:
        if top is not None:
            text += f" LIMIT {top}"
        if skip:
            text += f" OFFSET {skip}"
    else:
        if top is not None:
            text += f" LIMIT {skip + top}"
        plan.engine_offset = skip
    plan.soql = text
    return plan
