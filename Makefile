# gw — see README.md. `make run` starts gw with embedded defaults; `make test` runs every test.
GO        ?= go
BIN       ?= bin/gw
PKGS      := ./...
GOFLAGS_BUILD := -trimpath
LDFLAGS   := -s -w -X main.version=$(shell git describe --always --dirty 2>/dev/null || echo dev)
NPM_DIR   := testdata/npm
TEST_TIMEOUT ?= 60m

VENDOR    := signaling/viewer/static/vendor

.PHONY: all build run test race bench lint cross deps web clean

all: build

build: web
	$(GO) build $(GOFLAGS_BUILD) -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gw

run: build
	./$(BIN) $(ARGS)

# The JavaScript peers tests talk to (official PeerJS server, PeerJS client, js-binarypack).
deps: $(NPM_DIR)/node_modules/.package-lock.json

$(NPM_DIR)/node_modules/.package-lock.json: $(NPM_DIR)/package.json $(NPM_DIR)/package-lock.json
	cd $(NPM_DIR) && npm ci --no-audit --no-fund

# The PeerJS client library the viewer page serves, embedded in the binary.
web: $(VENDOR)/peerjs.min.js

$(VENDOR)/peerjs.min.js: $(NPM_DIR)/node_modules/.package-lock.json
	cp $(NPM_DIR)/node_modules/peerjs/dist/peerjs.min.js $(VENDOR)/peerjs.min.js
	cp $(NPM_DIR)/node_modules/peerjs/LICENSE $(VENDOR)/peerjs.LICENSE

test: deps web lint
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

race: deps web
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

bench: deps web
	$(GO) run ./bench $(BENCHFLAGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

cross: web
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build $(GOFLAGS_BUILD) -ldflags '$(LDFLAGS)' -o bin/gw-linux-amd64 ./cmd/gw
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_BUILD) -ldflags '$(LDFLAGS)' -o bin/gw-linux-arm64 ./cmd/gw
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build $(GOFLAGS_BUILD) -ldflags '$(LDFLAGS)' -o bin/gw-linux-armv7 ./cmd/gw

clean:
	rm -rf bin
