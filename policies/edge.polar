# Layer 1, at the gateway: may this client application, for this user, reach this server at all?

deny(_actor, "connect", server: {kind: "server"}, "server_not_approved") if
    not reachable(server.status);

deny(actor, "connect", server: {kind: "server"}, "client_not_allowed") if
    not actor.client in server.allowed_clients;

# A restricted server is reachable only by members of its business group.
deny(actor, "connect", server: {kind: "server"}, "business_group_required") if
    server.sensitivity = "restricted" and
    not server.business_group in actor.business_groups;

allow(_actor, "connect", _server: {kind: "server"});
