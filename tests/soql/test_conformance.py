"""The table-driven SOQL conformance suite (``conformance/cases.py``) over the fixed sample data set
(``conformance/data.py``), on every store backend.

One org per backend is shared by the module; the data set is created once and only queried. Relative date
literals run against the pinned "today" of the data set (2026-06-15) through the suite's own ``QueryEngine``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from conformance import cases as C
from conformance import data as D

from interlink.errors import InterlinkError
from interlink.soql.engine import QueryEngine, QueryPage
from interlink.testing import backend_org

_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+):([^}:]+)(?::(15|18))?\}")


@pytest.fixture(scope="module")
def org(store_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One org per backend for this module, with the Project__c custom object deployed."""
    root = tmp_path_factory.mktemp(f"soql-conformance-{store_backend}")
    with backend_org(root, store_backend, {"Project__c": D.PROJECT_YAML}, unavailable=pytest.skip) as opened:
        yield opened


@pytest.fixture(scope="module")
def dataset(org: Any) -> D.DataSet:
    return D.load(org)


@pytest.fixture(scope="module")
def engine(org: Any, dataset: D.DataSet) -> QueryEngine:
    return QueryEngine(org.store, today=lambda: D.TODAY)


@pytest.fixture(scope="module")
def ctx(org: Any) -> Any:
    return org.admin_context()


# -- comparing ---------------------------------------------------------------------------------------------------


