"""Usage grouped and filtered by tenant, project, key, day, model, front end, tag and end user.

Served from the rollups whenever possible: usage_daily (day x tenant x project x key x model x
front end) answers everything but tags and end users, usage_daily_tags answers tags. End users
are not rolled up (their number is unbounded), so a per-user view reads the ledger -- always for
one tenant and a range of days, through ix_usage_events_tenant_user_started when it names the
user, and at most `limit` groups at a time, the biggest spenders first.

Grouped by tag, a row carrying several tags counts under each of them (and untagged rows under
`tag: null`), so the groups may add up to more than the total; the total always counts each
ledger row once. A tag filter selects the rows carrying that tag; grouped by tag as well, they
count under that tag only. Every query built here binds the tenant it is given; the SQL never takes a
tenant from anywhere else.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from service.auth import key_lifecycle, projects, tenants
from service.catalog.model import FRONT_ENDS
from service.db.pool import Db, Row
from service.errors import invalid

GROUP_KEYS = ("tenant", "project", "key", "day", "model", "front_end", "tag", "user")
FILTER_KEYS = ("tenant", "project", "key", "model", "front_end", "tag", "user")
COUNT_FIELDS = ("requests", "attempts", "prompt_tokens", "cached_tokens", "completion_tokens", "reasoning_tokens")
# direct_billed_usd: what always-Baseten-direct would have billed for the same requests (a row
# without a direct price counts at what it was billed), so savings = direct_billed_usd - billed_usd.
MONEY_FIELDS = ("provider_cost_usd", "billed_usd", "direct_billed_usd")
MAX_LIMIT = 10_000
DEFAULT_USER_LIMIT = 1_000
MAX_FILTER_CHARS = 256
NIL = "'00000000-0000-0000-0000-000000000000'::uuid"

# What each group key selects (and is named in the result), per source; and its sort order.
_ALIAS = {"tenant": "tenant_id", "project": "project_id", "key": "key_id", "day": "day", "model": "model",
          "front_end": "front_end", "tag": "tag", "user": "end_user"}
_ORDER = {
    "tenant": 't.name COLLATE "C" NULLS LAST, q.tenant_id',
    "project": 'p.name COLLATE "C" NULLS FIRST, q.project_id NULLS FIRST',
    "key": 'k.prefix COLLATE "C" NULLS FIRST, q.key_id NULLS FIRST',
    "day": "q.day",
    "model": 'q.model COLLATE "C"',
    "front_end": 'q.front_end COLLATE "C"',
    "tag": 'q.tag COLLATE "C" NULLS FIRST',
    "user": 'q.end_user COLLATE "C" NULLS FIRST',
}


@dataclass(frozen=True, slots=True)
class Filters:
    tenant_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    key_id: uuid.UUID | None = None
    model: str | None = None
    front_end: str | None = None
    tag: str | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True)
class UsageQuery:
    first: date  # inclusive UTC days
    last: date
    group_by: tuple[str, ...]
    filters: Filters = field(default_factory=Filters)
    limit: int | None = None  # at most this many groups (None: all)

    @property
    def keys(self) -> list[str]:
        """The group keys in their order of precedence, whatever order they were asked in."""
        return [k for k in GROUP_KEYS if k in self.group_by]


@dataclass(frozen=True, slots=True)
class _Source:
    table: str
    columns: Mapping[str, str]
    filters: Mapping[str, str]  # filter -> condition, `{}` standing for its parameter
    measures: str
    ledger: bool


def _rollup(table: str, *, tags: bool) -> _Source:
    columns = {"tenant": "d.tenant_id", "project": f"NULLIF(d.project_id, {NIL})",
               "key": f"NULLIF(d.key_id, {NIL})", "day": "d.day", "model": "d.served_model",
               "front_end": "d.front_end"}
    filters = {"tenant": "d.tenant_id = {}", "project": "d.project_id = {}", "key": "d.key_id = {}",
               "model": "d.served_model = {}", "front_end": "d.front_end = {}"}
    if tags:
        columns["tag"] = "NULLIF(d.tag, '')"
        filters["tag"] = "d.tag = {}"
    measures = ", ".join([*(f"sum(d.{f})::bigint AS {f}" for f in COUNT_FIELDS),
                          *(f"sum(d.{f}) AS {f}" for f in MONEY_FIELDS)])
    return _Source(table, columns, filters, measures, ledger=False)


_DAILY = _rollup("usage_daily d", tags=False)
_TAGS = _rollup("usage_daily_tags d", tags=True)
_LEDGER = _Source(
    "usage_events e",
    {"tenant": "e.tenant_id", "project": "e.project_id", "key": "e.key_id",
     "day": "(e.started_at AT TIME ZONE 'UTC')::date", "model": "e.served_model", "front_end": "e.front_end",
     "tag": "NULLIF(tg.tag, '')", "user": "e.end_user"},
    {"tenant": "e.tenant_id = {}", "project": "e.project_id = {}", "key": "e.key_id = {}",
     "model": "e.served_model = {}", "front_end": "e.front_end = {}", "tag": "{} = ANY(e.tags)",
     "user": "e.end_user = {}"},
    ", ".join(["count(*) FILTER (WHERE e.status = 'ok') AS requests", "count(*) AS attempts",
               *(f"sum(e.{f})::bigint AS {f}" for f in COUNT_FIELDS[2:]),
               "sum(e.provider_cost_usd) AS provider_cost_usd", "sum(e.billed_usd) AS billed_usd",
               # The rollups' baseline, as the ledger writer builds it (service.metering.ledger).
               "sum(COALESCE(e.direct_billed_usd, e.billed_usd)) AS direct_billed_usd"]),
    ledger=True,
)
# Each of a ledger row's tags once, or one empty tag for an untagged row: what usage_daily_tags holds.
_EACH_TAG = (" CROSS JOIN LATERAL (SELECT DISTINCT t FROM unnest(CASE WHEN cardinality(e.tags) = 0"
             " THEN ARRAY[''] ELSE e.tags END) AS t) AS tg(tag)")


def _filter_values(f: Filters) -> dict[str, Any]:
    values = {"tenant": f.tenant_id, "project": f.project_id, "key": f.key_id, "model": f.model,
              "front_end": f.front_end, "tag": f.tag, "user": f.user}
    return {k: v for k, v in values.items() if v is not None}


_USERS = _Source(
    "usage_daily_users d",
    {"tenant": "d.tenant_id", "day": "d.day", "user": "NULLIF(d.end_user, '')"},
    {"tenant": "d.tenant_id = {}", "user": "d.end_user = {}"},
    ", ".join([*(f"sum(d.{f})::bigint AS {f}" for f in COUNT_FIELDS), *(f"sum(d.{f}) AS {f}" for f in MONEY_FIELDS)]),
    ledger=False,
)
_USER_ROLLUP_KEYS = frozenset({"user", "tenant", "day"})


def _source(needs: set[str]) -> _Source:
    if "user" in needs:
        # Per user by tenant and day: the users rollup; by anything more, the ledger's index.
        return _USERS if needs <= _USER_ROLLUP_KEYS else _LEDGER
    return _TAGS if "tag" in needs else _DAILY


def _where(source: _Source, query: UsageQuery, *, each_tag: bool = False) -> tuple[str, list[Any]]:
    """The range and filters; `each_tag` when the ledger is joined with each of its rows' tags."""
    args: list[Any]
    if source.ledger:
        start = datetime.combine(query.first, time(), tzinfo=UTC)
        end = datetime.combine(query.last + timedelta(days=1), time(), tzinfo=UTC)
        conditions, args = ["e.started_at >= $1", "e.started_at < $2"], [start, end]
    else:
        conditions, args = ["d.day >= $1", "d.day <= $2"], [query.first, query.last]
    for name, value in _filter_values(query.filters).items():
        args.append(value)
        condition = source.filters[name]
        if name == "tag" and each_tag:
            condition = "tg.tag = {}"  # as the tag rollup reads it: that tag's group only
        conditions.append(condition.format(f"${len(args)}"))
    return " WHERE " + " AND ".join(conditions), args


