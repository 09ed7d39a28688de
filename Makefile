# `make book` builds the site in _build/html, `make test` runs every test, `make check` the fast ones;
# all set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# The lowest TensorFlow that pyproject.toml admits, with the lowest Keras it admits (tests/test_project.py checks them).
LOWEST_TF := tensorflow==2.16.2 keras==3.5.0
LOWEST_VENV := .venv-lowest-tf

.PHONY: book check test test-lowest-tf chapters chromium editor clean

# A virtual environment with p2p and the book's tools: .venv at the versions CI tests (constraints.txt), LOWEST_VENV
# at LOWEST_TF.
$(INSTALLED): PINS = -c constraints.txt
$(LOWEST_VENV)/.installed: PINS = $(LOWEST_TF)
%/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $*
	$*/bin/pip install --quiet --upgrade pip
	$*/bin/pip install --quiet $(PINS) -e ".[book]"
	touch $@

# Executes every chapter afresh (in book/, where their data/ and runs/ folders live).
book: $(INSTALLED) editor
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going

# Lint, then the fast unit tests (no chapters, site, benchmark or multi-process runs): under two minutes.
check: $(INSTALLED)
	$(BIN)/ruff check p2p tests book/_ext
	$(BIN)/pytest -m "not slow" tests

# Unit tests, papermill runs of the chapters, the site in headless Chromium, then nbval.
test: $(INSTALLED) chromium editor
	$(BIN)/pytest tests
	$(BIN)/pytest --nbval book/

# Re-executes the chapters in place, for committing them executed.
chapters: $(INSTALLED)
	cd book && for chapter in *.ipynb; do ../$(BIN)/jupyter-execute --inplace "$$chapter" || exit 1; done

# The fast unit tests on the lowest TensorFlow p2p supports, in an environment of their own (not part of CI).
test-lowest-tf: $(LOWEST_VENV)/.installed
	$(LOWEST_VENV)/bin/pytest -m "not slow" tests

# The site's JavaScript from npm (pinned in package-lock.json), then the Play page's in-browser editor: TensorFlow.js
# copied beside it and the l1-cgan book run exported for it (neither is committed).
EDITOR := book/_static/editor
TFJS := node_modules/@tensorflow
editor: $(INSTALLED)
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq npm)
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(EDITOR)/vendor
	cp $(TFJS)/tfjs-core/dist/tf-core.min.js $(TFJS)/tfjs-backend-cpu/dist/tf-backend-cpu.min.js \
	   $(TFJS)/tfjs-backend-wasm/dist/tf-backend-wasm.min.js $(TFJS)/tfjs-backend-wasm/dist/*.wasm $(EDITOR)/vendor/
	$(BIN)/python -m p2p export l1-cgan $(EDITOR)/model

# The site test drives Debian's Chromium.
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

clean:
	rm -rf _build $(VENV) $(LOWEST_VENV) book/data book/runs book/bad-data node_modules $(EDITOR)/vendor $(EDITOR)/model
