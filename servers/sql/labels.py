"""Business-group labels of tables, as reviewed with the server: the `datasets` of its server.json governance.

The decision point labels every table it decides from the same entries in the catalog, never from what this
server sends; the server reads them only to show a table's labels (list_tables, describe_table).

labels = Labels.load(Path("servers/sql/server.json"))
labels.dataset("lake.ads.campaigns")  # Dataset(name, business_group="ads", sensitivity="confidential")
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from portcullis_contracts.catalog import DatasetLabel, label_for
from portcullis_contracts.governance import GOVERNANCE_KEY, Governance
from portcullis_contracts.json_input import InvalidJson, parse_json
from portcullis_contracts.problems import validation_problems
from server_kit import ConfigurationError, Dataset

__all__ = ["Labels"]


class Labels:
    """Ordered patterns; the first match labels a table, an unmatched table gets no label (restricted)."""

    def __init__(self, labels: list[DatasetLabel]):
        self._labels = labels

    @classmethod
    def load(cls, server_json: Path) -> Labels:
        """Read the `datasets` labels of a server.json's governance extension, checked by the contract's model.

        Raises:
            ConfigurationError: unreadable, or a governance extension the registry would refuse.
        """
        try:
            document = parse_json(server_json.read_bytes())
        except (OSError, InvalidJson) as exc:
            raise ConfigurationError(f"cannot read the table labels in {server_json}: {exc}") from None
        meta = document.get("_meta") if isinstance(document, dict) else None
        raw = meta.get(GOVERNANCE_KEY) if isinstance(meta, dict) else None
        try:
            governance = Governance.model_validate(raw)
        except ValidationError as exc:
            problems = validation_problems(exc.errors(), limit=10)
            raise ConfigurationError(f"{server_json}: invalid governance extension: {problems}") from None
        return cls(list(governance.datasets))

    def dataset(self, table: str) -> Dataset:
        """The policy's view of a table (`catalog.schema.table`)."""
        catalog, schema, name = table.split(".", 2)
        properties = {"catalog": catalog, "schema": schema, "table": name}
        label = label_for(self._labels, table)
        if label is None:
            return Dataset(table, "", "", properties)
        return Dataset(table, label.business_group, label.sensitivity, properties)
