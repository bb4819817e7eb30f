# paytrade — see README.md. `make run` runs the system, `make test` proves it.
SHELL := bash
GO ?= go
BIN := bin
# After `make infra`: the URLs of its containers (until `make down`).
-include deploy/infra.env
export PAY_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/pay?sslmode=disable
export TRADE_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/trade?sslmode=disable
export AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/

.PHONY: build run test chaos ctl fuzz clean up infra down compose-check bench demo demo-up

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# Creates the databases if missing, and the signing keys in .keys/ on first
# use; each service migrates its own database at start-up. pay listens on
# 127.0.0.1:8086, trade on 127.0.0.1:8085; Ctrl-C stops both.
run: build
	scripts/run.sh

# Everything, integration included (scripts/test.sh): the packages, the
# fault switches, the fault suite in its short mode, then the broker-facing
# tests again on RabbitMQ 4.x (as root; installed into .rabbitmq4/ the first
# time, about a minute). What this machine or user cannot run (no root, no
# local rabbitmq-server, no browser) is skipped, and the last line says what
# and how to run it; under CI=true a skip fails the run.
test:
	GO=$(GO) scripts/test.sh

# The fault suite at full size: 1000 payments per scenario, one table.
# UNSAFE=1 runs it against the course's seed-style wiring instead, whose
# broken invariants then fail it, as they should. The scenario that
# restarts RabbitMQ runs only with PAYTRADE_CHAOS_BROKER_RESTART=1.
chaos:
	PAYTRADE_CHAOS_PAYMENTS=$${PAYTRADE_CHAOS_PAYMENTS:-1000} PAYTRADE_CHAOS_UNSAFE=$(if $(UNSAFE),1,0) \
		$(GO) test -count=1 -timeout 60m -run '^TestChaosEveryInvariantHoldsUnderEveryFault$$' -v ./chaos

# Bounded load on the local servers (about 15 minutes); prints one table of rates, latencies and ratios.
bench:
	PAYTRADE_BENCH=1 $(GO) test ./bench -run '^TestBench$$' -count=1 -timeout 40m -v

# paytradectl with the settings make run and make test use (make infra's
# servers included, which a shell does not see, and make run's key set):
# make ctl ARGS='token -user 1'. Only paytradectl's own output on stdout, so
# that $(make ctl ARGS=…) works.
ctl:
	@$(GO) build -o $(BIN)/ ./cmd/paytradectl && PAYTRADE_KEYS_DIR=$${PAYTRADE_KEYS_DIR:-.keys/ctl} $(BIN)/paytradectl $(ARGS)

# A longer run of the request-decoding fuzz tests than `make test` does.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./internal/jsonhttp/

# The whole system in containers (needs Docker with Compose v2): postgres,
# rabbitmq with its management UI, pay and trade, on 127.0.0.1 at ports
# that PG_PORT, MQ_PORT, MQ_UI_PORT, PAY_PORT and TRADE_PORT move; with
# COMPOSE_PROFILES=dashboard also Prometheus, Tempo and Grafana, and then
# pay and trade send their traces to Tempo.
COMPOSE ?= docker compose
compose := $(COMPOSE) -f deploy/docker-compose.yml
comma := ,
up: export OTEL_TRACES_EXPORTER ?= $(if $(filter dashboard *,$(subst $(comma), ,$(COMPOSE_PROFILES))),otlp,none)
up: deploy/.env
	$(compose) up --build --detach --wait
	@echo "pay   http://127.0.0.1:$${PAY_PORT:-8086}/docs"
	@echo "trade http://127.0.0.1:$${TRADE_PORT:-8085}/docs"
	@echo "RabbitMQ management http://127.0.0.1:$${MQ_UI_PORT:-15672} (user and password in deploy/.env)"
	@echo "tokens: $(compose) run --rm ctl token -user 1"

# Only PostgreSQL and RabbitMQ in containers; `make run` and `make test`
# then use them (deploy/infra.env) for the services built from source.
infra: deploy/.env
	$(compose) up --detach --wait postgres rabbitmq
	scripts/infra-env.sh > deploy/infra.env
	@echo "make run and make test now use these servers (deploy/infra.env), until make down"

# Deletes the containers, their data and the passwords they were made with.
down:
	$(compose) --profile '*' down --volumes --remove-orphans
	rm -f deploy/.env deploy/infra.env

# Every password, random (or from the environment); the signing keys are
# made by compose's keys service. Run every time: a file written before a
# secret was added (pay's pepper) gets it, and nothing else changes.
deploy/.env: FORCE
	scripts/compose-env.sh $@

FORCE:

# Checks every profile of the compose file without a Docker engine, with
# Compose v2 as scripts/install-tools.sh fetches it.
compose-check:
	scripts/install-tools.sh compose
	$(GO) test -count=1 -run 'Compose' ./deploy

# The README's walkthrough against `make run`, every answer checked.
demo: build
	PAYTRADE_KEYS_DIR=$${PAYTRADE_KEYS_DIR:-.keys/ctl} scripts/demo.sh $(BIN)/paytradectl

# The same against `make up`, with paytradectl from its container.
demo-up:
	scripts/demo.sh $(compose) run --rm -T ctl

clean:
	rm -rf $(BIN)
