# Layer 2, in each server (and at the edge when the request names a tool): may this user call this tool?

# A tool carries every denial of its server.
deny(actor, "call", tool: {kind: "tool"}, reason) if
    deny(actor, "connect", tool.server, reason);

# Tools reserved to groups: (server, tool, group). A listed tool may be called only by a member of one of
# its groups; `portcullis policy check` verifies that every server and tool named here is in the catalog.
tool_group("demo", "get_revenue_metrics", "ads-eng");
tool_group("sql", "get_revenue_metrics", "ads-eng");

deny(actor, "call", tool: {kind: "tool"}, "group_required") if
    tool_group(tool.server.name, tool.name, _) and
    not (tool_group(tool.server.name, tool.name, group) and group in actor.groups);

# Sensitive tools serve named business groups; the caller must belong to one of them.
deny(actor, "call", tool: {kind: "tool"}, "business_group_mismatch") if
    sensitive(tool.sensitivity) and
    not intersects(tool.business_groups, actor.business_groups);

allow(actor, "call", tool: {kind: "tool"}) if
    allow(actor, "connect", tool.server);

# Human in the loop: a mutating tool asks the person to confirm before it acts (MCP elicitation, in the
# server). A client that cannot ask anyone may call it unconfirmed only where this waives the confirmation:
# unattended agents (the "agents" group), on tools they may call anyway.
deny(actor, "call_unconfirmed", tool: {kind: "tool"}, reason) if
    deny(actor, "call", tool, reason);

allow(actor, "call_unconfirmed", tool: {kind: "tool"}) if
    "agents" in actor.groups and
    allow(actor, "call", tool);
