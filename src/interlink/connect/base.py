"""What every external data source adapter implements, and the values that cross that boundary.

An adapter (OData 4.0/4.01, OData 2.0, cross-org, or a custom Python class) is a
:class:`DataSourceConnection`. The query engine never talks to one directly: it compiles SOQL on an external
object into an :class:`ExternalRequest` (remote names, a filter tree, sort keys, paging), and the connect
service hands that to the adapter. Whatever an adapter cannot do it refuses with
:class:`~interlink.errors.ExternalObjectUnsupported`, never by silently returning more or fewer rows.

The filter tree is deliberately small: comparisons of one remote column with a literal, ``in`` lists, and
``and`` / ``or`` / ``not``. Literals are Python values (str, int, float, Decimal, bool, None, date, datetime
(naive, UTC)); text matching is ``startswith`` / ``endswith`` / ``contains`` (SOQL ``LIKE 'a%'``, ``'%a'``,
``'%a%'``).

A custom adapter::

    from interlink.connect.base import DataSourceConnection, ExternalRequest, ExternalResult, ExternalTable

    class Warehouse(DataSourceConnection):
        def __init__(self, source):            # the DataSource from metadata/dataSources/<name>.yaml
            self.source = source
        def sync(self) -> list[ExternalTable]: ...
        def query(self, request: ExternalRequest) -> ExternalResult: ...
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from interlink.errors import ExternalObjectUnsupported
from interlink.soql.external import AllOf, AnyOf, Compare, CompareOp, Filter, In, Negate, SortKey

# -- schema ------------------------------------------------------------------------------------------------------

# Column types an adapter reports; ``interlink connect sync`` maps them to field types.
ColumnType = Literal["string", "textarea", "int", "double", "boolean", "date", "datetime", "time", "url"]


@dataclass(frozen=True)
class ExternalColumn:
    """One column (OData property) of a remote table."""

    name: str
    type: ColumnType = "string"
    label: str = ""
    length: int = 255
    precision: int = 18
    scale: int = 0
    nullable: bool = True
    filterable: bool = True
    sortable: bool = True


@dataclass(frozen=True)
class ExternalTable:
    """One remote table (OData entity set) and its key column (the external object's ``ExternalId``)."""

    name: str
    key: str
    columns: tuple[ExternalColumn, ...]
    label: str = ""
    label_plural: str = ""
    searchable: bool = False
    writable: bool = False


# -- queries -----------------------------------------------------------------------------------------------------

# The filter tree and sort keys are the query engine's pushdown vocabulary (interlink.soql.external): Compare,
# In, AllOf, AnyOf, Negate and SortKey, re-exported here for adapters.


@dataclass(frozen=True)
class ExternalRequest:
    """One page of a query on one remote table.

    ``columns`` are the remote columns to return (the key is always among them). ``top`` is the page size;
    ``skip`` how many rows to skip (client-driven paging). ``page_token`` continues server-driven paging: it is
    whatever the adapter put in :attr:`ExternalResult.next_page` (an ``@odata.nextLink``). ``count`` asks for the
    total number of matching rows too; ``count_only`` for nothing else.
    """

    table: str
    columns: tuple[str, ...]
    filter: Filter | None = None
    order_by: tuple[SortKey, ...] = ()
    top: int | None = None
    skip: int = 0
    count: bool = False
    count_only: bool = False
    page_token: str | None = None
    search: str | None = None


@dataclass
class ExternalResult:
    """What a query answered: rows keyed by remote column name, the total when asked and known, and a token for
    the next server-driven page (None when there is none)."""

    rows: list[dict[str, Any]]
    total: int | None = None
    next_page: str | None = None


@dataclass
class RowResult:
    """The outcome of writing one row: its key when it worked, or an error message."""

    key: str | None = None
    error: str | None = None
    created: bool = False


# -- the adapter interface ----------------------------------------------------------------------------------------


class DataSourceConnection:
    """An external data source adapter. Subclasses implement :meth:`sync` and :meth:`query`; the rest is
    optional (the default refuses the operation clearly)."""

    #: whether :meth:`search` works (SOSL on the source's external objects)
    supports_search: bool = False

    def sync(self) -> list[ExternalTable]:
        """The tables the source offers, for ``interlink connect sync``."""
        raise NotImplementedError

    def query(self, request: ExternalRequest) -> ExternalResult:
        """One page of rows for ``request``."""
        raise NotImplementedError

    def search(self, table: str, text: str, columns: Sequence[str], limit: int) -> list[dict[str, Any]]:
        """Rows of ``table`` that match the search text."""
        raise ExternalObjectUnsupported(f"{type(self).__name__} does not support search")

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> list[RowResult]:
        raise ExternalObjectUnsupported(f"{type(self).__name__} does not support insert")

    def update(self, table: str, key: str, rows: Sequence[tuple[Any, dict[str, Any]]]) -> list[RowResult]:
        """Change rows identified by their key value (``rows`` are (key value, changed columns))."""
        raise ExternalObjectUnsupported(f"{type(self).__name__} does not support update")

    def delete(self, table: str, key: str, keys: Sequence[Any]) -> list[RowResult]:
        raise ExternalObjectUnsupported(f"{type(self).__name__} does not support delete")

    def close(self) -> None:
        """Release connections (called when the org closes)."""


@dataclass
class DataSource:
    """An external data source as declared in ``metadata/dataSources/<Name>.yaml``."""

    name: str
    type: str  # odata4 | odata401 | odata2 | crossorg | python
    url: str = ""
    named_credential: str | None = None
    paging: Literal["client", "server"] = "client"
    page_size: int = 2000
    timeout: float = 30.0
    high_data_volume: bool = False
    writable: bool = False
    searchable: bool = False
    cache_seconds: float = 0.0
    adapter: str | None = None  # python: "module:Class"
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    source_file: str = ""


__all__ = [
    "AllOf",
    "AnyOf",
    "ColumnType",
    "Compare",
    "CompareOp",
    "DataSource",
    "DataSourceConnection",
    "ExternalColumn",
    "ExternalRequest",
    "ExternalResult",
    "ExternalTable",
    "Filter",
    "In",
    "Negate",
    "RowResult",
    "SortKey",
]
