# Shared vocabulary of the Portcullis policies.
#
# The engine asks two rules for every request:
#   deny(actor, action, resource, reason)  an explicit denial with a reason code; any deny wins
#   allow(actor, action, resource)         what is permitted; anything not allowed is denied
#
# actor:    {id, email, client, groups: [..], business_groups: [..]}
# actions:  "connect" (reach a server: the edge), "call" (a tool), "read" (a dataset a server serves),
#           "operate" (trigger or pause a workflow a server runs: workflows.polar)
# resource: a server {kind: "server", name, status, owner_team, sensitivity, business_group, allowed_clients, tools}
#           a tool    {kind: "tool", name, server: <server>, sensitivity, read_only, business_groups, arguments}
#           a dataset {kind: "dataset", name, server: <server>, business_group, sensitivity, properties}

# Sensitivity levels whose tools and data need a business-group match.
sensitive("confidential");
sensitive("restricted");

# Lifecycle states in which a server may be reached.
reachable("approved");
reachable("deprecated");

# True when two lists share a member.
intersects(xs, ys) if x in xs and x in ys;
