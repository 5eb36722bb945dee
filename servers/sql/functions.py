"""Which functions a statement may call: an explicit list of Trino function names, checked on the parsed tree.

The engines know many more functions than an analyst needs, and some of them read what the caller must not:
settings (`current_setting`), the catalog of every table (`pg_catalog.*`, `duckdb_*`, `information_schema`),
the server's environment (`getenv`, `version()`), files (`read_*`, `glob`) or another catalog's procedures
(`system.*`). So a function is allowed only when its unqualified name is on `ALLOWED_FUNCTIONS` (aggregate,
scalar and window functions of Trino that compute on the values a query reads); anything else, and any name
qualified by a schema or catalog, is refused before the query runs.

The check walks sqlglot's tree, never the text: spelling (case, quoting, whitespace, comments) does not matter,
and a function hidden in ORDER BY, a lambda, a CTE, a join condition, a window or VALUES is found like any other.
sqlglot turns the functions it knows into typed nodes (`approx_distinct(x)` -> `exp.ApproxDistinct`), and the
rest into `exp.Anonymous` carrying the name: a typed node is allowed when an allowed name parses to its class,
an anonymous one when its name is on the list.
"""

from __future__ import annotations

import functools

import sqlglot
from sqlglot import exp

from servers.sql.errors import SqlRejected

__all__ = ["ALLOWED_FUNCTIONS", "check_functions"]

_DIALECT = "trino"

ALLOWED_FUNCTIONS: frozenset[str] = frozenset(
    # aggregate
    "count count_if sum avg min max min_by max_by arbitrary any_value array_agg bool_and bool_or every "
    "geometric_mean listagg histogram map_agg stddev stddev_pop stddev_samp variance var_pop var_samp corr "
    "covar_pop covar_samp regr_slope regr_intercept kurtosis skewness approx_distinct approx_percentile "
    "approx_most_frequent grouping "
    # window
    "row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value "
    # math
    "abs cbrt ceil ceiling degrees exp floor ln log log2 log10 mod pi pow power radians round sign sqrt truncate "
    "width_bucket greatest least is_nan is_finite is_infinite sin cos tan asin acos atan atan2 rand random "
    "bitwise_and bitwise_or bitwise_xor bitwise_not bit_count to_base from_base "
    # string
    "concat concat_ws length lower upper lpad rpad ltrim rtrim trim replace reverse split split_part strpos "
    "position substr substring starts_with chr codepoint levenshtein_distance hamming_distance translate format "
    "to_hex from_hex md5 sha1 sha256 to_utf8 from_utf8 url_extract_host url_extract_path url_extract_parameter "
    "url_extract_query url_extract_protocol url_extract_port url_extract_fragment url_encode url_decode "
    # regular expressions
    "regexp_like regexp_extract regexp_extract_all regexp_replace regexp_split regexp_count regexp_position "
    # date and time
    "current_date current_time current_timestamp localtime localtimestamp now date date_add date_diff date_trunc "
    "date_format date_parse format_datetime parse_datetime from_unixtime to_unixtime from_iso8601_date "
    "from_iso8601_timestamp to_iso8601 year quarter month week week_of_year day day_of_month day_of_week dow "
    "day_of_year doy hour minute second millisecond year_of_week yow last_day_of_month with_timezone at_timezone "
    "timezone_hour timezone_minute to_milliseconds parse_duration human_readable_seconds "
    # conditional and conversion
    "coalesce nullif if try typeof "
    # array, map, JSON
    "array_distinct array_except array_intersect array_union array_join array_max array_min array_position "
    "array_remove array_sort arrays_overlap cardinality contains element_at filter flatten reduce sequence slice "
    "transform zip zip_with any_match all_match none_match map map_keys map_values map_entries map_from_entries "
    "map_filter map_concat transform_keys transform_values json_extract json_extract_scalar json_format "
    "json_parse json_size json_array_length json_array_contains json_array_get is_json_scalar".split()
)

# Function-like syntax rather than a name: CAST(x AS t), CASE, EXTRACT(f FROM x), ARRAY[...], ROW(...), EXISTS,
# UNNEST(...), DATE 'literal' (a cast), and the niladic date/time keywords.
_SYNTAX: tuple[type[exp.Func], ...] = (
    exp.Cast,
    exp.TryCast,
    exp.Case,
    exp.If,
    exp.Extract,
    exp.Array,
    exp.Struct,
    exp.Exists,
    exp.Unnest,
    exp.CurrentDate,
    exp.CurrentTime,
    exp.CurrentTimestamp,
)
_SAMPLE_ARGUMENTS = ("", "1", "1, 2", "1, 2, 3", "'a'", "'a', 'b'", "'a', 'b', 'c'", "x", "x, y", "x, y, z")
# Nodes that carry the name they were called by (sqlglot did not recognise the function).
_NAMED = (exp.Anonymous, exp.AnonymousAggFunc)


def check_functions(tree: exp.Expr) -> None:
    """Refuse any function call in `tree` not on the allow-list, and any schema- or catalog-qualified one.

    Raises:
        SqlRejected: naming the first function refused.
    """
    allowed = _allowed_classes()
    for node in tree.walk():
        if not isinstance(node, exp.Func):
            continue
        parent = node.parent
        if isinstance(parent, exp.Dot) and parent.expression is node:
            raise SqlRejected(
                f"qualified function names are not allowed: {parent.sql(_DIALECT)[:80]} (call functions by name)"
            )
        if isinstance(node, _NAMED):
            if node.name.lower() in ALLOWED_FUNCTIONS:
                continue
            raise SqlRejected(f"function {node.name[:80]} is not allowed (not on the SQL server's function list)")
        if type(node) not in allowed:
            raise SqlRejected(
                f"function {node.sql_name().lower()} is not allowed (not on the SQL server's function list)"
            )


@functools.cache
def _allowed_classes() -> frozenset[type[exp.Func]]:
    """The node classes the allowed names parse to (found once, by parsing a call of each name)."""
    classes: set[type[exp.Func]] = set(_SYNTAX)
    for name in ALLOWED_FUNCTIONS:
        for arguments in _SAMPLE_ARGUMENTS:
            try:
                tree = sqlglot.parse_one(f"SELECT {name}({arguments})", read=_DIALECT)
            except sqlglot.errors.SqlglotError:
                continue
            classes.update(type(node) for node in tree.find_all(exp.Func) if not isinstance(node, _NAMED))
            break
    return frozenset(classes)
