# Thin aliases for ./dev.sh, the single entry point.
.PHONY: help setup demo test test-fast bench lint db-up db-down db-status db-destroy
help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
setup: ## system packages, local TimescaleDB, venv/
	./dev.sh setup
demo: ## the whole runbook on the offline sandbox
	./dev.sh demo
test: ## the whole test suite
	./dev.sh test
test-fast: ## the unit tests only, no database
	./dev.sh test --fast
bench: ## every benchmark with targets
	./dev.sh bench
lint: ## ruff and mypy
	./dev.sh lint
db-up: ## start the local TimescaleDB
	./dev.sh db up
db-down: ## stop it (data kept)
	./dev.sh db down
db-status: ## is it running
	./dev.sh db status
db-destroy: ## stop it and delete its data
	./dev.sh db destroy
