# servelab: `make lab` surveys the seed's case hop by hop (sregistry's https setup on 8 vCPUs of the Opteron 6174,
# time-dilated, his CentOS 7 clients); `make test` runs every test.
# Sizes: IMAGE_SIZE=1.5GiB (or IMAGE_MIB=1536, a number of MiB, as before). This machine's own CPU instead of the
# seed's: `make lab PRESET=sregistry-2018-10 MACHINE=`.
VENV ?= .venv
BIN := $(VENV)/bin
IMAGE_MIB ?= 16
IMAGE_SIZE ?= $(IMAGE_MIB)MiB
PARALLEL ?= 5
REPEATS ?= 1
PRESET ?= sregistry-2018-10-https
# the seed's machine as the contest runs it: 8 vCPUs of opteron-6174 at k = 4 (every rate read back x 4), TLS 1.2
MACHINE ?= --set cpu.model=opteron-6174 --set machine.vcpus=8 --set machine.dilation=4 --set client.tls_offer=centos7

.PHONY: setup lab test unit integration bench bench-ci report down jupyter

setup:
	@bash scripts/setup.sh

lab: setup
	$(BIN)/labkit survey --preset $(PRESET) $(MACHINE) --image-size $(IMAGE_SIZE) --parallel $(PARALLEL) \
		--repeats $(REPEATS) --verify length

test:
	@EXTRA_APT_PKGS=chromium bash scripts/setup.sh
	$(BIN)/python -m pytest -q -p no:cacheprovider tests notebooks --nbval-lax --nbval-cell-timeout=600

# tests/unit starts no program (pure logic; tests/unit/conftest.py refuses a subprocess); tests/integration
# brings the real lab up (root) and is marked `integration` by its folder (tests/conftest.py)
unit: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

integration: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/integration

# every benchmark, each run to its end; the misses listed at the end and exit 1 on any (benchmarks/run.py)
bench: setup
	$(BIN)/python benchmarks/run.py all

# CI's share of the benchmarks, sized so that `make test` + this stay under 20 minutes on 2 cores: the pull
# client's and the capture's overhead and TLS's ratios, smaller and fewer (benchmarks/run.py's CI list); the rest
# (tuning, clients, storm, verdict matrix and stability, publish, scale) in `make bench`. The verdict matrix's CI
# subset runs in tests/integration/test_verdict_integration.py.
bench-ci: setup
	$(BIN)/python benchmarks/run.py ci

report: setup
	$(BIN)/labkit report --image-size $(IMAGE_SIZE)

down:
	$(BIN)/labkit down --all

jupyter: setup
	$(BIN)/jupyter lab --allow-root --notebook-dir . notebooks/00-start-here.ipynb
