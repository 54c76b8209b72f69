"""Successful answers against the OpenAPI document: the fuzzing of run.sh cannot guess an
agreement id, so its queries end in errors; here one real overlap preview and run (and the reads
after them) go through schemathesis' own response checks (schema, status, content type).
Usage: real_answers.py BASE_URL AGREEMENT_ID ANALYST_TOKEN AUDITOR_TOKEN (run by run.sh)."""
import sys

import requests
import schemathesis
import urllib3
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                              status_code_conformance)

urllib3.disable_warnings()  # the node's certificate is self-signed

base, agreement, analyst, auditor = sys.argv[1:5]
schema = schemathesis.openapi.from_url(f"{base}/api/openapi.json", verify=False)
query = {"agreement_id": agreement, "join_key": "email", "group_by": "age_band",
         "peer_group_by": "tier", "epsilon": 1.0}
calls = [
    ("POST", "/api/v1/query/{analysis}/preview", {"analysis": "overlap"}, query, analyst),
    ("POST", "/api/v1/query/{analysis}", {"analysis": "overlap"}, query, analyst),
    ("POST", "/api/v1/queries/overlap", None, query, analyst),
    ("GET", "/api/v1/analyses", None, None, analyst),
    ("GET", "/api/v1/agreements", None, None, analyst),
    ("GET", "/api/v1/runs", None, None, analyst),
    ("GET", "/api/v1/runs", None, None, auditor),
    ("GET", "/api/v1/budget", None, None, auditor),
    ("GET", "/api/v1/audit", None, None, auditor),
    ("POST", "/api/v1/audit/verify", None, None, auditor),
    ("GET", "/api/v1/whoami", None, None, auditor),
]
for method, path, params, body, token in calls:
    extra = {} if body is None else {"body": body}
    case = schema[path][method].Case(
        path_parameters=params, headers={"Authorization": f"Bearer {token}"}, **extra)
    kwargs = case.as_transport_kwargs(base_url=base)
    response = requests.request(**kwargs, verify=False, timeout=120)
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance,
                                             status_code_conformance, content_type_conformance])
    print(f"ok {method} {path} {response.status_code}")
print(f"{len(calls)} passed, 0 failed")
