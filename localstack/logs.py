"""Read the local stack's function logs from CloudWatch Logs (see localstack/logs.sh)."""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

FUNCTIONS = {"api": "ApiFunctionName", "resize": "ResizeFunctionName", "aggregate": "AggregateFunctionName", "sweep": "SweepFunctionName"}
INIT = re.compile(r"Init Duration: ([0-9.]+) ms")


def clients(endpoint: str, region: str):
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=region)
    config = Config(retries={"max_attempts": 3, "mode": "standard"})
    return (
        session.client("logs", endpoint_url=endpoint, config=config),
        session.client("lambda", endpoint_url=endpoint, config=config),
    )


def log_groups(logs, awslambda, outputs: dict) -> dict[str, str]:
    """Tag -> log group: the function's LoggingConfig.LogGroup where it has events, else the default
    /aws/lambda/<name> (where LocalStack 4.9 writes whatever the template says)."""
    groups = {}
    for tag, output in FUNCTIONS.items():
        name = outputs[output]
        candidates = [f"/aws/lambda/{name}"]
        try:
            configured = awslambda.get_function_configuration(FunctionName=name).get("LoggingConfig", {})
            if configured.get("LogGroup"):
                candidates.insert(0, configured["LogGroup"])
        except ClientError:
            pass
        chosen = candidates[-1]
        for group in candidates:
            try:
                if logs.filter_log_events(logGroupName=group, limit=1).get("events"):
                    chosen = group
                    break
            except ClientError:
                continue
        groups[tag] = chosen
    return groups


def events(logs, group: str, start_ms: int):
    kwargs = {"logGroupName": group, "startTime": start_ms}
    while True:
        try:
            page = logs.filter_log_events(**kwargs)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return
            raise
        yield from page.get("events", [])
        token = page.get("nextToken")
        if not token:
            return
        kwargs["nextToken"] = token


def follow(logs, groups: dict[str, str]) -> None:
    start = int(time.time() * 1000) - 5 * 60 * 1000
    seen: set[str] = set()
    width = max(len(t) for t in groups)
    while True:
        batch = []
        for tag, group in groups.items():
            for e in events(logs, group, start):
                if e["eventId"] not in seen:
                    seen.add(e["eventId"])
                    # One invocation's lines share a timestamp: keep their order within it.
                    batch.append((e["timestamp"], len(batch), tag, e["message"]))
        for _, _, tag, message in sorted(batch):
            for line in message.rstrip("\n").splitlines():
                print(f"[{tag:<{width}}] {line}", flush=True)
        time.sleep(1)


def cold_starts(logs, groups: dict[str, str]) -> int:
    print("| function | cold starts | Init Duration min / median / max (ms) |")
    print("|---|---|---|")
    for tag, group in groups.items():
        inits = [
            float(m.group(1))
            for e in events(logs, group, 0)
            if e["message"].startswith("REPORT") and (m := INIT.search(e["message"]))
        ]
        if inits:
            print(f"| {tag} | {len(inits)} | {min(inits):.1f} / {statistics.median(inits):.1f} / {max(inits):.1f} |")
        else:
            print(f"| {tag} | 0 | |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--outputs", required=True)
    parser.add_argument("command", choices=["follow", "cold-starts"])
    args = parser.parse_args()
    with open(args.outputs) as f:
        outputs = json.load(f)
    logs, awslambda = clients(args.endpoint, args.region)
    groups = log_groups(logs, awslambda, outputs)
    if args.command == "cold-starts":
        return cold_starts(logs, groups)
    try:
        follow(logs, groups)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
