# `make book` builds the site in _build/html, `make test` runs every test, `make check` the fast ones;
# all set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: book check test chapters chromium clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[book]"
	touch $@

# Executes every chapter afresh (in book/, where their data/ and runs/ folders live).
book: $(INSTALLED)
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going

# Lint, then the fast unit tests (no chapters, site, benchmark or multi-process runs): under two minutes.
check: $(INSTALLED)
	$(BIN)/ruff check p2p tests
	$(BIN)/pytest -m "not slow" tests

# Unit tests, papermill runs of the chapters, the site in headless Chromium, then nbval.
test: $(INSTALLED) chromium
	$(BIN)/pytest tests
	$(BIN)/pytest --nbval book/

# Re-executes the chapters in place, for committing them executed.
chapters: $(INSTALLED)
	cd book && for chapter in *.ipynb; do ../$(BIN)/jupyter-execute --inplace "$$chapter" || exit 1; done

# The site test drives Debian's Chromium.
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

clean:
	rm -rf _build $(VENV) book/data book/runs book/bad-data
