"""Schemathesis hooks for the stateful run as a submission's owner
(tests/api/schemathesis.rs).

That run is there to build on documents that exist: create a submission,
then follow the document's links to read, change and delete it as its
owner. The other runs generate from the exact schema, and the exact schema
accepts values the API refuses for reasons OpenAPI cannot say (a symptom's
onset in the future, a blank name, control characters, a practitioner that
does not exist): nearly every generated create was a 400, so the links were
never followed and a PATCH only ever met a 404. Here the submissions'
bodies are narrowed to a subset the API certainly accepts, and the item
routes' own query parameters (select, depth) are left out, so that every
step reaches the document.
"""

import schemathesis

PLAIN = "^[A-Za-z][A-Za-z ]{0,30}[A-Za-z]$"
PAST = ["2024-12-31", "2025-06-15", "2026-01-01"]
BORN = ["1950-02-03", "1984-07-09", "2001-11-30"]
EMAILS = ["pat@example.org", "someone.else@example.net"]


def nullable(schema):
    return {"oneOf": [schema, {"type": "null"}]}


@schemathesis.hook
def before_load_schema(context, raw_schema):
    schemas = raw_schema["components"]["schemas"]
    symptom = schemas["Symptom"]["properties"]
    symptom["name"] = {"type": "string", "pattern": PLAIN}
    symptom["onset"] = {"type": "string", "enum": PAST}
    symptom["notes"] = nullable({"type": "string", "pattern": PLAIN})
    for body in ("SubmissionFields", "SubmissionCreate"):
        props = schemas[body]["properties"]
        props["symptoms"]["maxItems"] = 3
        props["notes"] = nullable({"type": "string", "pattern": PLAIN})
        props["dateOfBirth"] = nullable({"type": "string", "enum": BORN})
        props["contactEmail"] = nullable({"type": "string", "enum": EMAILS})
        # No practitioner exists in this run: only none.
        props["practitionerId"] = {"type": "null"}
        # What an owner may set (`reviewed` is a practitioner's).
        props["status"] = {"type": "string", "enum": ["submitted", "archived"]}
    for method in ("get", "patch", "delete"):
        op = raw_schema["paths"]["/api/symptom-submissions/{id}"].get(method)
        if op is not None:
            op["parameters"] = [p for p in op.get("parameters", []) if p.get("in") == "path"]
    create = raw_schema["paths"]["/api/symptom-submissions"]["post"]
    create["parameters"] = [p for p in create.get("parameters", []) if p.get("in") == "path"]
