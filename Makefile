# talkgate: `make run` serves, `make test` runs every test. Both build .venv on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HASH   := $(shell cat pyproject.toml package.json package-lock.json 2>/dev/null | sha1sum | cut -c1-12)
RUN_STAMP  := $(VENV)/.run-$(HASH)
TEST_STAMP := $(VENV)/.test-$(HASH)

.PHONY: run test client test-unit test-relay-slow-paths test-hostile lint bench bench-pin soak cluster clean system-deps

# npm ci in folder $(1) (extra flags $(2)) when it has a lock file. A node_modules that is a link
# (a git worktree sharing another checkout's modules) is left alone: npm ci would empty the
# linked folder, under every other checkout that uses it.
npm_ci = if [ ! -f $(1)/package-lock.json ]; then :; \
	elif [ -L $(1)/node_modules ]; then echo "$(1)/node_modules is a link to another checkout's: not reinstalled here"; \
	else cd $(1) && npm ci $(2) --no-audit --no-fund --loglevel=error; fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# `make run` installs the page's npm dependencies only; `make test` also the devDependencies, which
# only the browser tests use (ElevenLabs' official client).
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@$(call npm_ci,.,--omit=dev)
	rm -f $(VENV)/.run-*; touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	@$(call npm_ci,.,)
	rm -f $(VENV)/.test-* $(VENV)/.run-*; touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/talkgate db upgrade
	$(BIN)/talkgate serve

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# The browser tests drive Debian's Chromium with a fake microphone fed from espeak-ng speech; the
# cluster test and `make cluster` put HAProxy in front of two nodes.
# Installed here when missing and this user may (root with apt-get); otherwise say how.
system-deps:
	@if [ -x /usr/lib/chromium/chromium ] && command -v espeak-ng >/dev/null && \
		[ -x /usr/sbin/haproxy ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends chromium espeak-ng haproxy; \
	else \
		echo "browser tests need Debian's chromium and espeak-ng, the cluster test haproxy:"; \
		echo "  sudo apt-get install chromium espeak-ng haproxy"; \
		echo "(without them they skip, except with CI=true, where they fail)"; \
	fi

# The relay's tests again with every fast path off (talkgate/fastpaths): the libraries' own paths
# must relay the same bytes and give the same errors.
RELAY_TESTS := tests/web/test_relay_*.py tests/web/test_audio_shortcut.py tests/web/test_engine_loop.py \
	tests/hostile/test_wire_frames.py tests/hostile/test_socket_events.py

# The JavaScript client package (clients/js): its own npm ci (again only when its lock file
# changes), the TypeScript build, its unit tests (vitest) and the tarball `npm pack` makes there.
# `make run` needs none of it.
CLIENT := clients/js
$(CLIENT)/node_modules/.package-lock.json: $(CLIENT)/package.json $(CLIENT)/package-lock.json
	@$(call npm_ci,$(CLIENT),)

client: $(CLIENT)/node_modules/.package-lock.json
	cd $(CLIENT) && npm run build && npm test && npm pack --loglevel=error

test: lint system-deps client
	$(BIN)/pytest $(PYTEST_ARGS)
	TALKGATE_FASTPATHS=off $(BIN)/pytest $(RELAY_TESTS) $(PYTEST_ARGS)

test-relay-slow-paths: $(TEST_STAMP)
	TALKGATE_FASTPATHS=off $(BIN)/pytest $(RELAY_TESTS) $(PYTEST_ARGS)

# The fast layer alone: pure code and fakes, no sockets, servers or databases (`unit` marker), in
# seconds. `-m realtime` selects the tests paced in real time.
test-unit: $(TEST_STAMP)
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

# The hostile-input suites with many more examples (and fresh random ones each run).
test-hostile: $(TEST_STAMP)
	TALKGATE_HOSTILE_EXAMPLES=2000 TALKGATE_HOSTILE_RANDOM=1 $(BIN)/pytest tests/hostile $(PYTEST_ARGS)

# bench/relay.py's Node comparison relay (socket.io 4 + ws): its own pinned packages in bench/node,
# installed only for the benchmarks (again only when its lock file changes); `make run` needs none.
BENCH_NODE := bench/node
$(BENCH_NODE)/node_modules/.package-lock.json: $(BENCH_NODE)/package.json $(BENCH_NODE)/package-lock.json
	@$(call npm_ci,$(BENCH_NODE),)

bench: $(TEST_STAMP) $(BENCH_NODE)/node_modules/.package-lock.json
	$(BIN)/python bench/relay.py
	$(BIN)/python bench/recorder.py

# Capacity per core: each relay on a core of its own, the session count bisected (docs/benchmarks.md).
bench-pin: $(TEST_STAMP) $(BENCH_NODE)/node_modules/.package-lock.json
	$(BIN)/python bench/relay.py --pin $(PIN_ARGS)

# Two nodes behind HAProxy on PostgreSQL (a cluster of its own: pg_createcluster, so root), Redis
# and moto_server, with a node killed and the services restarted mid-call (docs/deployment.md).
cluster: $(TEST_STAMP) system-deps
	$(BIN)/python bench/cluster.py $(CLUSTER_ARGS)

clean:
	rm -rf $(VENV) node_modules $(BENCH_NODE)/node_modules data .pytest_cache $(CLIENT)/node_modules $(CLIENT)/dist $(CLIENT)/*.tgz
