# make build | test | vet | lint | man | package | clean
# `make package` builds dist/*.deb and dist/*.rpm (see packaging/build.sh).
# nfpm and staticcheck are tool dependencies pinned in go.mod (`go tool`),
# so every target works offline once the module cache is warm.

GO      ?= go
VERSION ?= $(shell packaging/version.sh)
COMMIT  ?= $(shell packaging/version.sh commit)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: all build test vet lint man package clean

all: vet build

# ./http_status, stamped for --version like the packages.
build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o http_status ./cmd/http_status

test:
	GORACE=atexit_sleep_ms=100 $(GO) test -race -count=1 -p 4 ./...

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt'd: $$out"; exit 1; fi

lint:
	$(GO) tool staticcheck ./...

# The committed man page, regenerated from the flag definitions
# (TestManPageUpToDate fails when it is stale).
man:
	$(GO) run ./cmd/http_status --help-man > contrib/http_status.8

package:
	packaging/build.sh deb rpm

clean:
	rm -rf http_status dist