def grouped_sql(query: UsageQuery) -> tuple[str, list[Any]]:
    """The groups, named and in order (the biggest spenders first when grouped by user)."""
    keys = query.keys
    source = _source({*keys, *_filter_values(query.filters)})
    each_tag = source.ledger and "tag" in keys
    table = source.table + (_EACH_TAG if each_tag else "")
    where, args = _where(source, query, each_tag=each_tag)
    select = ", ".join(f"{source.columns[k]} AS {_ALIAS[k]}" for k in keys)
    positions = ", ".join(str(i + 1) for i in range(len(keys)))
    inner = f"SELECT {select}, {source.measures} FROM {table}{where} GROUP BY {positions}"
    names, joins = [], []
    if "tenant" in keys:
        names.append("t.name AS tenant_name")
        joins.append("LEFT JOIN tenants t ON t.id = q.tenant_id")
    if "project" in keys:
        names.append("p.name AS project_name")
        joins.append("LEFT JOIN projects p ON p.id = q.project_id")
    if "key" in keys:
        names += ["k.prefix AS key_prefix", "k.name AS key_name"]
        joins.append("LEFT JOIN api_keys k ON k.id = q.key_id")
    order = ", ".join(_ORDER[k] for k in keys)
    if "user" in keys:
        order = "q.billed_usd DESC, " + order
    sql = (f"SELECT q.*{''.join(', ' + n for n in names)} FROM ({inner}) q {' '.join(joins)} ORDER BY {order}")
    if query.limit is not None:
        sql += f" LIMIT {query.limit + 1}"  # one more tells whether there is more
    return sql, args


