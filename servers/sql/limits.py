"""What one statement may cost to analyse: caps checked cheaply before the expensive steps, each named when it refuses.

sqlglot's analysis (scopes, star expansion, column qualification) costs far more than the text suggests: 200 `*`
over 50 tables (1.4 KB) took seconds, each column's resolution walks up its ancestors (quadratic in the depth of
long OR chains), and deep nesting ends in a RecursionError. The analysis runs on a worker thread, which cannot be
cancelled, so these caps are what keeps it short (`bench/sql_bench.py --worst` measures the worst statement they
let through). In the order they are checked:

1. on the text: its length;
2. on the tokens (sqlglot's tokenizer, linear): how many, how deeply `(`, `[` and CASE nest, how many `*` and
   JOINs;
3. on the parsed tree, before resolution: how deep it is, how many tables it names;
4. after the caller may read every table, before columns are resolved: how many columns its `*`s expand to,
   counted through every CTE and sub-query (`SELECT *, * FROM previous` doubles at each level).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope
from sqlglot.tokenizer_core import Token, TokenType

from servers.sql.errors import SqlRejected

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPANDED_COLUMNS",
    "MAX_JOINS",
    "MAX_NESTING",
    "MAX_SQL_LENGTH",
    "MAX_STARS",
    "MAX_TABLE_REFERENCES",
    "MAX_TOKENS",
    "check_expansion",
    "check_tokens",
    "check_tree",
]

MAX_SQL_LENGTH = 20_000  # characters
MAX_TOKENS = 4_000
MAX_NESTING = 32  # ( [ { and CASE, nested
MAX_STARS = 64  # `*` tokens: SELECT *, t.*, COUNT(*) and multiplication alike
MAX_JOINS = 64
MAX_DEPTH = 256  # of the parsed tree
MAX_TABLE_REFERENCES = 64  # tables, CTE references and UNNESTs named in the statement
MAX_EXPANDED_COLUMNS = 2_000  # columns all `*` expand to, over every scope

_OPEN = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE, TokenType.CASE}
_CLOSE = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE, TokenType.END}
# catalog -> schema -> table -> column -> type
TableSchemas = Mapping[str, Mapping[str, Mapping[str, Mapping[str, str]]]]


def check_tokens(tokens: Sequence[Token]) -> None:
    """Caps on the token stream.

    Raises:
        SqlRejected: naming the cap exceeded.
    """
    if len(tokens) > MAX_TOKENS:
        raise SqlRejected(f"the statement has more than {MAX_TOKENS} tokens; split it into smaller queries")
    depth = stars = joins = 0
    for token in tokens:
        kind = token.token_type
        if kind in _OPEN:
            depth += 1
            if depth > MAX_NESTING:
                raise SqlRejected(f"the statement nests parentheses, brackets or CASE deeper than {MAX_NESTING}")
        elif kind in _CLOSE:
            depth = max(0, depth - 1)
        elif kind is TokenType.STAR:
            stars += 1
        elif kind is TokenType.JOIN:
            joins += 1
    if stars > MAX_STARS:
        raise SqlRejected(f"the statement has more than {MAX_STARS} `*`; name the columns you need")
    if joins > MAX_JOINS:
        raise SqlRejected(f"the statement has more than {MAX_JOINS} joins")


def check_tree(tree: exp.Expr) -> None:
    """Caps on the parsed statement, before any name is resolved (iterative: no recursion on a deep tree).

    Raises:
        SqlRejected: naming the cap exceeded.
    """
    references = 0
    stack: list[tuple[exp.Expr, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SqlRejected(f"the statement is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, exp.Table | exp.Unnest):
            references += 1
            if references > MAX_TABLE_REFERENCES:
                raise SqlRejected(f"the statement reads more than {MAX_TABLE_REFERENCES} tables")
        stack.extend((child, depth + 1) for child in node.iter_expressions())


def check_expansion(tree: exp.Expr, tables: TableSchemas) -> None:
    """Cap on the columns every `*` of `tree` (tables already qualified) expands to, through CTEs and sub-queries.

    Raises:
        SqlRejected: more than MAX_EXPANDED_COLUMNS.
    """
    widths: dict[int, int] = {}
    expanded = 0
    for scope in traverse_scope(tree):  # children before parents
        width, stars = _width(scope, tables, widths)
        widths[id(scope.expression)] = width
        expanded += stars
        if expanded > MAX_EXPANDED_COLUMNS:
            raise SqlRejected(
                f"the statement's `*` expand to more than {MAX_EXPANDED_COLUMNS} columns; name the columns you need"
            )


def _width(scope: Scope, tables: TableSchemas, widths: dict[int, int]) -> tuple[int, int]:
    """(columns the scope outputs, columns its stars expand to)."""
    expression = scope.expression
    if isinstance(expression, exp.SetOperation):
        return widths.get(id(expression.left), 1), 0
    if not isinstance(expression, exp.Select):
        return 1, 0
    source_widths = {name: _source_width(source, tables, widths) for name, source in scope.sources.items()}
    width = stars = 0
    for projection in expression.selects:
        star = projection if isinstance(projection, exp.Star) else None
        if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
            columns = source_widths.get(projection.table, sum(source_widths.values()))
        elif star is not None:
            columns = sum(source_widths.values())
        else:
            width += 1
            continue
        width += columns
        stars += columns
    return width, stars


def _source_width(source: object, tables: TableSchemas, widths: dict[int, int]) -> int:
    if isinstance(source, Scope):
        return widths.get(id(source.expression), 1)
    if isinstance(source, exp.Table):
        return len(tables.get(source.catalog, {}).get(source.db, {}).get(source.name, {})) or 1
    return 1
