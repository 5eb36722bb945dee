"""Business-group gating of data: which tables, partitions or rows a caller may read, decided by the policy.

A tool that serves data labelled by business group describes each piece as a `Dataset` and lets the policy
decide (`action: read`, `resource.type: dataset`; policies/data.polar): sensitive data needs a business-group
match, and a caller who may not reach the server reads nothing. Many items share few labels, so the kit asks
once per distinct dataset, in one batch, through the same short-TTL decision cache as tool calls.

    @kit.tool()
    @guarded()
    async def revenue(caller: Caller) -> list[dict[str, Any]]:
        rows = load_rows()
        return await caller.filter_readable(rows, lambda row: Dataset(f"revenue.{row['bg']}", business_group=row["bg"],
                                                                       sensitivity="confidential"))
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["READ_ACTION", "Dataset"]

READ_ACTION = "read"


@dataclass(frozen=True)
class Dataset:
    """A piece of data a server serves, labelled for the policy.

    Attributes:
        name: what the data is (`ads.campaigns`, `revenue/2026-11`); shown in denials and decision logs.
        business_group: the business group the data belongs to ("" when it belongs to none).
        sensitivity: public, internal, confidential or restricted. Unlabelled data is decided as restricted.
        properties: anything else a policy reads (a partition's date, a table's schema).
    """

    name: str
    business_group: str = ""
    sensitivity: str = ""
    properties: Mapping[str, Any] = field(default_factory=dict)

    def policy_properties(self) -> dict[str, Any]:
        """`resource.properties` of the AuthZEN request (the server is added by the authorizer)."""
        properties: dict[str, Any] = dict(self.properties)
        properties["business_group"] = self.business_group
        if self.sensitivity:
            properties["sensitivity"] = self.sensitivity
        return properties

    @property
    def key(self) -> str:
        """Identity for de-duplication: equal labels, one question."""
        return json.dumps([self.name, self.policy_properties()], sort_keys=True, default=str)
