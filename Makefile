# paytrade — see README.md. `make run` runs the system, `make test` proves it.
SHELL := bash
GO ?= go
BIN := bin
export PAY_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/pay?sslmode=disable
export TRADE_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/trade?sslmode=disable
export AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/

.PHONY: build run test vet fuzz clean

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# Creates the databases if missing; each service migrates its own at
# start-up. pay listens on :8086, trade on :8085; Ctrl-C stops both.
run: build
	scripts/run.sh

test:
	scripts/test-infra.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

# A longer run of the request-decoding fuzz tests than `make test` does.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./internal/jsonhttp/

clean:
	rm -rf $(BIN)
