"""Validates JSON samples against the server's /openapi.json with Python's `jsonschema` (Draft
2020-12, as OpenAPI 3.1 uses): every component schema must be a valid schema, every $ref must
resolve, and every sample must match the component it is filed under.

    python validate.py openapi.json samples.json   # samples: {"ComponentName": [instance, ...]}

Prints one line per failure and exits 1 on any."""

import json
import sys

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

document = json.load(open(sys.argv[1]))
samples = json.load(open(sys.argv[2]))
registry = Registry().with_resource("urn:openapi", Resource.from_contents(document, default_specification=DRAFT202012))
failures = []
for name, schema in document["components"]["schemas"].items():
    try:
        Draft202012Validator.check_schema(schema)
    except Exception as e:  # noqa: BLE001
        failures.append(f"{name}: not a valid schema: {e}")
checked = 0
for name, instances in samples.items():
    validator = Draft202012Validator({"$ref": f"urn:openapi#/components/schemas/{name}"}, registry=registry)
    for i, instance in enumerate(instances):
        for error in validator.iter_errors(instance):
            failures.append(f"{name}[{i}] at {list(error.absolute_path)}: {error.message[:300]}")
        checked += 1
for failure in failures:
    print(failure)
print(f"{checked} samples checked, {len(failures)} failures")
sys.exit(1 if failures else 0)
