"""What a SQL text asks for, decided by parsing it (Trino dialect), never by reading the text.

`analyze(sql, tables, default_catalog, default_schema)` returns one of:
- `Query`: a read-only query (SELECT, WITH ... SELECT, UNION/INTERSECT/EXCEPT), with every table it reads
  resolved to `catalog.schema.table` (CTE names are not tables; sub-queries and joins are) and the same query
  with its tables qualified, which is what runs: the engine reads exactly the tables the policy decided on;
- `Explain`: EXPLAIN [ANALYZE] of such a query;
- `ShowCatalogs`, `ShowSchemas`, `ShowTables`, `Describe` (DESCRIBE t, SHOW COLUMNS FROM t): answered from the
  catalog, through the same gating as the list tools.

Anything else (INSERT, CREATE, SET, CALL, two statements, a table function such as `read_csv(...)` or
`query_table(...)`, a table not in the catalog, a column that does not exist) raises `SqlRejected` with a message
the caller can act on. The engine enforces read-only access as well; this is the first, explainable line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
    "parse_table_name",
]

DIALECT = "trino"
MAX_SQL_LENGTH = 100_000
# catalog -> schema -> table -> column -> type: what sqlglot needs to resolve names and columns.
TableSchemas = Mapping[str, Mapping[str, Mapping[str, Mapping[str, str]]]]
_ALLOWED = "SELECT, WITH, SHOW, DESCRIBE and EXPLAIN"


@dataclass(frozen=True)
class Query:
    """A read-only query. `tables` are `catalog.schema.table`, sorted; `qualified` is the query that runs."""

    tables: tuple[str, ...]
    qualified: exp.Expr

    def sql(self, dialect: str) -> str:
        """The query, tables qualified, in `dialect` (sqlglot's name: "duckdb", "trino")."""
        return self.qualified.sql(dialect=dialect)


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


def analyze(sql: str, tables: TableSchemas, *, default_catalog: str, default_schema: str) -> Statement:
    """Classify and resolve one statement.

    Raises:
        SqlRejected: not exactly one allowed statement, a syntax error, an unknown table or column, a table
            function.
    """
    if len(sql) > MAX_SQL_LENGTH:
        raise SqlRejected(f"the statement is longer than {MAX_SQL_LENGTH} characters")
    tokens = _tokens(sql)
    if not tokens:
        raise SqlRejected("the statement is empty")
    if sum(1 for token in tokens if token.token_type is TokenType.SEMICOLON and token is not tokens[-1]) > 0:
        raise SqlRejected("send one statement at a time")
    first = tokens[0].text.upper()
    if first in ("EXPLAIN", "SHOW", "DESCRIBE", "DESC"):
        # The tokenizer reads these as commands and swallows the rest into one string: tokenize the rest again.
        rest = sql[tokens[0].end + 1 :]
        rest_tokens = _tokens(rest)
        if first == "EXPLAIN":
            return _explain(rest, rest_tokens, tables, default_catalog, default_schema)
        if first == "SHOW":
            return _show(rest_tokens, tables, default_catalog, default_schema)
        return Describe(_table_operand(rest_tokens, tables, default_catalog, default_schema))
    return _query(sql, tables, default_catalog, default_schema)


def parse_table_name(name: str, tables: TableSchemas, *, default_catalog: str, default_schema: str) -> str:
    """`table`, `schema.table` or `catalog.schema.table` resolved to a known `catalog.schema.table`.

    Raises:
        SqlRejected: not a table name, or no such table.
    """
    return _table_operand(_tokens(name), tables, default_catalog, default_schema)


def _tokens(sql: str) -> list[Token]:
    try:
        return list(Tokenizer().tokenize(sql))
    except TokenError as exc:
        raise SqlRejected(f"syntax error: {exc}") from None


def _query(sql: str, tables: TableSchemas, default_catalog: str, default_schema: str) -> Query:
    try:
        statements = [statement for statement in sqlglot.parse(sql, read=DIALECT) if statement is not None]
    except ParseError as exc:
        raise SqlRejected(f"syntax error: {_first_error(exc)}") from None
    if len(statements) != 1:
        raise SqlRejected("send one statement at a time")
    statement = normalize_identifiers(statements[0], dialect=DIALECT)  # unquoted names are case-insensitive
    if not isinstance(statement, exp.Query):
        keyword = statement.key.upper() if not isinstance(statement, exp.Command) else str(statement.this).upper()
        raise SqlRejected(f"only read-only statements are allowed ({_ALLOWED}); this is {keyword}")
    for node in statement.find_all(exp.Lateral, exp.TableFromRows):
        raise SqlRejected(f"table functions are not allowed: {node.sql(DIALECT)}")
    qualified = qualify_tables(statement.copy(), catalog=default_catalog, db=default_schema, dialect=DIALECT)
    ctes = {cte.alias_or_name for cte in qualified.find_all(exp.CTE)}
    referenced: set[str] = set()
    for table in qualified.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise SqlRejected(f"table functions are not allowed: {table.this.sql(DIALECT)}")
        if not table.args.get("db") and table.name in ctes:
            continue
        referenced.add(_known(table.catalog, table.db, table.name, tables))
    _check_columns(statement, tables, default_catalog, default_schema)
    return Query(tables=tuple(sorted(referenced)), qualified=qualified)


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


def _check_columns(statement: exp.Expr, tables: TableSchemas, catalog: str, schema: str) -> None:
    """Resolve every column against the table schemas, for a clear error before anything runs."""
    try:
        qualify(
            statement.copy(),
            schema=_sqlglot_schema(tables),
            catalog=catalog,
            db=schema,
            dialect=DIALECT,
            validate_qualify_columns=True,
            identify=False,
        )
    except OptimizeError as exc:
        raise SqlRejected(str(exc).split(". Line:")[0]) from None


def _explain(sql: str, tokens: list[Token], tables: TableSchemas, catalog: str, schema: str) -> Explain:
    index = 0
    analyze_query = False
    if index < len(tokens) and tokens[index].text.upper() == "ANALYZE":
        analyze_query = True
        index += 1
    if index < len(tokens) and tokens[index].token_type is TokenType.L_PAREN:
        raise SqlRejected("EXPLAIN options are not supported; use EXPLAIN or EXPLAIN ANALYZE")
    if index >= len(tokens):
        raise SqlRejected("EXPLAIN needs a query")
    inner = sql[tokens[index].start :]
    statement = analyze(inner, tables, default_catalog=catalog, default_schema=schema)
    if not isinstance(statement, Query):
        raise SqlRejected("EXPLAIN applies to a query")
    return Explain(statement, analyze_query)


def _show(tokens: list[Token], tables: TableSchemas, catalog: str, schema: str) -> Statement:
    words = [token.text.upper() for token in tokens[:2]]
    rest = tokens[1:]
    if words[:1] == ["CATALOGS"] and all(token.token_type is TokenType.SEMICOLON for token in rest):
        return ShowCatalogs()
    if words[:1] == ["SCHEMAS"]:
        target = _names(rest[1:]) if rest and rest[0].text.upper() in ("FROM", "IN") else []
        if len(target) > 1:
            raise SqlRejected("SHOW SCHEMAS FROM takes a catalog")
        name = target[0] if target else catalog
        if name not in tables:
            raise SqlRejected(f"no catalog {name!r}")
        return ShowSchemas(name)
    if words[:1] == ["TABLES"]:
        target = _names(rest[1:]) if rest and rest[0].text.upper() in ("FROM", "IN") else []
        if len(target) > 2:
            raise SqlRejected("SHOW TABLES FROM takes a schema or catalog.schema")
        parts = [catalog, schema][: 2 - len(target)] + target
        if parts[0] not in tables or parts[1] not in tables[parts[0]]:
            raise SqlRejected(f"no schema {'.'.join(parts)!r}")
        return ShowTables(parts[0], parts[1])
    if words[:1] == ["COLUMNS"] and rest and rest[0].text.upper() in ("FROM", "IN"):
        return Describe(_table_operand(rest[1:], tables, catalog, schema))
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
                raise SqlRejected(f"unexpected {token.text!r} after a name")
        elif token.token_type is TokenType.IDENTIFIER:
            parts.append(token.text)
        elif token.token_type is not TokenType.STRING and token.text.isidentifier():
            parts.append(token.text.lower())
        else:
            raise SqlRejected(f"expected a name, found {token.text!r}")
    if not parts or len(tokens) % 2 == 0:
        raise SqlRejected("expected a name")
    return parts


def _table_operand(tokens: list[Token], tables: TableSchemas, catalog: str, schema: str) -> str:
    parts = _names(tokens)
    if len(parts) > 3:
        raise SqlRejected(f"not a table name: {'.'.join(parts)}")
    full = [catalog, schema][: 3 - len(parts)] + parts
    return _known(full[0], full[1], full[2], tables)


def _known(catalog: str, schema: str, table: str, tables: TableSchemas) -> str:
    name = f"{catalog}.{schema}.{table}"
    if table not in tables.get(catalog, {}).get(schema, {}):
        raise SqlRejected(f"no table {name}")
    return name


def _first_error(exc: ParseError) -> str:
    if exc.errors:
        error = exc.errors[0]
        return f"{error.get('description', 'invalid syntax')} (line {error.get('line')}, column {error.get('col')})"
    return str(exc)
