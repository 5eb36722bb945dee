# Operating a workflow (trigger a run, pause, unpause an Airflow DAG): its owners only. The server describes
# the workflow as a dataset whose `properties.owners` are the owners the scheduler lists (people or groups).

deny(actor, "operate", workflow: {kind: "dataset"}, reason) if
    deny(actor, "connect", workflow.server, reason);

deny(actor, "operate", workflow: {kind: "dataset"}, "not_dag_owner") if
    not owns(actor, workflow);

allow(actor, "operate", workflow: {kind: "dataset"}) if
    allow(actor, "connect", workflow.server) and
    owns(actor, workflow);

owns(actor, workflow) if
    actor.id in workflow.properties.owners;

owns(actor, workflow) if
    intersects(actor.groups, workflow.properties.owners);
