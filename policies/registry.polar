# Governance of the registry itself: who may publish, review, approve, deprecate and retire servers.
#
# resource: a registry entry {kind: "registry_entry", name, namespace, owner_team, lifecycle, sensitivity,
#           business_group, published_by, allowed_clients, delegated_by, review?, review_group?}
#           delegated_by: the actor chain of a delegated token (RFC 8693 `act`: the servers that exchanged the
#           person's token, most recent first); empty when the person calls through their own client.
# actions:  "registry.publish", "registry.submit", "registry.review", "registry.approve", "registry.reject",
#           "registry.deprecate", "registry.restore", "registry.retire"

# Every action on a registry entry is a write. A server holding a person's exchanged token must not publish,
# review or retire as that person (a confused deputy): delegated writes are denied unless a rule below names the
# server (its client id, e.g. "server.deployer") and the action, for every server in the chain. None does.
delegated_registry_write(_server, _action) if false;
deny(_actor, action, entry: {kind: "registry_entry"}, "delegated_actor") if
    server in entry.delegated_by and not delegated_registry_write(server, action);

# The namespaces the company publishes under, and the team (group) that owns each.
namespace_owner("com.portcullis", "platform");
namespace_owner("com.portcullis.ads", "ads-eng");
namespace_owner("com.portcullis.data", "data-platform");
namespace_owner("com.portcullis.finance", "finance-eng");

# Registry administrators may act on any entry's lifecycle (not review it: reviews need the review's group).
registry_admin(actor) if "registry-admins" in actor.groups;

owns_namespace(actor, namespace) if namespace_owner(namespace, team) and team in actor.groups;
in_owner_team(actor, entry) if entry.owner_team in actor.groups;

# Publishing: into a namespace the actor's team owns, naming a team the actor belongs to.
deny(actor, "registry.publish", entry: {kind: "registry_entry"}, "namespace_not_owned") if
    not owns_namespace(actor, entry.namespace);
deny(actor, "registry.publish", entry: {kind: "registry_entry"}, "not_in_owner_team") if
    not in_owner_team(actor, entry);
allow(_actor, "registry.publish", _entry: {kind: "registry_entry"});

# Reviews: a member of the review's group, never the person who published the version (four eyes).
deny(actor, "registry.review", entry: {kind: "registry_entry"}, "not_in_review_group") if
    not entry.review_group in actor.groups;
deny(actor, "registry.review", entry: {kind: "registry_entry"}, "own_submission") if
    actor.id = entry.published_by;
allow(_actor, "registry.review", _entry: {kind: "registry_entry"});

# Approval itself happens when the last required review passes; an explicit approve is an administrator's.
allow(actor, "registry.approve", _entry: {kind: "registry_entry"}) if registry_admin(actor);
allow(actor, "registry.reject", _entry: {kind: "registry_entry"}) if registry_admin(actor);

# The owning team moves its own entries through the rest of the lifecycle.
lifecycle_action("registry.submit");
lifecycle_action("registry.deprecate");
lifecycle_action("registry.restore");
lifecycle_action("registry.retire");
allow(actor, action, entry: {kind: "registry_entry"}) if
    lifecycle_action(action) and (in_owner_team(actor, entry) or registry_admin(actor));
