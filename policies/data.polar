# Data served by a server (tables, partitions, reports): business-group gating of sensitive data.

deny(actor, "read", data: {kind: "dataset"}, reason) if
    deny(actor, "connect", data.server, reason);

deny(actor, "read", data: {kind: "dataset"}, "business_group_mismatch") if
    sensitive(data.sensitivity) and
    not data.business_group in actor.business_groups;

allow(actor, "read", data: {kind: "dataset"}) if
    allow(actor, "connect", data.server);
