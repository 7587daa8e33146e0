"""Unit tests of localstack/provision.py's Deployer against fake CloudFormation and Lambda clients
(no LocalStack). Run by localstack/test-provision.sh, which `make test` calls."""

from __future__ import annotations

import contextlib
import io
import sys
import unittest
from pathlib import Path

from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import provision  # noqa: E402


def not_found(operation: str, code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class FakeCloud:
    """CloudFormation and Lambda as the provisioner sees them. Each creation's outcome is taken
    from `outcomes` in order: None succeeds, a string is a failed resource's status reason."""

    def __init__(self, outcomes: list[str | None]):
        self.outcomes = outcomes
        self.stack: dict | None = None
        self.events: list[dict] = []
        self.functions: set[str] = set()
        self.calls: list[str] = []
        self.creations = 0

    # --- cloudformation ---
    def describe_stacks(self, StackName):
        if self.stack is None:
            raise not_found("DescribeStacks", "ValidationError", f"Stack with id {StackName} does not exist")
        return {"Stacks": [dict(self.stack)]}

    def create_change_set(self, StackName, ChangeSetName, ChangeSetType, **_):
        self.calls.append(f"create_change_set {ChangeSetType}")
        if ChangeSetType == "CREATE":
            self.stack = {"StackName": StackName, "StackId": "id", "StackStatus": "REVIEW_IN_PROGRESS"}

    def describe_change_set(self, StackName, ChangeSetName):
        return {"Status": "CREATE_COMPLETE"}

    def execute_change_set(self, StackName, ChangeSetName):
        self.calls.append("execute_change_set")
        outcome = self.outcomes[self.creations]
        self.creations += 1
        if outcome is None:
            self.stack["StackStatus"] = "CREATE_COMPLETE"
            self.events = []
        else:
            self.stack["StackStatus"] = "ROLLBACK_COMPLETE"
            self.events = [
                {"LogicalResourceId": "Stack", "ResourceStatus": "CREATE_FAILED", "ResourceStatusReason": ""},
                {"LogicalResourceId": "Fn", "ResourceStatus": "CREATE_FAILED", "ResourceStatusReason": outcome},
            ]

    def describe_stack_events(self, StackName):
        return {"StackEvents": list(self.events)}

    def describe_stack_resources(self, StackName):
        return {"StackResources": []}

    def delete_stack(self, StackName):
        self.calls.append("delete_stack")
        self.stack = None

    # --- lambda ---
    def delete_function(self, FunctionName):
        self.calls.append(f"delete_function {FunctionName}")
        if FunctionName not in self.functions:
            raise not_found("DeleteFunction", "ResourceNotFoundException", "Function not found")
        self.functions.remove(FunctionName)


def deploy(cloud: FakeCloud) -> bool:
    """Deployer.deploy on the fake, its progress and error lines kept out of the test output (a
    CI log would show the expected failures as if they were real)."""
    with contextlib.redirect_stderr(io.StringIO()):
        return deployer_on(cloud).deploy({}, {}, "0" * 64)


def deployer_on(cloud: FakeCloud) -> provision.Deployer:
    deployer = provision.Deployer.__new__(provision.Deployer)
    deployer.stack = "resizer-local"
    deployer.region = "us-west-2"
    deployer.endpoint = "http://127.0.0.1:1"
    deployer.cfn = cloud
    deployer.s3 = cloud
    deployer.awslambda = cloud
    return deployer


COLLIDED = (
    "Resource provider operation failed: An error occurred (ResourceConflictException) when calling "
    "the CreateFunction operation: Function already exist: resizer-local-SweepFunction-3ce88046"
)


class CreateTest(unittest.TestCase):
    def test_a_creation_that_collides_with_a_function_it_made_is_made_again(self):
        # CI, 2026-12-01: the us-west-2 stack rolled back on this reason and `make test` failed.
        cloud = FakeCloud([COLLIDED, None])
        cloud.functions.add("resizer-local-SweepFunction-3ce88046")

        changed = deploy(cloud)

        self.assertTrue(changed)
        self.assertEqual(cloud.stack["StackStatus"], "CREATE_COMPLETE")
        self.assertEqual(cloud.creations, 2)
        self.assertNotIn("resizer-local-SweepFunction-3ce88046", cloud.functions, "the leftover is deleted")
        self.assertEqual(
            cloud.calls,
            [
                "create_change_set CREATE",
                "execute_change_set",
                "delete_function resizer-local-SweepFunction-3ce88046",
                "delete_stack",
                "create_change_set CREATE",
                "execute_change_set",
            ],
        )

    def test_collisions_are_retried_a_bounded_number_of_times(self):
        cloud = FakeCloud([COLLIDED] * provision.CREATE_ATTEMPTS + [None])

        with self.assertRaises(SystemExit) as exit_:
            deploy(cloud)

        self.assertEqual(exit_.exception.code, 1)
        self.assertEqual(cloud.creations, provision.CREATE_ATTEMPTS)

    def test_any_other_failed_creation_fails_at_once(self):
        cloud = FakeCloud(["Template error: instance of Fn::GetAtt references undefined resource", None])

        with self.assertRaises(SystemExit):
            deploy(cloud)

        self.assertEqual(cloud.creations, 1)
        self.assertNotIn("delete_stack", cloud.calls)


if __name__ == "__main__":
    unittest.main()
