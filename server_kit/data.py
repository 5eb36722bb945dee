"""Business-group gating of data: which tables, partitions or rows a caller may read, decided by the policy.

A tool that serves data labelled by business group describes each piece as a `Dataset` and lets the policy
decide (`action: read`, `resource.type: dataset`; policies/data.polar): sensitive data needs a business-group
match, and a caller who may not reach the server reads nothing. The labels are declared in the server's
server.json governance (`datasets`: patterns over dataset names, reviewed with the server) and the decision
point reads them from the catalog. Many items share few labels, so the kit asks
once per distinct dataset, in one batch, through the same short-TTL decision cache as tool calls.

    @kit.tool()
    @guarded()
    async def revenue(caller: Caller) -> list[dict[str, Any]]:
        rows = load_rows()
        return await caller.filter_readable(rows, lambda row: Dataset(f"revenue.{row['bg']}"))
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
    """A piece of data a server serves, named for the policy.

    The decision point labels data from the `datasets` of the server's reviewed server.json (carried in the
    catalog), never from what the server sends: `business_group` and `sensitivity` here are the server's own copy
    of those labels, for showing them to the caller, and are not sent with the question.

    Attributes:
        name: what the data is (`lake.ads.campaigns`, `revenue/2026-11`); matched against the server's labels,
            shown in denials and decision logs.
        business_group: the business group the data belongs to, as labelled ("" when it belongs to none).
        sensitivity: public, internal, confidential or restricted, as labelled. Unlabelled data is decided as
            restricted.
        properties: anything else a policy reads (a partition's date, a DAG's owners).
    """

    name: str
    business_group: str = ""
    sensitivity: str = ""
    properties: Mapping[str, Any] = field(default_factory=dict)

    def policy_properties(self) -> dict[str, Any]:
        """`resource.properties` of the AuthZEN request (the server is added by the authorizer): no labels."""
        return dict(self.properties)

    @property
    def key(self) -> str:
        """Identity for de-duplication: the same name and properties, one question."""
        return json.dumps([self.name, self.policy_properties()], sort_keys=True, default=str)
