"""Health checks of the local AWS, run with the LocalStack venv's Python.

usage: health.py probe ENDPOINT          exit 0 when a LocalStack answers its health endpoint
       health.py ready ENDPOINT SERVICES exit 0 when every service in SERVICES (comma-separated) is up,
                                         LocalStack's init "ready" stage completed, and DynamoDB answers
       health.py report ENDPOINT         print the services' states
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

UP_STATES = {"running", "available"}


def get_json(url: str, timeout: float = 2.0) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def health(endpoint: str) -> dict | None:
    body = get_json(f"{endpoint}/_localstack/health")
    if isinstance(body, dict) and isinstance(body.get("services"), dict):
        return body
    return None


def dynamodb_answers(endpoint: str) -> bool:
    # LocalStack's DynamoDB runs DynamoDB Local in a child JVM; a list_tables proves that it started
    # (without the pre-placed jars it would retry downloads for minutes and then answer 500).
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=20),
    )
    try:
        client.list_tables(Limit=1)
        return True
    except Exception as err:  # noqa: BLE001 - any failure means "not ready yet"
        print(f"dynamodb not ready: {err}", file=sys.stderr)
        return False


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    command, endpoint = argv[1], argv[2].rstrip("/")
    body = health(endpoint)
    if command == "probe":
        return 0 if body is not None else 1
    if command == "report":
        if body is None:
            print(f"no LocalStack answers at {endpoint}")
            return 1
        print(f"LocalStack {body.get('version', '?')} ({body.get('edition', '?')}) at {endpoint}")
        for name, state in sorted(body["services"].items()):
            if state != "disabled":
                print(f"  {name:16} {state}")
        return 0
    if command == "ready":
        if body is None:
            return 1
        wanted = [s for s in argv[3].split(",") if s] if len(argv) > 3 else []
        down = [s for s in wanted if body["services"].get(s) not in UP_STATES]
        if down:
            return 1
        init = get_json(f"{endpoint}/_localstack/init/ready")
        if not (isinstance(init, dict) and init.get("completed") is True):
            return 1
        return 0 if dynamodb_answers(endpoint) else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
