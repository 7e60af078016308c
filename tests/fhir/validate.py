"""Validates FHIR R4 resources, one JSON document per line, with
fhir.resources 6.4.0 (the last release for R4, 4.0.1). Exits non-zero,
naming the line, on the first invalid resource.

    python tests/fhir/validate.py export.ndjson
"""
import json
import sys

from fhir.resources import construct_fhir_element
from pydantic import ValidationError

checked = 0
with open(sys.argv[1], encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            construct_fhir_element(data["resourceType"], data)
        except (ValidationError, KeyError, LookupError, ValueError) as e:
            print(f"line {n}: invalid FHIR R4: {e}", file=sys.stderr)
            sys.exit(1)
        checked += 1
print(f"ok: {checked} FHIR R4 resources valid")
