# Resizer: developer entry points. `make help` lists them.
#
# Everything installed lives under .local/ (gitignored) and is pinned: see tools/ and localstack/.
# The two commands a new user needs: `make dev` (local AWS up and provisioned) and `make test`.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# Function architecture for `make package` (a template parameter): x86_64 or arm64.
ARCH ?= x86_64

TOOLS_BIN := $(CURDIR)/.local/tools/venv/bin
# sam and cargo-lambda need the tools venv on PATH (cargo-lambda finds zig there).
TOOLS_ENV := PATH="$(TOOLS_BIN):$$PATH" SAM_CLI_TELEMETRY=0
STACK_ENV := .local/stack.env

.PHONY: help
help: ## List the targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  make %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

# --- install -------------------------------------------------------------------------------------

.PHONY: setup
setup: ## Install everything pinned and idempotently: cmake/nasm (apt, when missing), tools venv, local AWS
	@tools/install.sh
	@localstack/install.sh

# --- local AWS -----------------------------------------------------------------------------------

.PHONY: up
up: ## Start the local AWS (LocalStack, host mode) on 127.0.0.1:4566; no-op when it runs
	@localstack/up.sh

.PHONY: down
down: ## Stop the local gateway and the local AWS that `make dev`/`make up` started (by PID; nothing else)
	@scripts/gateway.sh stop
	@localstack/down.sh

.PHONY: status
status: ## Report the local AWS, the local stack and the local gateway
	@localstack/status.sh
	@scripts/gateway.sh status

.PHONY: provision
provision: ## Deploy template.yaml into the local AWS (stack resizer-local), write .local/stack.env
	@localstack/provision.sh

.PHONY: dev
dev: setup build ## Install if needed, build, start the local AWS, deploy the stack with the real functions, serve the API on 127.0.0.1:3000
	@localstack/up.sh
	@localstack/provision.sh
	@RESIZER_DEV_NO_BUILD=1 scripts/gateway.sh start

.PHONY: logs
logs: ## Follow the functions' logs from the local CloudWatch Logs, each line tagged with its function
	@localstack/logs.sh follow

.PHONY: cold-starts
cold-starts: ## Summarise the functions' cold starts (Init Duration of their REPORT lines) in the local stack
	@localstack/logs.sh cold-starts

# --- checks --------------------------------------------------------------------------------------

.PHONY: build
build: ## Build the four function binaries and the resizer CLI for this host (and every test)
	@# One cargo invocation builds every test target, the functions' binaries (their cold-start
	@# tests need them) and the `resizer` binary, with one feature set: separate invocations
	@# rebuilt the AWS SDK up to three times. The dev profile builds quickly and optimises the
	@# engine and codecs (Cargo.toml); the local stack deploys these binaries.
	cargo test --workspace --no-run

.PHONY: test
test: setup build ## Unit and integration tests, against the local AWS running the real functions (started and stopped if not running)
	localstack/test-provision.sh
	RESIZER_EXTRA_REGIONS=us-west-2 localstack/with-local-aws.sh bash -c 'cargo test --workspace --no-fail-fast; s=$$?; \
		RESIZER_DEV_NO_BUILD=1 scripts/api-fuzz.sh || s=1; exit $$s'

# The chaos deploy's template parameters, over the local ones of localstack/provision.sh (whose
# retry path is already short: 2 receives, 2-20 s backoff, 15-minute job age). ResizeTimeout=30
# (conversion deadline 27 s, visibility timeout 180 s) because the conversion deadline is wall
# time: on a 2-core host shared with builds (load average 25 seen) a 1 s-CPU AVIF conversion
# overran the 10 s stack's 6.5 s deadline and failed a good job, which is the host's fault, not
# the fault under test. MaxJobAgeSeconds=3600 (production: a day): the 15-minute local bound would
# expire a backlog that a 10-minute outage plus the drain after it brings close to it.
# CHAOS=<name filter> runs some scenarios only.
CHAOS_PARAMETERS ?= ResizeTimeout=30 MaxJobAgeSeconds=3600

