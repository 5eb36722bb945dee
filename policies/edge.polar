# Layer 1, at the gateway: may this client application, for this user, reach this server at all?

deny(_actor, "connect", server: {kind: "server"}, "server_not_approved") if
    not reachable(server.status);

deny(actor, "connect", server: {kind: "server"}, "client_not_allowed") if
    not client_allowed(actor, server);

# A client application is allowed when the server lists its id. Self-registered clients have ids the
# authorization server assigns ("dyn-..." for dynamic registration, the document's https URL for a Client ID
# Metadata Document): a server admits them all by listing "dynamic" or "metadata_document".
client_allowed(actor, server) if actor.client in server.allowed_clients;
client_allowed(actor, server) if
    actor.client.startswith("dyn-") and "dynamic" in server.allowed_clients;
client_allowed(actor, server) if
    actor.client.startswith("https://") and "metadata_document" in server.allowed_clients;

# A restricted server is reachable only by members of its business group.
deny(actor, "connect", server: {kind: "server"}, "business_group_required") if
    server.sensitivity = "restricted" and
    not server.business_group in actor.business_groups;

allow(_actor, "connect", _server: {kind: "server"});
