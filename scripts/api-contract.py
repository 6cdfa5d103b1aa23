#!/usr/bin/env python3
"""Schemathesis, the public OpenAPI fuzzer, against a running backend (scripts/with-server.sh
gives THUDO_SERVER_URL): once without credentials over every route, then once per kind of
caller over its own routes. Each run must find no server error, no response outside the
document, and no schema-valid request refused (a 4xx other than 401, 403, 404, 409 or 429;
scripts/api-contract.toml names the few rules no schema can state). Prints one line of counts
per run; exits non-zero when any run failed. THUDO_CONTRACT_ONLY=<run name> runs one; each
run's output and JUnit report are kept in target/api-contract/."""

import json
import os
import subprocess
import sys
import urllib.request
import xml.etree.ElementTree as ET

URL = os.environ["THUDO_SERVER_URL"]
CITIZEN = os.environ["THUDO_DEMO_CITIZEN"]
CODES = os.environ["THUDO_ENROLMENT_CODES"].split()
GATES = dict(g.split("=", 1) for g in os.environ["THUDO_GATE_CODES"].split())
SCHEMATHESIS = os.environ.get("SCHEMATHESIS", "schemathesis")
CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "api-contract.toml")
EXAMPLES = os.environ.get("THUDO_CONTRACT_EXAMPLES", "15")
SECONDS = os.environ.get("THUDO_CONTRACT_SECONDS", "45")
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
])


def post(path, body, token=None):
    request = urllib.request.Request(
        URL + path, data=json.dumps(body).encode(), method="POST",
        headers={"content-type": "application/json"})
    if token:
        request.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)


def device_token():
    nonce = post("/v1/identity/nonce", {})["nonce"]
    id_token = post("/test/identity/token", {"citizen_id": CITIZEN, "nonce": nonce})["id_token"]
    return post("/v1/devices", {"id_token": id_token, "device_name": "contract test",
                                "role": "phone"})["token"]


def validator_token(code):
    return post("/v1/validators", {"enrolment_code": code,
                                   "device_name": "contract test"})["token"]


def operator_token(role, organisation):
    return post("/test/identity/operator-token",
                {"role": role, "organisation": organisation})["access_token"]


RUNS = [
    # (name, token, routes)
    ("no credential", None, None),
    ("device", device_token(),
     r"^/v1/(sync/|devices|identity/|transit/(orders|topups|balance|credentials|charges)|health/|handbook/|files/)"),
    ("bus validator", validator_token(CODES[0]),
     r"^/v1/transit/(feed|taps|inspections|entries|inside|validators/token)"),
    ("entry gate", validator_token(GATES["201:entry"]), r"^/v1/transit/(feed|taps|inside)"),
    ("exit gate", validator_token(GATES["205:exit"]), r"^/v1/transit/(feed|taps|entries)"),
    ("transit_operator", operator_token("transit_operator", "hanoi-metro"),
     r"^/v1/admin/(transit/|citizens/[^/]+/entitlements)"),
    ("health_facility", operator_token("health_facility", "bv-bach-mai"),
     r"^/v1/admin/citizens/[^/]+/health"),
    ("health_authority", operator_token("health_authority", "moh"), r"^/v1/admin/health/"),
    ("party_organisation", operator_token("party_organisation", "hn"),
     r"^/v1/admin/(cells/|citizens/[^/]+/(cell|procedures))"),
    ("civil_registry", operator_token("civil_registry", "hn-registry"),
     r"^/v1/admin/citizens/[^/]+/dependants"),
    ("account_support", operator_token("account_support", "hn-support"), r"^/v1/admin/devices/"),
    # The auditor reads what it may and is refused the rest: every operator route.
    ("auditor", operator_token("auditor", "hn-audit"), r"^/v1/admin/"),
]

REPORTS = os.environ.get("THUDO_CONTRACT_REPORTS", "target/api-contract")
os.makedirs(REPORTS, exist_ok=True)
for old in os.listdir(REPORTS):
    if old.endswith((".xml", ".log")) and old != "server.log":
        os.remove(os.path.join(REPORTS, old))
# A fixed seed by default, so that a failure replays; another explores further.
SEED = os.environ.get("THUDO_CONTRACT_SEED", "20261206")
only = os.environ.get("THUDO_CONTRACT_ONLY")
if only and only not in [name for name, _, _ in RUNS]:
    sys.exit(f"no run is named {only!r}: {', '.join(name for name, _, _ in RUNS)}")
failed = False
for name, token, routes in RUNS:
    if only and name != only:
        continue
    junit = os.path.join(REPORTS, name.replace(" ", "-") + ".xml")
    # One worker: the fuzzer's threads race in its own caches (a runtime error, not a finding).
    command = [SCHEMATHESIS, "--config-file", CONFIG, "run", URL + "/openapi.json",
               "--checks", CHECKS, "--max-examples", EXAMPLES, "--max-time", SECONDS,
               "--seed", SEED, "--workers", "1", "--no-color",
               "--report", "junit", "--report-junit-path", junit]
    if token:
        command += ["--header", "Authorization: Bearer " + token]
    if routes:
        command += ["--include-path-regex", routes]
    run = subprocess.run(command, capture_output=True, text=True)
    with open(junit[:-4] + ".log", "w") as log:
        log.write(run.stdout + run.stderr)
    operations = 0
    if os.path.exists(junit):
        operations = sum(1 for case in ET.parse(junit).getroot().iter("testcase")
                         if case.get("name") != "Stateful tests")
    lines = run.stdout.splitlines()
    counted = [lines[i + 1].strip() for i, line in enumerate(lines[:-1])
               if line.startswith("Test cases:")]
    cases = counted[-1] if counted else "no count"
    print(f"{name:20} {operations:3} operations: {cases}")
    if run.returncode != 0:
        failed = True
        print(run.stdout[-20000:])
        print(run.stderr[-4000:], file=sys.stderr)
sys.exit(1 if failed else 0)
