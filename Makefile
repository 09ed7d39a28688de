# `make book` builds the site in _build/html, `make test` runs every test, `make check` the fast ones;
# all set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# The lowest TensorFlow that pyproject.toml admits, with the lowest Keras it admits (tests/test_project.py checks them).
LOWEST_TF := tensorflow==2.16.2 keras==3.5.0
LOWEST_VENV := .venv-lowest-tf

.PHONY: book check test test-lowest-tf chapters chromium npm editor clean

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
book: npm $(INSTALLED) editor
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going

# Lint, then the fast unit tests (no chapters, site, benchmark or multi-process runs): under two minutes.
check: $(INSTALLED)
	$(BIN)/ruff check p2p tests book/_ext book/conftest.py book/prose_numbers.py
	$(BIN)/pytest -m "not slow" tests

# The unit tests (the site in headless Chromium among them), then nbval on every chapter with its checks.
test: chromium npm $(INSTALLED) editor
	$(BIN)/pytest tests
	$(BIN)/pytest --nbval book/

# Re-executes the chapters in place, for committing them executed; from no run folders, as on a fresh clone (a run
# folder left from an earlier execution would be resumed, finished, and its training missing from the outputs).
chapters: $(INSTALLED)
	rm -rf book/runs
	cd book && for chapter in *.ipynb; do ../$(BIN)/jupyter-execute --inplace "$$chapter" || exit 1; done

# The fast unit tests on the lowest TensorFlow p2p supports, in an environment of their own (not part of CI).
test-lowest-tf: $(LOWEST_VENV)/.installed
	$(LOWEST_VENV)/bin/pytest -m "not slow" tests

# The site's JavaScript from npm (pinned in package-lock.json), then the Play page's in-browser editor: TensorFlow.js
# copied beside it and the l1-cgan book run exported for it (neither is committed).
EDITOR := book/_static/editor
TFJS := node_modules/@tensorflow
editor: npm $(INSTALLED)
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(EDITOR)/vendor
	cp $(TFJS)/tfjs-core/dist/tf-core.min.js $(TFJS)/tfjs-backend-cpu/dist/tf-backend-cpu.min.js \
	   $(TFJS)/tfjs-backend-wasm/dist/tf-backend-wasm.min.js $(TFJS)/tfjs-backend-wasm/dist/*.wasm $(EDITOR)/vendor/
	$(BIN)/python -m p2p export l1-cgan $(EDITOR)/model

# The site and editor tests drive a Chromium-family browser: CHROMIUM (a path, or a name on the PATH) when set, else
# the first of BROWSERS on the PATH or installed (tests/conftest.py finds it from this same list); exported to the tests.
BROWSERS := chromium chromium-browser google-chrome google-chrome-stable chrome
BROWSERS += "/Applications/Chromium.app/Contents/MacOS/Chromium"
BROWSERS += "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"
ifeq ($(strip $(CHROMIUM)),)
CHROMIUM := $(shell for b in $(BROWSERS); do p=$$(command -v "$$b") && [ -x "$$p" ] && { echo "$$p"; break; }; done)
endif
export CHROMIUM
chromium:
	@[ -n "$$CHROMIUM" ] || { echo "error: no Chromium-family browser found: install chromium (or Google Chrome), \
	or set CHROMIUM=/path/to/it" >&2; exit 1; }
	@p=$$(command -v "$$CHROMIUM") && [ -x "$$p" ] || { echo "error: CHROMIUM=$$CHROMIUM is not an executable: \
	set it to a Chromium-family browser, or unset it to search the PATH" >&2; exit 1; }

# The site's JavaScript comes from npm; checked before anything is installed.
npm:
	@command -v npm >/dev/null || { echo "error: npm not found: install Node.js (https://nodejs.org) or your system's \
	nodejs/npm package" >&2; exit 1; }

clean:
	rm -rf _build $(VENV) $(LOWEST_VENV) book/data book/runs book/bad-data node_modules $(EDITOR)/vendor $(EDITOR)/model
