# LogWarden — `make serve` and `make test` are the whole quickstart.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

NODE_DEPS := tests/node/node_modules/.package-lock.json

.PHONY: venv system-deps node-deps test lint format serve protos check-protos client-dist bench clean splunk-app \
	appinspect-venv splunk-appinspect

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

system-deps:
	@.ci/system-deps

# npm packages the tests use as real third-party peers (@fluent-org/logger: a Forward client and server)
node-deps: $(NODE_DEPS)

$(NODE_DEPS): tests/node/package.json tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund --silent

test: $(STAMP) system-deps node-deps splunk-appinspect
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

protos: $(STAMP)
	$(PY) -m logwarden.protos.codegen

check-protos: $(STAMP)
	$(PY) -m logwarden.protos.codegen --check

# `make serve`: train the bundled default model on generated logs if absent, then serve it on localhost.
MODEL       ?= models/default
GRPC_PORT   ?= 50051
HTTP_PORT   ?= 8080
DEMO_DATA   := data/default

serve: $(STAMP)
	@if [ -z "$$(ls -d $(MODEL)/v* 2>/dev/null)" ]; then \
		echo "No model under $(MODEL): training the default model on generated HDFS-style logs (about a minute)"; \
		$(VENV)/bin/logwarden generate --out $(DEMO_DATA)/train.log --sessions 1500 --seed 1 && \
		$(VENV)/bin/logwarden generate --out $(DEMO_DATA)/sample.log --sessions 50 --anomaly-rate 0.2 --seed 2 && \
		$(VENV)/bin/logwarden train $(DEMO_DATA)/train.log --format hdfs --out $(MODEL) --epochs 20 || exit 1; \
	fi
	@echo ""
	@echo "LogWarden is starting: gRPC on 127.0.0.1:$(GRPC_PORT), HTTP/JSON on http://127.0.0.1:$(HTTP_PORT)"
	@echo "  curl -s http://127.0.0.1:$(HTTP_PORT)/v1/score -H 'Content-Type: application/json' \\"
	@echo "       -d '{\"events\": [{\"id\": \"1\", \"message\": \"081109 203615 148 INFO dfs.DataNode: Receiving block blk_1 src: /10.0.0.1:50010 dest: /10.0.0.2:50010\"}]}'"
	@echo "  API: http://127.0.0.1:$(HTTP_PORT)/openapi.json   metrics: http://127.0.0.1:$(HTTP_PORT)/metrics   (Ctrl-C stops)"
	@echo ""
	$(VENV)/bin/logwarden serve --model $(MODEL) --host 127.0.0.1 --grpc-port $(GRPC_PORT) --http-port $(HTTP_PORT) \
		--label-db $(MODEL)/labels.sqlite

# the client library alone (standard library only, Python >= 3.9): dist/logwarden_client-*.whl
client-dist: $(STAMP)
	rm -rf build/client-dist && mkdir -p build dist && cp -r integrations/client build/client-dist
	$(PY) -m pip wheel --quiet --no-build-isolation --no-deps -w dist build/client-dist

# The Splunk app (plugins/splunk): `make splunk-app` builds dist/ta_logwarden-<version>.tgz; AppInspect (cloud
# checks) runs on it in its own virtualenv, since it pins older structlog, lxml and others.
AI_VENV  := .venv-appinspect
AI_STAMP := $(AI_VENV)/.installed

appinspect-venv: $(AI_STAMP)

$(AI_STAMP): plugins/splunk/requirements-appinspect.lock
	$(PYTHON) -m venv $(AI_VENV)
	$(AI_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AI_VENV)/bin/python -m pip install --quiet -r plugins/splunk/requirements-appinspect.lock
	touch $(AI_STAMP)

splunk-app: $(STAMP) $(AI_STAMP)
	rm -rf dist/ta_logwarden dist/ta_logwarden-*.tgz
	$(PY) plugins/splunk/build.py --out dist --slim $(AI_VENV)/bin/slim

splunk-appinspect: splunk-app
	$(PY) plugins/splunk/appinspect.py --appinspect $(AI_VENV)/bin/splunk-appinspect dist/ta_logwarden-*.tgz

bench: $(STAMP)
	$(PY) benchmarks/parsing.py
	$(PY) benchmarks/hdfs.py
	$(PY) benchmarks/scoring.py

clean:
	rm -rf $(VENV) $(AI_VENV) build dist *.egg-info .pytest_cache .ruff_cache
