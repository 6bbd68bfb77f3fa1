"""Every value the chart has is documented: each key path of values.yaml (down to where the
schema stops listing properties, i.e. free-form maps such as resources or affinity) appears in
the first column of the values table in the chart's README.md, and every key in that table is
one the schema knows."""

import json
import re
import sys
from pathlib import Path

import yaml

chart = Path(sys.argv[1])
values = yaml.safe_load((chart / "values.yaml").read_text())
schema = json.loads((chart / "values.schema.json").read_text())


def keys(value, node, prefix=""):
    for key, child in value.items():
        path = f"{prefix}{key}"
        child_schema = node.get("properties", {}).get(key, {})
        if isinstance(child, dict) and "properties" in child_schema:
            yield from keys(child, child_schema, path + ".")
        else:
            yield path


def schema_keys(node, prefix=""):
    for key, child in node.get("properties", {}).items():
        yield prefix + key
        yield from schema_keys(child, prefix + key + ".")


in_values = set(keys(values, schema))
table = set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", (chart / "README.md").read_text(), re.M))
known = set(schema_keys(schema))
missing = sorted(in_values - table)
unknown = sorted(table - known)
if missing or unknown:
    if missing:
        print(f"values not documented in {chart}/README.md: {', '.join(missing)}", file=sys.stderr)
    if unknown:
        print(f"documented keys that are not values: {', '.join(unknown)}", file=sys.stderr)
    sys.exit(1)
print(f"chart: README documents all {len(in_values)} values")
