# Two commands: `make run` and `make test` (see README). Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000
FLASK  := $(BIN)/flask --app wsgi
PO     := $(wildcard app/translations/*/LC_MESSAGES/messages.po)
MO     := $(PO:.po=.mo)

.PHONY: run test test-sqlite test-postgres install install-dev translations extract-messages lint bench clean

run: install $(MO)
	@mkdir -p instance
	$(FLASK) db upgrade
	$(FLASK) seed-demo --if-empty
	$(FLASK) serve --host $(HOST) --port $(PORT)

test: install-dev $(MO)
	@echo "== test suite on SQLite =="
	TEST_DATABASE_URL= $(BIN)/python -m pytest -q -p no:cacheprovider
ifneq ($(strip $(TEST_DATABASE_URL)),)
	@echo "== test suite on PostgreSQL =="
	TEST_DATABASE_URL='$(TEST_DATABASE_URL)' $(BIN)/python -m pytest -q -p no:cacheprovider
endif

test-sqlite: install-dev $(MO)
	TEST_DATABASE_URL= $(BIN)/python -m pytest -q

test-postgres: install-dev $(MO)
	TEST_DATABASE_URL=$${TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} $(BIN)/python -m pytest -q

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $@

%.mo: %.po $(VENV)/.installed
	@$(BIN)/pybabel compile -i $< -o $@ >/dev/null

translations: $(MO)

# Re-extract the messages after changing user-facing text, then translate the new entries.
extract-messages: install
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k _ --no-location --sort-output \
		-o app/translations/messages.pot .
	$(BIN)/pybabel update -i app/translations/messages.pot -d app/translations --ignore-obsolete -w 100

lint: install-dev
	$(BIN)/ruff check .

bench: install-dev
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache
