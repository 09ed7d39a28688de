# `make book` builds the site in _build/html, `make test` runs every test; both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: book test clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[book]"
	touch $@

book: $(INSTALLED)
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going

test: $(INSTALLED)
	$(BIN)/pytest tests

clean:
	rm -rf _build $(VENV)
