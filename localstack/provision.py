"""Deploy the real template.yaml, with the real function binaries, into the local AWS as a
CloudFormation stack, and export its outputs.

Run by localstack/provision.sh with the LocalStack venv's Python (boto3 and the AWS CLI's YAML loader).

Each AWS::Serverless::Function names its binary (Metadata.BuildProperties.Binary, as `sam build`
uses it); that binary, built for the host (`--bin-dir`; or `sam build`'s artifact of the function,
`--sam-build-dir`, as `make smoke-arm64` deploys), is zipped as `bootstrap` (deterministic: fixed
timestamp and mode) under a content-addressed key in a local artifacts bucket, and the
function's CodeUri points there. The project's process executor runs it (localstack/process-executor).
The result (generated under .local/, never committed) is deployed with CloudFormation, which expands
the SAM transform. Every resource comes from template.yaml itself.

Redeploying an unchanged template with unchanged parameters and binaries is a no-op: the derived
template (which names the code by its hash) and parameters are hashed, and the stack is left alone
when the same hash is deployed in the same stack. When LocalStack cannot update the stack in place,
the local stack (throwaway data) is replaced; see Deployer.deploy.

Outputs: <out>/stack-outputs.json (OutputKey -> OutputValue) and <out>/stack.env (shell exports: the
endpoint, region and credentials, the stack's name, and the api function's environment as deployed).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shlex
import sys
import time
import zipfile
from pathlib import Path

import boto3
from awscli.customizations.cloudformation.yamlhelper import yaml_parse
from botocore.config import Config
from botocore.exceptions import ClientError

ARTIFACTS_BUCKET = "resizer-local-artifacts"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
DEPLOY_TIMEOUT_S = 600
TEMPLATE_BODY_LIMIT = 51_200
# Attempts at creating the stack when a creation fails only because a resource already exists; see
# Deployer.create.
CREATE_ATTEMPTS = 3
# LocalStack's answer to a CreateFunction whose function exists: the message of its
# ResourceConflictException, in a failed resource's status reason.
FUNCTION_EXISTS = re.compile(r"Function already exist: ([A-Za-z0-9_-]+)")


STABLE_STATES = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
BROKEN_STATES = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_FAILED", "REVIEW_IN_PROGRESS"}


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bootstrap_zip(binary: Path) -> bytes:
    """The binary as `bootstrap` in a deterministic zip (fixed timestamp and mode)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o100755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with binary.open("rb") as src, archive.open(info, "w") as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                dst.write(chunk)
    return buffer.getvalue()


def functions_of(template: dict) -> dict[str, str]:
    """Each AWS::Serverless::Function's logical id -> the binary it runs."""
    out = {}
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties", {})
        if "InlineCode" in properties or "ImageUri" in properties:
            fail(f"function {name} uses InlineCode/ImageUri; the local deploy only handles CodeUri")
        binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        if not binary:
            fail(f"function {name} names no binary (Metadata.BuildProperties.Binary)")
        out[name] = binary
    if not out:
        fail("no AWS::Serverless::Function in the template")
    return out


def derive_template(template_path: Path, code: dict[str, dict]) -> dict:
    """template.yaml with every function's code pointed at its uploaded zip."""
    template = yaml_parse(template_path.read_text())
    if "AWS::Serverless-2016-10-31" not in json.dumps(template.get("Transform")):
        fail(f"{template_path} is not a SAM template (Transform: AWS::Serverless-2016-10-31)")
    template.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    for name, location in code.items():
        template["Resources"][name].setdefault("Properties", {})["CodeUri"] = location
    return template


class CannotUpdate(Exception):
    """LocalStack could not compute an update of the stack."""


class CreateCollided(Exception):
    """A stack creation failed only because functions it creates already existed (made by a retried
    call of that same creation; see Deployer.create)."""

    def __init__(self, functions: list[str]):
        super().__init__(", ".join(functions))
        self.functions = functions


