"""What a SQL text asks for, decided by parsing it (Trino dialect), never by reading the text.

Two steps, so that nothing about a table the caller may not read is revealed:

1. `analyze(sql, default_catalog, default_schema)` needs no knowledge of what exists. It returns one of:
   - `Query`: a read-only query (SELECT, WITH ... SELECT, UNION/INTERSECT/EXCEPT), with every table it reads named
     `catalog.schema.table` (CTE names are not tables; sub-queries and joins are) and the same query with its
     tables qualified, which is what runs: the engine reads exactly the tables the policy decided on;
   - `Explain`: EXPLAIN [ANALYZE] of such a query;
   - `ShowCatalogs`, `ShowSchemas`, `ShowTables`, `Describe` (DESCRIBE t, SHOW COLUMNS FROM t): answered from the
     catalog, through the same gating as the list tools.
   Anything else (INSERT, CREATE, SET, CALL, two statements, a table function such as `read_csv(...)`, a function
   not on the allow-list (`functions.py`), a statement over the caps (`limits.py`), a syntax error) raises
   `SqlRejected` with a message the caller can act on.
2. Only once the caller may read every table, `prepare(query, tables, dialect)` checks the tables exist, resolves
   every column and returns the text the engine runs. A forbidden table is refused before its columns are ever
   looked at, so "no such column" cannot tell a forbidden table's columns apart.

Every failure of sqlglot (parse and token errors, RecursionError, OptimizeError, anything) is a `SqlRejected`,
never a traceback. The engine enforces read-only access as well; this is the first, explainable line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError, TokenError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.qualify_tables import qualify_tables
from sqlglot.schema import MappingSchema
from sqlglot.tokenizer_core import Token, TokenType
from sqlglot.tokens import Tokenizer

from servers.sql.errors import SqlRejected
from servers.sql.functions import check_functions
from servers.sql.limits import MAX_SQL_LENGTH, check_expansion, check_tokens, check_tree

__all__ = [
    "Describe",
    "Explain",
    "Query",
    "ShowCatalogs",
    "ShowSchemas",
    "ShowTables",
    "Statement",
    "TableSchemas",
    "analyze",
    "exists",
    "not_readable",
    "parse_table_name",
    "prepare",
]

DIALECT = "trino"
# catalog -> schema -> table -> column -> type: what sqlglot needs to resolve names and columns.
TableSchemas = Mapping[str, Mapping[str, Mapping[str, Mapping[str, str]]]]
_ALLOWED = "SELECT, WITH, SHOW, DESCRIBE and EXPLAIN"
_T = TypeVar("_T")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Query:
    """A read-only query. `tables` are `catalog.schema.table`, sorted; `qualified` is the query that runs."""

    tables: tuple[str, ...]
    qualified: exp.Expr


@dataclass(frozen=True)
class Explain:
    query: Query
    analyze: bool


@dataclass(frozen=True)
class ShowCatalogs:
    pass


@dataclass(frozen=True)
class ShowSchemas:
    catalog: str


@dataclass(frozen=True)
class ShowTables:
    catalog: str
    schema: str


@dataclass(frozen=True)
class Describe:
    table: str


Statement = Query | Explain | ShowCatalogs | ShowSchemas | ShowTables | Describe


def not_readable(table: str) -> str:
    """The one answer for a table that does not exist and for one the caller may not read: never tell them apart."""
    return f"table {table} does not exist or you may not read it"


def analyze(sql: str, *, default_catalog: str, default_schema: str) -> Statement:
    """Classify one statement and name the tables it reads (without looking at which tables exist).

    Raises:
        SqlRejected: not exactly one allowed statement, a syntax error, a table function, a function not on the
            allow-list, a statement over a cap.
    """
    return _guarded(lambda: _analyze(sql, default_catalog, default_schema))


def prepare(query: Query, tables: TableSchemas, *, dialect: str) -> str:
    """The query as the engine runs it, in `dialect` (sqlglot's name: "duckdb", "trino"), once its tables are
    decided: every table must exist and every column resolve.

    Raises:
        SqlRejected: a table that does not exist (answered like a forbidden one), a column that does not resolve,
            a `*` expanding past the cap.
    """
    return _guarded(lambda: _prepare(query, tables, dialect))


def parse_table_name(name: str, *, default_catalog: str, default_schema: str) -> str:
    """`table`, `schema.table` or `catalog.schema.table` as `catalog.schema.table` (whether it exists or not).

    Raises:
        SqlRejected: not a table name.
    """
    return _guarded(lambda: _table_operand(_tokens(name), default_catalog, default_schema))


def exists(table: str, tables: TableSchemas) -> bool:
    """Whether `catalog.schema.table` (as `analyze` names it: no part holds a dot) is one of `tables`."""
    catalog, schema, name = table.split(".", 2)
    return name in tables.get(catalog, {}).get(schema, {})


def _guarded(step: Callable[[], _T]) -> _T:
    """Run one analysis step; whatever sqlglot raises becomes a refusal, never a traceback."""
    try:
        return step()
    except SqlRejected:
        raise
    except RecursionError:
        raise SqlRejected("the statement is nested too deeply to analyse") from None
    except Exception as exc:  # noqa: BLE001 - fail closed: an analysis that breaks refuses the statement
        _log.info("sql analysis refused a statement: %s", type(exc).__name__)
        raise SqlRejected(f"the statement could not be analysed ({type(exc).__name__})") from None


def _analyze(sql: str, default_catalog: str, default_schema: str) -> Statement:
    if len(sql) > MAX_SQL_LENGTH:
        raise SqlRejected(f"the statement is longer than {MAX_SQL_LENGTH} characters")
    tokens = _tokens(sql)
    if not tokens:
        raise SqlRejected("the statement is empty")
    check_tokens(tokens)
    if sum(1 for token in tokens if token.token_type is TokenType.SEMICOLON and token is not tokens[-1]) > 0:
        raise SqlRejected("send one statement at a time")
    first = tokens[0].text.upper()
    if first in ("EXPLAIN", "SHOW", "DESCRIBE", "DESC"):
        # The tokenizer reads these as commands and swallows the rest into one string: tokenize the rest again.
        rest = sql[tokens[0].end + 1 :]
        rest_tokens = _tokens(rest)
        check_tokens(rest_tokens)  # the caps apply to what the command swallowed
        if first == "EXPLAIN":
            return _explain(rest, rest_tokens, default_catalog, default_schema)
        if first == "SHOW":
            return _show(rest_tokens, default_catalog, default_schema)
        return Describe(_table_operand(rest_tokens, default_catalog, default_schema))
    return _query(sql, default_catalog, default_schema)


def _tokens(sql: str) -> list[Token]:
    try:
        return list(Tokenizer().tokenize(sql))
    except TokenError as exc:
        raise SqlRejected(f"syntax error: {exc}") from None


def _query(sql: str, default_catalog: str, default_schema: str) -> Query:
    try:
        statements = [statement for statement in sqlglot.parse(sql, read=DIALECT) if statement is not None]
    except ParseError as exc:
        raise SqlRejected(f"syntax error: {_first_error(exc)}") from None
    if len(statements) != 1:
        raise SqlRejected("send one statement at a time")
    check_tree(statements[0])
    statement = normalize_identifiers(statements[0], dialect=DIALECT)  # unquoted names are case-insensitive
    if not isinstance(statement, exp.Query):
        keyword = statement.key.upper() if not isinstance(statement, exp.Command) else str(statement.this).upper()
        raise SqlRejected(f"only read-only statements are allowed ({_ALLOWED}); this is {keyword}")
    for node in statement.find_all(exp.Lateral, exp.TableFromRows):
        raise SqlRejected(f"table functions are not allowed: {node.sql(DIALECT)[:80]}")
    for table in statement.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise SqlRejected(f"table functions are not allowed: {table.this.sql(DIALECT)[:80]}")
    check_functions(statement)
    qualified = qualify_tables(statement.copy(), catalog=default_catalog, db=default_schema, dialect=DIALECT)
    ctes = {cte.alias_or_name for cte in qualified.find_all(exp.CTE)}
    referenced: set[str] = set()
    for table in qualified.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise SqlRejected(f"table functions are not allowed: {table.this.sql(DIALECT)[:80]}")
        if not table.args.get("db") and table.name in ctes:
            continue
        referenced.add(_full_name([table.catalog, table.db, table.name]))
    return Query(tables=tuple(sorted(referenced)), qualified=qualified)


def _prepare(query: Query, tables: TableSchemas, dialect: str) -> str:
    for table in query.tables:
        if not exists(table, tables):
            raise SqlRejected(not_readable(table))
    check_expansion(query.qualified, tables)
    try:
        qualify(
            query.qualified.copy(),
            schema=_sqlglot_schema(tables),
            dialect=DIALECT,
            validate_qualify_columns=True,
            identify=False,
        )
    except OptimizeError as exc:
        raise SqlRejected(str(exc).split(". Line:")[0]) from None
    return query.qualified.sql(dialect=dialect)


_mapping_schema: tuple[TableSchemas, MappingSchema] | None = None


def _sqlglot_schema(tables: TableSchemas) -> MappingSchema:
    """sqlglot's schema object for `tables`, built once per metadata object (engines re-read it rarely)."""
    global _mapping_schema
    cached = _mapping_schema
    if cached is not None and cached[0] is tables:
        return cached[1]
    built = MappingSchema({c: {s: dict(t) for s, t in ss.items()} for c, ss in tables.items()}, dialect=DIALECT)
    _mapping_schema = (tables, built)
    return built


def _explain(sql: str, tokens: list[Token], catalog: str, schema: str) -> Explain:
    index = 0
    analyze_query = False
    if index < len(tokens) and tokens[index].text.upper() == "ANALYZE":
        analyze_query = True
        index += 1
    if index < len(tokens) and tokens[index].token_type is TokenType.L_PAREN:
        raise SqlRejected("EXPLAIN options are not supported; use EXPLAIN or EXPLAIN ANALYZE")
    if index >= len(tokens):
        raise SqlRejected("EXPLAIN needs a query")
    if tokens[index].text.upper() in ("EXPLAIN", "SHOW", "DESCRIBE", "DESC"):
        # Refused before analysing: each nested EXPLAIN would analyse the rest again (quadratic in the length).
        raise SqlRejected("EXPLAIN applies to a query")
    inner = sql[tokens[index].start :]
    statement = _analyze(inner, catalog, schema)
    if not isinstance(statement, Query):
        raise SqlRejected("EXPLAIN applies to a query")
    return Explain(statement, analyze_query)


def _show(tokens: list[Token], catalog: str, schema: str) -> Statement:
    # What exists is never checked here: SHOW of an unknown catalog or schema lists nothing, like a forbidden one.
    words = [token.text.upper() for token in tokens[:2]]
    rest = tokens[1:]
    if words[:1] == ["CATALOGS"] and all(token.token_type is TokenType.SEMICOLON for token in rest):
        return ShowCatalogs()
    if words[:1] == ["SCHEMAS"]:
        target = _names(rest[1:]) if rest and rest[0].text.upper() in ("FROM", "IN") else []
        if len(target) > 1:
            raise SqlRejected("SHOW SCHEMAS FROM takes a catalog")
        return ShowSchemas(target[0] if target else catalog)
    if words[:1] == ["TABLES"]:
        target = _names(rest[1:]) if rest and rest[0].text.upper() in ("FROM", "IN") else []
        if len(target) > 2:
            raise SqlRejected("SHOW TABLES FROM takes a schema or catalog.schema")
        parts = [catalog, schema][: 2 - len(target)] + target
        return ShowTables(parts[0], parts[1])
    if words[:1] == ["COLUMNS"] and rest and rest[0].text.upper() in ("FROM", "IN"):
        return Describe(_table_operand(rest[1:], catalog, schema))
    raise SqlRejected("supported SHOW statements: SHOW CATALOGS, SHOW SCHEMAS, SHOW TABLES, SHOW COLUMNS FROM t")


def _names(tokens: list[Token]) -> list[str]:
    """A dotted name (`a`, `a.b`, `a.b.c`; quoted parts keep their case) and nothing after it but a semicolon.

    Raises:
        SqlRejected: anything else.
    """
    while tokens and tokens[-1].token_type is TokenType.SEMICOLON:
        tokens = tokens[:-1]
    parts: list[str] = []
    for position, token in enumerate(tokens):
        if position % 2 == 1:
            if token.token_type is not TokenType.DOT:
                raise SqlRejected(f"unexpected {token.text[:80]!r} after a name")
        elif token.token_type is TokenType.IDENTIFIER:
            parts.append(token.text)
        elif token.token_type is not TokenType.STRING and token.text.isidentifier():
            parts.append(token.text.lower())
        else:
            raise SqlRejected(f"expected a name, found {token.text[:80]!r}")
    if not parts or len(tokens) % 2 == 0:
        raise SqlRejected("expected a name")
    return [_part(part) for part in parts]


def _table_operand(tokens: list[Token], catalog: str, schema: str) -> str:
    parts = _names(tokens)
    if len(parts) > 3:
        raise SqlRejected(f"not a table name: {'.'.join(parts)[:200]}")
    return _full_name([catalog, schema][: 3 - len(parts)] + parts)


def _full_name(parts: list[str]) -> str:
    return ".".join(_part(part) for part in parts)


def _part(part: str) -> str:
    # A dot inside a quoted name would make `catalog.schema.table` ambiguous: the policy would decide one name
    # and the engine read another. Nothing is named like that; refuse rather than guess.
    if not part or "." in part:
        raise SqlRejected(f"not a table name part: {part[:80]!r}")
    return part


def _first_error(exc: ParseError) -> str:
    if exc.errors:
        error = exc.errors[0]
        return f"{error.get('description', 'invalid syntax')} (line {error.get('line')}, column {error.get('col')})"
    return str(exc)[:200]
