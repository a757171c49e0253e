# registrar: make targets. `make run` runs the server, `make test` runs the
# tests; both set up everything they need through the Go toolchain.
GO ?= go
export CGO_ENABLED := 1

.PHONY: generate check-generated build run test race vet bench load jsclient

## generate: bundle spec/ and regenerate api/ (go generate)
generate:
	$(GO) generate ./...

## check-generated: fail when `go generate` would change a committed file
check-generated: generate
	@git diff --exit-code -- api spec || { echo "generated files are stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- api spec)" || { git status --short -- api spec; echo "generate left untracked files"; exit 1; }

## build: build the binary into bin/
build:
	$(GO) build -o bin/registrar ./cmd/registrar

## run: run the server locally with the development config (SQLite in ./data)
run: build
	./bin/registrar -config cmd/registrar/dev.yaml

# The suite runs once on SQLite, then again on PostgreSQL when one answers
# (each test gets a fresh schema of this database, dropped afterwards).
# The shared rate limits are tested on Redis when one answers.
REGISTRAR_TEST_POSTGRES ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
REGISTRAR_TEST_REDIS ?= $(shell redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && echo 127.0.0.1:6379)
export REGISTRAR_TEST_REDIS

# matrix-js-sdk, pinned in its package-lock.json, for the client tests.
JSCLIENT := cmd/registrar/testdata/jsclient

## jsclient: install the pinned npm packages of the tests (matrix-js-sdk, axe-core)
jsclient:
	@if command -v npm >/dev/null 2>&1; then \
		{ test -d $(JSCLIENT)/node_modules/matrix-js-sdk && test -f $(JSCLIENT)/node_modules/axe-core/axe.min.js; } || \
			npm ci --prefix $(JSCLIENT) --no-audit --no-fund --loglevel=error; \
	else \
		echo "npm not found: the matrix-js-sdk and accessibility tests will skip"; \
	fi

## test: run every test, on SQLite and (when it answers) on PostgreSQL
test: jsclient
	$(GO) test -count=1 ./...
	@if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
		echo "== the suite again, on PostgreSQL"; \
		REGISTRAR_TEST_POSTGRES='$(REGISTRAR_TEST_POSTGRES)' $(GO) test -count=1 ./...; \
	else \
		echo "PostgreSQL does not answer on 127.0.0.1:5432: the suite ran on SQLite only"; \
	fi

## race: run every test with the race detector
race:
	$(GO) test -race -count=1 ./...

## vet: go vet and gofmt
vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

## bench: request-path benchmarks
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./impl/... ./db/

## load: the standard load run against registrar and a null server (cmd/registrar-load/standard.sh)
load:
	cmd/registrar-load/standard.sh
