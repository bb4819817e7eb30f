# paytrade — see README.md. `make run` runs the system, `make test` proves it.
SHELL := bash
GO ?= go
BIN := bin
export PAY_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/pay?sslmode=disable
export TRADE_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/trade?sslmode=disable
export AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/

.PHONY: build run test chaos vet fuzz clean up down compose-check bench

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# Creates the databases if missing; each service migrates its own at
# start-up. pay listens on :8086, trade on :8085; Ctrl-C stops both.
run: build
	scripts/run.sh

# The fault suite runs last and alone, in its short mode: one of its
# scenarios restarts the broker every other test shares.
test:
	scripts/test-infra.sh
	scripts/install-tools.sh chromium
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v /chaos$$)
	$(GO) test -race -count=1 -timeout 10m ./chaos

# The fault suite at full size: 1000 payments per scenario, one table.
# UNSAFE=1 runs it against the course's seed-style wiring instead, whose
# broken invariants then fail it, as they should. The scenario that
# restarts RabbitMQ runs only with PAYTRADE_CHAOS_BROKER_RESTART=1.
chaos:
	PAYTRADE_CHAOS_PAYMENTS=$${PAYTRADE_CHAOS_PAYMENTS:-1000} PAYTRADE_CHAOS_UNSAFE=$(if $(UNSAFE),1,0) \
		$(GO) test -count=1 -timeout 60m -run '^TestChaosEveryInvariantHoldsUnderEveryFault$$' -v ./chaos

# Bounded load on the local servers (3-5 minutes); prints one table of rates, latencies and ratios.
bench:
	PAYTRADE_BENCH=1 $(GO) test ./bench -run '^TestBench$$' -count=1 -timeout 40m -v

# A longer run of the request-decoding fuzz tests than `make test` does.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./internal/jsonhttp/

# The whole system in containers (needs a Docker engine): postgres, rabbitmq
# with its management UI on :15672, pay on :8086, trade on :8085.
up: deploy/.env
	docker compose -f deploy/docker-compose.yml up --build

down:
	docker compose -f deploy/docker-compose.yml down --volumes

deploy/.env:
	sed "s/^AUTH_JWT_SECRET=.*/AUTH_JWT_SECRET=$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')/" deploy/.env.example > $@
	@echo "made $@ from deploy/.env.example with a random AUTH_JWT_SECRET; change the passwords in it"

# Checks the compose file without a Docker engine (needs docker compose or
# Debian's docker-compose).
compose-check:
	cp -n deploy/.env.example deploy/.env.check 2>/dev/null || true
	docker-compose --env-file deploy/.env.check -f deploy/docker-compose.yml config -q 2>/dev/null || \
		docker compose --env-file deploy/.env.check -f deploy/docker-compose.yml config -q
	rm -f deploy/.env.check

clean:
	rm -rf $(BIN)
