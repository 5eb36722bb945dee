"""Business-group labels of tables, as reviewed with the server: the `datasets` of its server.json governance.

The decision point labels every table it decides from the same entries in the catalog, never from what this
server sends; the server reads them only to show a table's labels (list_tables, describe_table).

labels = Labels.load(Path("servers/sql/server.json"))
labels.dataset("lake.ads.campaigns")  # Dataset(name, business_group="ads", sensitivity="confidential")
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path

from server_kit import ConfigurationError, Dataset

__all__ = ["Label", "Labels"]

_SENSITIVITIES = ("public", "internal", "confidential", "restricted")
_GOVERNANCE_KEY = "dev.portcullis/governance"


@dataclass(frozen=True)
class Label:
    match: str
    business_group: str
    sensitivity: str


class Labels:
    """Ordered patterns; the first match labels a table, an unmatched table gets no label (restricted)."""

    def __init__(self, labels: list[Label]):
        self._labels = labels

    @classmethod
    def load(cls, server_json: Path) -> Labels:
        """Read and check the `datasets` labels of a server.json's governance extension.

        Raises:
            ConfigurationError: unreadable, not the expected shape, or an unknown sensitivity.
        """
        try:
            document = json.loads(server_json.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the table labels in {server_json}: {exc}") from None
        meta = document.get("_meta") if isinstance(document, dict) else None
        governance = meta.get(_GOVERNANCE_KEY) if isinstance(meta, dict) else None
        entries = governance.get("datasets", []) if isinstance(governance, dict) else None
        if not isinstance(entries, list):
            raise ConfigurationError(f"{server_json}: expected a `datasets` list in the governance extension")
        labels = []
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("match"), str):
                raise ConfigurationError(f"{server_json}: datasets[{position}] needs a `match` pattern")
            sensitivity = str(entry.get("sensitivity", "restricted"))
            if sensitivity not in _SENSITIVITIES:
                raise ConfigurationError(
                    f"{server_json}: datasets[{position}].sensitivity must be one of {', '.join(_SENSITIVITIES)}"
                )
            labels.append(Label(entry["match"], str(entry.get("business_group") or ""), sensitivity))
        return cls(labels)

    def dataset(self, table: str) -> Dataset:
        """The policy's view of a table (`catalog.schema.table`)."""
        catalog, schema, name = table.split(".", 2)
        properties = {"catalog": catalog, "schema": schema, "table": name}
        for label in self._labels:
            if fnmatch.fnmatchcase(table.lower(), label.match.lower()):
                return Dataset(table, label.business_group, label.sensitivity, properties)
        return Dataset(table, "", "", properties)
