# registrar: make targets. `make run` runs the server, `make test` runs the
# tests; both set up everything they need through the Go toolchain.
GO ?= go
export CGO_ENABLED := 1

.PHONY: generate check-generated build run test race vet bench

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

## test: run every test
test:
	$(GO) test -count=1 ./...

## race: run every test with the race detector
race:
	$(GO) test -race -count=1 ./...

## vet: go vet and gofmt
vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

## bench: request-path benchmarks
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./impl/