def total_sql(query: UsageQuery) -> tuple[str, list[Any]]:
    """The sums over everything the filters select, each ledger row counted once."""
    source = _source(set(_filter_values(query.filters)))
    where, args = _where(source, query)
    return f"SELECT {source.measures} FROM {source.table}{where}", args


def group_fields(row: Row, keys: list[str]) -> dict[str, Any]:
    """A result row's group values, as the API and the exports name them."""
    out: dict[str, Any] = {}
    for key in keys:
        if key == "tenant":
            out["tenant_id"], out["tenant_name"] = str(row["tenant_id"]), row["tenant_name"]
        elif key == "project":
            out["project_id"] = _id(row["project_id"])
            out["project_name"] = row["project_name"]
        elif key == "key":
            out["key_id"], out["key_prefix"], out["key_name"] = _id(row["key_id"]), row["key_prefix"], row["key_name"]
        elif key == "day":
            out["day"] = row["day"].isoformat()
        elif key == "user":
            out["user"] = row["end_user"]
        else:
            out[key] = row[key]
    return out


def group_columns(keys: list[str]) -> tuple[str, ...]:
    names = {"tenant": ("tenant_id", "tenant_name"), "project": ("project_id", "project_name"),
             "key": ("key_id", "key_prefix", "key_name")}
    return tuple(c for k in keys for c in names.get(k, (k,)))


def _id(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


# ---- parameters ----------------------------------------------------------------------------------

def parse_group_by(value: str | None, *, allowed: tuple[str, ...] = GROUP_KEYS,
                   default: tuple[str, ...] = ("tenant",)) -> tuple[str, ...]:
    if value is None:
        return default
    keys: list[str] = []
    for part in value.split(","):
        key = part.strip()
        if key not in allowed:
            raise invalid(f"`group_by` takes a comma-separated subset of {', '.join(allowed)};"
                          f" got {key!r}.", "group_by")
        if key not in keys:
            keys.append(key)
    return tuple(keys)


def parse_limit(value: str | None, group_by: tuple[str, ...]) -> int | None:
    if value is None:
        return DEFAULT_USER_LIMIT if "user" in group_by else None
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid(f"`limit` must be a whole number from 1 to {MAX_LIMIT}, got {value!r}.", "limit")
    return limit


def filter_refs(params: Mapping[str, str | None], allowed: tuple[str, ...] = FILTER_KEYS) -> dict[str, str]:
    """The filters a request names (query parameters, CLI options), checked for shape only."""
    refs: dict[str, str] = {}
    for name in allowed:
        value = params.get(name)
        if value is None:
            continue
        if not value or len(value) > MAX_FILTER_CHARS:
            raise invalid(f"`{name}` must be 1 to {MAX_FILTER_CHARS} characters.", name)
        refs[name] = value
    if "front_end" in refs and refs["front_end"] not in FRONT_ENDS:
        raise invalid(f"`front_end` must be one of {', '.join(FRONT_ENDS)}.", "front_end")
    return refs


async def resolve_filters(conn: Db, refs: Mapping[str, str], *, tenant_id: uuid.UUID | None) -> Filters:
    """Names to ids, always within `tenant_id` when one is given (a tenant's own views); a filter
    that names nothing known is a 400 naming it, not an empty answer."""
    if "tenant" in refs:
        tenant = await tenants.get_tenant(conn, refs["tenant"])
        if tenant is None or (tenant_id is not None and tenant.id != tenant_id):
            raise invalid(f"No tenant {refs['tenant']!r}.", "tenant", code="tenant_not_found")
        tenant_id = tenant.id
    project_id = key_id = None
    if "project" in refs:
        project = await projects.find_project(conn, refs["project"], tenant_id)
        if project is None:
            hint = "" if tenant_id is not None else " (a project's name needs a `tenant`; or give its id)"
            raise invalid(f"No project {refs['project']!r}{hint}.", "project", code="project_not_found")
        project_id = project.id
    if "key" in refs:
        key = await key_lifecycle.find_key(conn, refs["key"], tenant_id)
        if key is None:
            raise invalid(f"No key {refs['key']!r} (give its id or prefix).", "key", code="key_not_found")
        key_id = key.id
    return Filters(tenant_id=tenant_id, project_id=project_id, key_id=key_id, model=refs.get("model"),
                   front_end=refs.get("front_end"), tag=refs.get("tag"), user=refs.get("user"))


def check_user_scope(query: UsageQuery) -> None:
    """End users are named per tenant and read from the ledger: one tenant at a time."""
    if ("user" in query.group_by or query.filters.user is not None) and query.filters.tenant_id is None:
        raise invalid("Usage by end user is read one tenant at a time: add `tenant`.", "tenant")