.PHONY: chaos
chaos: setup build ## The chaos suite: faults between the functions and the local AWS, killed processes, a flood (~45 min; docs/reliability.md)
	s=0; cargo test -p resizer-faults -- --include-ignored || s=1; \
	RESIZER_PROVISION_PARAMETERS="$(CHAOS_PARAMETERS)" localstack/with-local-aws.sh scripts/chaos.sh $(CHAOS) || s=1; \
	exit $$s

.PHONY: test-executor
test-executor: ## Tests of the LocalStack process executor (localstack/process-executor), with a LocalStack of their own
	@localstack/test-executor.sh

.PHONY: fuzz-api
fuzz-api: setup ## Schemathesis against a local gateway, from openapi.yaml (N=examples per operation, default 100)
	localstack/with-local-aws.sh scripts/api-fuzz.sh $(or $(N),100)

.PHONY: load
load: setup build ## The load run: 2,000 real photos through the deployed functions on the local AWS (not in CI; ~19 min)
	localstack/with-local-aws.sh bench/load.sh

.PHONY: usage-scale
usage-scale: setup build ## Metering scale run: ITEMS raw usage items (default 1,000,000) of CUSTOMERS (5,000) closed by SLICES (2) deployed aggregate-slice invocations; report for docs/capacity.md (not in CI; ~33 min)
	@# `make build` built the binary with the workspace's features (a `cargo run -p` would not).
	@# SLICES: DynamoDB Local behind LocalStack times page requests out at 4 slices at once (docs/capacity.md).
	localstack/with-local-aws.sh target/debug/usage_scale \
		--items $(or $(ITEMS),1000000) --customers $(or $(CUSTOMERS),5000) --shards $(or $(SHARDS),32) \
		--slices $(or $(SLICES),2)

.PHONY: lint
lint: deny ## rustfmt check, clippy -D warnings, sam validate --lint (cfn-lint) on template.yaml, cargo-deny
	@tools/install.sh venv
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(TOOLS_ENV) $(TOOLS_BIN)/sam validate --lint --template template.yaml

CARGO_DENY_VERSION := 0.20.2
CARGO_DENY := .local/cargo-deny/bin/cargo-deny

.PHONY: deny
deny: ## cargo-deny (pinned; built into .local/ on first use) on deny.toml: licences, bans, sources
	@if ! { [[ -x $(CARGO_DENY) ]] && $(CARGO_DENY) --version | grep -qx "cargo-deny $(CARGO_DENY_VERSION)"; }; then \
		echo "==> building cargo-deny $(CARGO_DENY_VERSION) into .local/cargo-deny (once)"; \
		cargo install --locked --quiet --root .local/cargo-deny cargo-deny@$(CARGO_DENY_VERSION); \
	fi
	$(CARGO_DENY) --workspace check --hide-inclusion-graph licenses bans sources

.PHONY: deny-advisories
deny-advisories: deny ## cargo-deny's RustSec advisories check (fetches the advisory database from GitHub)
	$(CARGO_DENY) --workspace check advisories

# --- build ---------------------------------------------------------------------------------------

.PHONY: package
package: ## Build the four functions' deployment artifacts with sam build + cargo-lambda (ARCH=x86_64|arm64)
	@tools/install.sh
	@if [[ "$(ARCH)" == arm64 ]]; then tools/install.sh arm64; fi
	$(TOOLS_ENV) $(TOOLS_BIN)/sam build --beta-features --template template.yaml \
		--parameter-overrides Architecture=$(ARCH)

.PHONY: smoke-arm64
smoke-arm64: setup build ## Package for arm64 (make package ARCH=arm64) and convert images through those functions under qemu-user, in a local AWS of its own (not in CI)
	@$(MAKE) package ARCH=arm64
	@scripts/smoke-arm64.sh

# --- cleanup -------------------------------------------------------------------------------------

.PHONY: clean-local
clean-local: down ## Stop the local AWS and delete .local/ (installs, state, stack.env) and .aws-sam/
	rm -rf .local .aws-sam