class Deployer:
    def __init__(self, endpoint: str, region: str, stack: str):
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=120)
        session = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name=region
        )
        self.stack = stack
        self.region = region
        self.endpoint = endpoint
        self.cfn = session.client("cloudformation", endpoint_url=endpoint, config=config)
        self.s3 = session.client("s3", endpoint_url=endpoint, config=config)
        self.awslambda = session.client("lambda", endpoint_url=endpoint, config=config)

    # --- artifacts ------------------------------------------------------------------------------

    def ensure_bucket(self) -> None:
        try:
            self.s3.head_bucket(Bucket=ARTIFACTS_BUCKET)
        except ClientError:
            self.s3.create_bucket(Bucket=ARTIFACTS_BUCKET)

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=ARTIFACTS_BUCKET, Key=key)
            return True
        except ClientError:
            return False

    def upload_if_missing(self, key: str, body: bytes) -> None:
        if not self.exists(key):
            self.s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=key, Body=body)

    # --- stack ----------------------------------------------------------------------------------

    def describe(self) -> dict | None:
        try:
            stacks = self.cfn.describe_stacks(StackName=self.stack)["Stacks"]
        except ClientError as err:
            if "does not exist" in str(err):
                return None
            raise
        return stacks[0] if stacks else None

    def wait_stack(self, what: str) -> dict | None:
        deadline = time.monotonic() + DEPLOY_TIMEOUT_S
        while time.monotonic() < deadline:
            stack = self.describe()
            # REVIEW_IN_PROGRESS (a stack made by a change set never executed) is not an operation.
            status = stack["StackStatus"] if stack else ""
            if not status.endswith("_IN_PROGRESS") or status == "REVIEW_IN_PROGRESS":
                return stack
            time.sleep(1)
        fail(f"{what}: stack {self.stack} still in progress after {DEPLOY_TIMEOUT_S}s")
        return None

    def print_failures(self) -> list[str]:
        """Print the stack's failed resource events; returns their status reasons."""
        try:
            events = self.cfn.describe_stack_events(StackName=self.stack)["StackEvents"]
        except ClientError:
            return []
        reasons = []
        for event in reversed(events):
            if event.get("ResourceStatus", "").endswith("FAILED"):
                reason = event.get("ResourceStatusReason", "")
                reasons.append(reason)
                print(
                    f"  {event.get('LogicalResourceId')} ({event.get('ResourceType')}): "
                    f"{event.get('ResourceStatus')} {reason}",
                    file=sys.stderr,
                )
        return reasons

    def empty_buckets(self) -> None:
        """Empty the stack's buckets (local throwaway data), so that deleting the stack cannot fail."""
        resources = self.cfn.describe_stack_resources(StackName=self.stack)["StackResources"]
        for resource in resources:
            bucket = resource.get("PhysicalResourceId")
            if resource["ResourceType"] != "AWS::S3::Bucket" or not bucket:
                continue
            try:
                for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                    keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                    if keys:
                        self.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            except ClientError:
                pass

    def delete_stack(self, why: str) -> None:
        say(f"{why}: deleting stack {self.stack} before creating it again")
        try:
            self.empty_buckets()
        except ClientError:
            pass
        self.cfn.delete_stack(StackName=self.stack)
        stack = self.wait_stack("delete")
        if stack is not None and stack["StackStatus"] != "DELETE_COMPLETE":
            fail(f"could not delete stack {self.stack} ({stack['StackStatus']})")

    def template_source(self, template: dict, digest: str) -> dict[str, str]:
        body = json.dumps(template, separators=(",", ":"), sort_keys=True)
        if len(body.encode()) <= TEMPLATE_BODY_LIMIT:
            return {"TemplateBody": body}
        key = f"templates/{digest}.json"
        self.upload_if_missing(key, body.encode())
        return {"TemplateURL": f"{self.endpoint}/{ARTIFACTS_BUCKET}/{key}"}

    def change_set(self, kind: str, source: dict, parameters: dict[str, str], digest: str) -> bool:
        """Create and execute a change set of KIND (CREATE or UPDATE). Returns False when the change
        set has no changes. Raises CannotUpdate when LocalStack cannot compute an update."""
        name = f"resizer-local-{digest[:12]}-{int(time.time())}"
        say(f"{kind.lower()} stack {self.stack} (change set {name})")
        try:
            self.cfn.create_change_set(
                StackName=self.stack,
                ChangeSetName=name,
                ChangeSetType=kind,
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
                Capabilities=CAPABILITIES,
                **source,
            )
        except ClientError as err:
            if kind == "UPDATE" and err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
                code = err.response.get("Error", {}).get("Code", "error")
                raise CannotUpdate(f"CreateChangeSet answered {code}") from err
            raise
        deadline = time.monotonic() + DEPLOY_TIMEOUT_S
        while True:
            change_set = self.cfn.describe_change_set(StackName=self.stack, ChangeSetName=name)
            status = change_set.get("Status", "")
            if status == "CREATE_COMPLETE":
                break
            if status == "FAILED":
                reason = change_set.get("StatusReason", "")
                if "didn't contain changes" in reason or "No updates" in reason:
                    self.cfn.delete_change_set(StackName=self.stack, ChangeSetName=name)
                    return False
                if kind == "UPDATE":
                    raise CannotUpdate(reason)
                fail(f"change set {name} failed: {reason}")
            if time.monotonic() > deadline:
                fail(f"change set {name} not ready after {DEPLOY_TIMEOUT_S}s ({status})")
            time.sleep(0.5)

        self.cfn.execute_change_set(StackName=self.stack, ChangeSetName=name)
        stack = self.wait_stack("deploy")
        status = stack["StackStatus"] if stack else "gone"
        if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            reasons = self.print_failures()
            collided = sorted({m.group(1) for r in reasons for m in FUNCTION_EXISTS.finditer(r)})
            if kind == "CREATE" and collided:
                raise CreateCollided(collided)
            fail(f"stack {self.stack} ended in {status}")
        return True

    def create(self, source: dict, parameters: dict[str, str], digest: str) -> bool:
        """Create the stack, again (at most CREATE_ATTEMPTS times) when a creation collides with
        functions that it made itself.

        LocalStack creates functions one at a time (a process-wide lock around CreateFunction,
        which copies the code's zip through its S3) while CloudFormation asks for all of a stack's
        at once, through a boto3 client with the default configuration: it gives up on an answer
        after 60 s and sends the call again. On a busy host the last function's first call can, we
        infer, outlast that: it creates the function, and the second call is refused with "Function already exist", which rolls the
        stack back and leaves that function behind (seen in CI: SweepFunction of the us-west-2
        stack). Function names carry a random part, so a new attempt does not collide again; the
        leftover functions are deleted first."""
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                return self.change_set("CREATE", source, parameters, digest)
            except CreateCollided as err:
                if attempt == CREATE_ATTEMPTS:
                    fail(f"stack {self.stack}: {attempt} creations collided with existing functions ({err})")
                for name in err.functions:
                    self.delete_function(name)
                self.delete_stack(f"creation {attempt} collided with functions it had made ({err})")
        return False

    def delete_function(self, name: str) -> None:
        try:
            self.awslambda.delete_function(FunctionName=name)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise

    def deploy(self, template: dict, parameters: dict[str, str], digest: str) -> bool:
        """Create or update the stack. Returns False when nothing changed.

        LocalStack's CloudFormation engine cannot compute some updates (for example a Fn::FindInMap
        whose key is a Ref, which template.yaml uses for the queue's visibility timeout). The local
        stack holds only throwaway data, so it is then replaced: emptied, deleted and created again
        (its generated resource names change; stack.env follows)."""
        stack = self.wait_stack("previous operation")
        if stack is not None and stack["StackStatus"] in BROKEN_STATES:
            self.delete_stack(f"stack {self.stack} is {stack['StackStatus']}")
            stack = None
        source = self.template_source(template, digest)
        if stack is None or stack["StackStatus"] == "DELETE_COMPLETE":
            return self.create(source, parameters, digest)
        try:
            return self.change_set("UPDATE", source, parameters, digest)
        except CannotUpdate as err:
            reason = str(err).splitlines()[0][:160]
            self.delete_stack(f"LocalStack cannot update the stack in place ({reason})")
            return self.create(source, parameters, digest)

    def function_environment(self, function_name: str) -> dict[str, str]:
        config = self.awslambda.get_function_configuration(FunctionName=function_name)
        return dict(config.get("Environment", {}).get("Variables", {}))


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_outputs(deployer: Deployer, stack: dict, out_dir: Path) -> None:
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    if "ApiFunctionName" not in outputs:
        fail(f"stack {deployer.stack} lacks the output ApiFunctionName")
    write_atomically(out_dir / "stack-outputs.json", json.dumps(outputs, indent=2, sort_keys=True) + "\n")

    env: dict[str, str] = {
        "AWS_ENDPOINT_URL": deployer.endpoint,
        "AWS_REGION": deployer.region,
        "AWS_DEFAULT_REGION": deployer.region,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "RESIZER_STACK": deployer.stack,
    }
    # The functions' configuration (resource names, STAGE, limits, RUST_LOG) exactly as deployed, so
    # that tools and in-process tests see what the functions see.
    for name, value in sorted(deployer.function_environment(outputs["ApiFunctionName"]).items()):
        env.setdefault(name, value)

    lines = [
        f"# Generated by `make provision` from the outputs of the local stack {deployer.stack}. Do not edit.",
        "# Load with: source .local/stack.env",
    ]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    write_atomically(out_dir / "stack.env", "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--template", required=True, type=Path)
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--parameter", action="append", default=[], help="Key=Value (repeatable)")
    parser.add_argument("--bin-dir", required=True, type=Path, help="where the functions' binaries are built")
    parser.add_argument(
        "--sam-build-dir",
        type=Path,
        help="deploy `sam build`'s artifacts instead (<dir>/<logical id>/bootstrap, e.g. .aws-sam/build)",
    )
    args = parser.parse_args()

    parameters = dict(p.split("=", 1) for p in args.parameter)
    work = args.out_dir / "provision"
    work.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    deployer = Deployer(args.endpoint, args.region, args.stack)

    deployer.ensure_bucket()
    code: dict[str, dict] = {}
    for name, binary in sorted(functions_of(yaml_parse(args.template.read_text())).items()):
        path = args.sam_build_dir / name / "bootstrap" if args.sam_build_dir else args.bin_dir / binary
        if not path.is_file():
            fail(
                f"{path} not found: build the functions first"
                + (" (make package)" if args.sam_build_dir else " (cargo test --workspace --no-run)")
            )
        key = f"code/{binary}/{file_digest(path)[:20]}.zip"
        if not deployer.exists(key):
            say(f"uploading {binary} ({path.stat().st_size >> 20} MiB) as {key}")
            deployer.upload_if_missing(key, bootstrap_zip(path))
        code[name] = {"Bucket": ARTIFACTS_BUCKET, "Key": key}
    template = derive_template(args.template, code)
    derived = json.dumps(template, indent=1, sort_keys=True)
    digest = hashlib.sha256((derived + json.dumps(parameters, sort_keys=True)).encode()).hexdigest()
    write_atomically(work / "template.local.json", derived + "\n")

    state_file = work / "deployed.json"
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        state = {}
    stack = deployer.describe()
    unchanged = (
        stack is not None
        and stack["StackStatus"] in STABLE_STATES
        and state.get("stack_id") == stack["StackId"]
        and state.get("digest") == digest
    )
    if unchanged:
        say(f"stack {args.stack} is up to date (template and parameters unchanged): nothing to deploy")
    else:
        changed = deployer.deploy(template, parameters, digest)
        stack = deployer.describe()
        if stack is None:
            fail(f"stack {args.stack} vanished after deploy")
        write_atomically(state_file, json.dumps({"digest": digest, "stack_id": stack["StackId"]}) + "\n")
        if changed:
            say(f"stack {args.stack} is {stack['StackStatus']} in {time.monotonic() - started:.1f}s")
        else:
            say(f"stack {args.stack} had no changes: nothing deployed")

    write_outputs(deployer, stack, args.out_dir)
    say(f"outputs: {args.out_dir / 'stack.env'}, {args.out_dir / 'stack-outputs.json'}")


if __name__ == "__main__":
    main()
