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
down: ## Stop the local AWS that `make up` started (by PID; nothing else)
	@localstack/down.sh

.PHONY: status
status: ## Report the local AWS and the local stack
	@localstack/status.sh

.PHONY: provision
provision: ## Deploy template.yaml into the local AWS (stack resizer-local), write .local/stack.env
	@localstack/provision.sh

.PHONY: dev
dev: setup ## Install if needed, start the local AWS and provision it
	@localstack/up.sh
	@localstack/provision.sh
	@echo "Local AWS ready. Load its settings with: set -a; . $(STACK_ENV); set +a"

# --- checks --------------------------------------------------------------------------------------

.PHONY: test
test: setup ## Unit tests, then integration tests against the local AWS (started and stopped if not running)
	cargo test
	@# The integration tests also run the binaries (the `resizer` CLI and local gateway).
	cargo build --bins
	localstack/with-local-aws.sh cargo test -p resizer-integration-tests --no-fail-fast

.PHONY: lint
lint: ## rustfmt check, clippy -D warnings, sam validate --lint (cfn-lint) on template.yaml
	@tools/install.sh venv
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(TOOLS_ENV) $(TOOLS_BIN)/sam validate --lint --template template.yaml

# --- build ---------------------------------------------------------------------------------------

.PHONY: package
package: ## Build the three functions' deployment artifacts with sam build + cargo-lambda (ARCH=x86_64|arm64)
	@tools/install.sh
	$(TOOLS_ENV) $(TOOLS_BIN)/sam build --beta-features --template template.yaml \
		--parameter-overrides Architecture=$(ARCH)

# --- cleanup -------------------------------------------------------------------------------------

.PHONY: clean-local
clean-local: down ## Stop the local AWS and delete .local/ (installs, state, stack.env) and .aws-sam/
	rm -rf .local .aws-sam
