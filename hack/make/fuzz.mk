# Go native fuzzing. Each target's seed corpus (its f.Add calls and testdata/fuzz/<FuzzName>/)
# already runs in `make test` as regression tests, so fuzzing stays out of TEST_DEPS; `make fuzz`
# explores beyond the seeds. go test -fuzz takes one target per package per run, so the targets
# run one after another, FUZZTIME each. A failing input is written to the package's
# testdata/fuzz/<FuzzName>/: fix the bug and commit the file as a regression seed.
# New inputs that only add coverage stay in $(go env GOCACHE)/fuzz; copy the interesting ones
# into testdata/fuzz by hand.

FUZZTIME ?= 60s
# package:FuzzName; list every target explicitly.
FUZZ_TARGETS := \
	./speaker/l2:FuzzDecideARP \
	./speaker/l2:FuzzParseDecideNS \
	./speaker/bfd:FuzzParsePacket \
	./internal/config:FuzzParseAddressRange \
	./internal/config:FuzzCompile \
	./controller/allocation:FuzzRequestAnnotations

.PHONY: fuzz
fuzz: test-assets ## Run every Go fuzz target for FUZZTIME (default 60s) each, one after another.
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "== fuzz $$name in $$pkg for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg/; \
	done
