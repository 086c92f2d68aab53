# sandbox — build, test and bootstrap targets. `make help` lists them.

CARGO ?= cargo
PREFIX ?= $(HOME)/.cargo

.PHONY: help build test lint engine install man bench images bases

help:
	@echo "make build    release build into target/release/sandbox"
	@echo "make test     unit, CLI and engine tests (needs a running engine: make engine)"
	@echo "make lint     rustfmt and clippy, as CI runs them"
	@echo "make engine   Debian/Ubuntu, as root: install docker.io (and test tools), start dockerd"
	@echo "make install  cargo install into $(PREFIX)/bin"
	@echo "make man      the manual pages, into target/man/ (sandbox.1, sandbox-run.1, ...)"
	@echo "make bench    sandbox against docker run; writes bench/results.md and .svg"
	@echo "make images   the coding agents' images (AGENTS=claude for one; BASES=local without a registry)"
	@echo "make bases    the local bases BASES=local builds on, from Debian's mirror and npm (FORCE=1 remakes them)"

build:
	$(CARGO) build --locked --release

# The engine tests run twice: cold, then with every run warm (--warm), which
# must behave the same. Warm containers prepared for test workspaces go last.
test:
	$(CARGO) test --locked
	SANDBOX_TEST_WARM=1 $(CARGO) test --locked --test engine
	@docker ps -a --filter name=sandbox-warm- --format '{{.ID}} {{.Label "dev.sandbox.workspace"}}' \
		| awk '$$2 ~ /sandbox-test-/ {print $$1}' | xargs -r docker rm -f >/dev/null

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

# The one place that gets a machine from nothing to a running engine: CI
# calls it, and so can a user on Debian or Ubuntu (as root). The tests build
# their image from busybox-static and pull only from a docker-registry they
# run on loopback: nothing comes from outside. runsc (gVisor) is registered as
# a runtime, in /etc/docker/daemon.json when that file does not exist yet.
# mmdebstrap, with Debian's keyring (which an Ubuntu host lacks), makes the
# agents' local bases (make images BASES=local).
ENGINE_PACKAGES = docker.io git busybox-static curl openssl python3 python3-venv docker-registry runsc iproute2 podman catatonit openssh-server openssh-client mmdebstrap debian-archive-keyring
DAEMON_JSON = /etc/docker/daemon.json

engine:
	@if ! command -v dockerd >/dev/null || ! dpkg -s $(ENGINE_PACKAGES) >/dev/null 2>&1; then \
		echo "installing $(ENGINE_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(ENGINE_PACKAGES) >/dev/null; \
	fi
	@if [ ! -e $(DAEMON_JSON) ]; then \
		mkdir -p $$(dirname $(DAEMON_JSON)); \
		printf '{\n  "runtimes": {\n    "runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]}\n  }\n}\n' > $(DAEMON_JSON); \
		echo "registered runsc in $(DAEMON_JSON)"; \
		if pidof dockerd >/dev/null; then kill -HUP $$(pidof dockerd); sleep 1; fi; \
	fi
	@if ! docker info >/dev/null 2>&1; then \
		echo "starting dockerd (log: /var/log/dockerd.log)"; \
		setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null & \
		for i in $$(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done; \
	fi
	@docker info --format 'engine {{.ServerVersion}} ready ({{.Driver}}, cgroup v{{.CgroupVersion}})' \
		|| { echo "dockerd did not come up; see /var/log/dockerd.log"; tail -n 20 /var/log/dockerd.log; exit 1; }

install:
	$(CARGO) install --locked --path . --root $(PREFIX)

# A page per subcommand (sandbox-run.1, sandbox-config-show.1, ...); pages of
# subcommands that no longer exist go with the directory.
man:
	rm -rf target/man
	$(CARGO) run --locked --quiet -- man --out-dir target/man

# Needs a running engine (make engine). BENCH_ARGS=--quick for a short run.
bench:
	python3 bench/bench.py $(BENCH_ARGS)

# The coding agents' images, one per agent of the agent table (AGENTS="claude
# codex" for some). One agent's failed build leaves the others to be built;
# the target fails at the end, naming the agents whose build failed.
AGENT_TABLE = images/agents/agents.txt
AGENTS ?= $(shell awk -f images/agents/docker-build.awk $(AGENT_TABLE))
DOCKER ?= docker

# What they are built on: the published Node and Python images (BASES=published),
# or bases made here from Debian's mirror and the npm registry (BASES=local),
# for a machine that reaches no container registry: CI, or an air-gapped one.
# A local base is made when missing (FORCE=1: made again); it trusts the
# certificate authorities of HOST_CA_BUNDLE, the host's. images/README.md.
BASES ?= published
DEBIAN_BASE = sandbox-agents/base-debian:bookworm
LOCAL_BASES = node=sandbox-agents/base-node:22.23.3-bookworm python=sandbox-agents/base-python:3.11.2-bookworm
MMDEBSTRAP ?= mmdebstrap
HOST_CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
DEBIAN_MIRROR ?= http://deb.debian.org/debian
DEBIAN_SECURITY_MIRROR ?= http://deb.debian.org/debian-security
IMAGES_ENV = DOCKER='$(DOCKER)' BASES='$(BASES)' FORCE='$(FORCE)' \
	DEBIAN_BASE='$(DEBIAN_BASE)' LOCAL_BASES='$(LOCAL_BASES)' MMDEBSTRAP='$(MMDEBSTRAP)' \
	HOST_CA_BUNDLE='$(HOST_CA_BUNDLE)' DEBIAN_MIRROR='$(DEBIAN_MIRROR)' \
	DEBIAN_SECURITY_MIRROR='$(DEBIAN_SECURITY_MIRROR)'

images:
	@$(IMAGES_ENV) images/build.sh agents $(AGENTS)

bases:
	@$(IMAGES_ENV) images/build.sh bases
