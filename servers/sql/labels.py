"""Business-group labels of tables (`datasets.yaml`): the server labels, the policy decides.

labels = Labels.load(Path("servers/sql/datasets.yaml"))
labels.dataset("lake.ads.campaigns")  # Dataset(name, business_group="ads", sensitivity="confidential")
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import yaml

from server_kit import ConfigurationError, Dataset

__all__ = ["Label", "Labels"]

_SENSITIVITIES = ("public", "internal", "confidential", "restricted")


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
    def load(cls, path: Path) -> Labels:
        """Read and check a labels file.

        Raises:
            ConfigurationError: unreadable, not the expected shape, or an unknown sensitivity.
        """
        try:
            document = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"cannot read the table labels {path}: {exc}") from None
        entries = document.get("datasets") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ConfigurationError(f"{path}: expected a `datasets:` list")
        labels = []
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("match"), str):
                raise ConfigurationError(f"{path}: datasets[{position}] needs a `match` pattern")
            sensitivity = str(entry.get("sensitivity", ""))
            if sensitivity not in _SENSITIVITIES:
                raise ConfigurationError(
                    f"{path}: datasets[{position}].sensitivity must be one of {', '.join(_SENSITIVITIES)}"
                )
            labels.append(Label(entry["match"], str(entry.get("business_group") or ""), sensitivity))
        return cls(labels)

    def dataset(self, table: str) -> Dataset:
        """The policy's view of a table (`catalog.schema.table`)."""
        catalog, schema, name = table.split(".", 2)
        properties = {"catalog": catalog, "schema": schema, "table": name}
        for label in self._labels:
            if fnmatch.fnmatchcase(table, label.match):
                return Dataset(table, label.business_group, label.sensitivity, properties)
        return Dataset(table, "", "", properties)
