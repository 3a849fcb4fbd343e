# mlperf-edge: two commands on a fresh machine.
#   make demo   creates .venv, installs, runs the whole loop here, prints the results table
#   make test   installs what the tests need (Mosquitto, PostgreSQL, Docker engine,
#               docker-registry, debootstrap, qemu-user-static), starts dockerd if needed, and
#               runs them all but the board images (make test-boards: the arm64 images under
#               qemu; CI runs both, see below)
#   make bench  performance benchmarks (ratios, not assertions)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-boards bench test-deps clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[all,test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mlperf-controller demo --runs 2

# Real parts the integration tests start themselves on free loopback ports.
test-deps:
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || \
	  (apt-get install -y -qq mosquitto >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq mosquitto))
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  (apt-get install -y -qq postgresql >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq postgresql))
	@# Container tests: Debian's engine (20.10), registry and debootstrap (base image, no pulls);
	@# the report test renders its page in Debian's headless chromium; board images (arm64)
	@# build and run under qemu-user-static (the suite registers it with binfmt_misc).
	@for pkg in dockerd:docker.io docker-registry:docker-registry debootstrap:debootstrap \
	  chromium:chromium qemu-aarch64-static:qemu-user-static update-binfmts:binfmt-support; do \
	  command -v $${pkg%%:*} >/dev/null 2>&1 || test -x /usr/sbin/$${pkg%%:*} || \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $${pkg#*:} >/dev/null 2>&1 || \
	   (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $${pkg#*:})) \
	  || exit 1; done
	@docker info >/dev/null 2>&1 || (setsid dockerd >/var/log/mlperf-dockerd.log 2>&1 & \
	  for i in $$(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done; \
	  docker info >/dev/null 2>&1 || (echo "dockerd did not start: /var/log/mlperf-dockerd.log" >&2; exit 1))

# pytest exit code 5 means it collected no tests: that is a broken suite, not a pass.
test: $(STAMP) test-deps
	@$(BIN)/python -m pytest -q -m "not boards"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; \
	exit $$rc

# The board images (arm64 under qemu: the Raspberry Pi image, the Jetson CPU image, an
# emulated NCF smoke job from a sideloaded tarball) run in their own target, which CI also
# runs (.ci/run), because the whole suite with them does not stay under 30 minutes here even
# on a warm cache: 36 min measured on 2 cores (then 35 min without them, 2 min 20 s alone;
# with the multi-node tests since: 39 min without them, 2 min 4 s alone).
# Cold they add ~13 min once (arm64 base 5.5 min + image 7.5 min under qemu); the base image
# stays in the engine and the wheels in ~/.cache/mlperf-edge, so the next run is warm.
test-boards: $(STAMP) test-deps
	@$(BIN)/python -m pytest -q -m boards tests/containers; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no board tests: failing" >&2; exit 1; fi; \
	exit $$rc

bench: $(STAMP)
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
