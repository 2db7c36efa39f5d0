# Shortcuts; the README has the full commands.
VENV ?= .venv
DB ?= news.db
PORT ?= 8001

.PHONY: setup demo test serve serve-public

setup:
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -e '.[test]'

demo: setup
	$(VENV)/bin/python -m demo

test: setup
	$(VENV)/bin/python -m pytest

serve:
	$(VENV)/bin/python datasette/serve.py $(DB) --port $(PORT)

serve-public:
	$(VENV)/bin/python datasette/serve.py $(DB) --port $(PORT) --public