def substitute(soql: str, dataset: D.DataSet) -> str:
    def replace(match: re.Match[str]) -> str:
        record_id = dataset.id(match.group(1), match.group(2))
        return record_id[:15] if match.group(3) == "15" else record_id

    return _PLACEHOLDER.sub(replace, soql)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _round(value: Any) -> Any:
    """Floats rounded to 6 places, recursively (SUM/AVG of decimals differ in the last bits by backend)."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def resolve(expected: Any, dataset: D.DataSet) -> Any:
    """The expected value with refs replaced by ids and blocks by their wire shape (unordered ones sorted)."""
    if isinstance(expected, C.Ref):
        return dataset.id(expected.object, expected.key)
    if isinstance(expected, C.Block):
        records = [resolve(r, dataset) for r in expected.records]
        if not expected.ordered:
            records.sort(key=_canonical)
        return {"totalSize": len(records), "done": True, "records": records}
    if isinstance(expected, dict):
        return {k: resolve(v, dataset) for k, v in expected.items()}
    if isinstance(expected, list | tuple):
        return [resolve(v, dataset) for v in expected]
    return expected


def normalize(actual: Any, expected: Any) -> Any:
    """``actual`` without ``attributes``, with the child blocks ``expected`` marks unordered sorted."""
    if isinstance(actual, dict):
        out = {}
        for key, value in actual.items():
            if key == "attributes":
                continue
            template = expected.get(key) if isinstance(expected, dict) else None
            if isinstance(template, C.Block) and isinstance(value, dict) and "records" in value:
                records = [normalize(r, template.records[0] if template.records else None)
                           for r in value["records"]]
                if not template.ordered:
                    records.sort(key=_canonical)
                out[key] = {**{k: v for k, v in value.items() if k != "records"}, "records": records}
            else:
                out[key] = normalize(value, template)
        return out
    if isinstance(actual, list):
        return [normalize(v, expected) for v in actual]
    return actual


def record_id(record: dict[str, Any]) -> str:
    return record["attributes"]["url"].rsplit("/", 1)[1]


def check_attributes(records: list[dict[str, Any]], dataset: D.DataSet) -> None:
    """Every record (and nested record) carries ``attributes`` with its type and url."""
    for record in records:
        attributes = record["attributes"]
        if attributes["type"] == "AggregateResult":
            assert attributes == {"type": "AggregateResult"}
            continue
        assert attributes["url"] == f"/services/data/v66.0/sobjects/{attributes['type']}/{record_id(record)}"
        if "Id" in record:
            assert record["Id"] == record_id(record)
        for value in record.values():
            if isinstance(value, dict) and "attributes" in value:
                check_attributes([value], dataset)
            elif isinstance(value, dict) and "records" in value:
                assert value["done"] is True and value["totalSize"] == len(value["records"])
                check_attributes(value["records"], dataset)


def run_case(engine: QueryEngine, ctx: Any, dataset: D.DataSet, case: C.Case) -> None:
    soql = substitute(case.soql, dataset)
    if case.robust:
        try:
            page = engine.execute(soql, ctx, include_deleted=case.include_deleted)
        except InterlinkError as exc:
            assert 400 <= exc.http_status < 500, repr(exc)
        else:
            check_attributes(page.records, dataset)
        return
    if case.error is not None:
        with pytest.raises(InterlinkError) as info:
            engine.execute(soql, ctx, include_deleted=case.include_deleted)
        error = info.value
        assert error.error_code == case.error, error.message
        if case.message is not None:
            assert case.message in error.message.split("\n")[-1], error.message
        return
    page: QueryPage = engine.execute(soql, ctx, include_deleted=case.include_deleted)
    assert page.done
    check_attributes(page.records, dataset)
    if case.keys is not None:
        found = []
        for record in page.records:
            object_name, key = dataset.keys[record_id(record)]
            assert object_name == record["attributes"]["type"]
            found.append(key)
        expected = list(case.keys)
        if not case.is_ordered:
            found.sort()
            expected.sort()
        assert found == expected
        assert page.total_size == (case.total if case.total is not None else len(expected))
    elif case.fields is not None:
        assert page.records, "no records"
        for record in page.records:
            assert list(record)[1:] == list(case.fields)
        if case.records is not None:
            actual = [normalize(r, None) for r in page.records]
            for got, want in zip(actual, resolve(list(case.records), dataset), strict=True):
                assert {k: got[k] for k in want} == want
    elif case.records is not None:
        expected_records = _round(resolve(list(case.records), dataset))
        template = case.records[0] if case.records else None  # every record of a case has the same shape
        actual_records = _round([normalize(r, template) for r in page.records])
        if not case.is_ordered:
            expected_records.sort(key=_canonical)
            actual_records.sort(key=_canonical)
        assert actual_records == expected_records
        assert page.total_size == (case.total if case.total is not None else len(expected_records))
    else:
        assert case.total is not None
        assert page.records == []
        assert page.total_size == case.total


# -- the suite -----------------------------------------------------------------------------------------------------


def _param(case: C.Case) -> Any:
    return pytest.param(case, id=case.id)


def _run(request: pytest.FixtureRequest, store_backend: str, engine: QueryEngine, ctx: Any, dataset: D.DataSet,
         case: C.Case) -> None:
    if case.xfails_on(store_backend):
        request.applymarker(pytest.mark.xfail(strict=True, reason=case.xfail))
    run_case(engine, ctx, dataset, case)


@pytest.mark.parametrize("case", [_param(c) for c in C.VALID])
def test_valid_query(request: pytest.FixtureRequest, store_backend: str, engine: QueryEngine, ctx: Any,
                     dataset: D.DataSet, case: C.Case) -> None:
    _run(request, store_backend, engine, ctx, dataset, case)


@pytest.mark.parametrize("case", [_param(c) for c in C.INVALID])
def test_invalid_query(request: pytest.FixtureRequest, store_backend: str, engine: QueryEngine, ctx: Any,
                       dataset: D.DataSet, case: C.Case) -> None:
    _run(request, store_backend, engine, ctx, dataset, case)


@pytest.mark.parametrize("case", [_param(c) for c in C.ROBUSTNESS])
def test_odd_query_never_crashes(request: pytest.FixtureRequest, store_backend: str, engine: QueryEngine, ctx: Any,
                                 dataset: D.DataSet, case: C.Case) -> None:
    _run(request, store_backend, engine, ctx, dataset, case)


def test_the_table_is_big_and_well_formed() -> None:
    ids = [c.id for c in C.ALL]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(C.ALL) >= 150
    assert all(c.valid for c in C.VALID) and not any(c.valid for c in C.INVALID)
    assert all(c.robust for c in C.ROBUSTNESS)
    # A good share of the valid cases check whole records (nested parents, child blocks, aggregates).
    assert sum(1 for c in C.VALID if c.records is not None) >= 40
    # Every natural key named by a key list exists in the data set.
    every_key = {key for keys in D.LIVE.values() for key in keys} | {k for _o, k in D.DELETED + D.DELETED_BY_CASCADE}
    for case in C.VALID:
        for key in case.keys or ():
            assert key in every_key, (case.id, key)


def test_the_data_set_is_as_documented(engine: QueryEngine, ctx: Any, dataset: D.DataSet) -> None:
    for object_name, keys in D.LIVE.items():
        assert engine.execute(f"SELECT COUNT() FROM {object_name}", ctx).total_size == len(keys), object_name
    assert engine.execute("SELECT COUNT() FROM Account", ctx, include_deleted=True).total_size == 20
