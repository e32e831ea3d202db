# The two commands of the README, plus helpers. Everything installs what it
# needs (Debian 12, as root) and builds first.
SHELL := /bin/bash
# ccache hits across checkouts (CI builds a fresh clone in another folder):
# paths are hashed relative to the checkout, and the working directory is not
# hashed into -g builds.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1
JOBS ?= $(shell nproc)
PRESET ?= dev

DEB_PACKAGES := build-essential cmake clang clang-tidy libclang-rt-14-dev ccache pkg-config libboost1.81-dev librdkafka-dev \
  libsimdjson-dev libssl-dev libspdlog-dev libjemalloc-dev libsqlite3-dev sqlite3 libpq-dev postgresql \
  googletest libgtest-dev libgmock-dev libbenchmark-dev kcat curl wrk python3 python3-yaml prometheus \
  openjdk-17-jdk-headless maven

.PHONY: deps configure build test demo bench clean asan tsan fuzz tidy kafka

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Apache Kafka's jars (the pinned version in tools/kafka/pom.xml) for the
# apache engine of `meshhook broker`; Maven's local repository caches them, so
# only a new pom.xml fetches again.
KAFKA_LIBS := build/kafka/libs
kafka: deps
	@if [ ! -f build/kafka/stamp ] || [ tools/kafka/pom.xml -nt build/kafka/stamp ]; then \
	  rm -rf $(KAFKA_LIBS); mkdir -p build/kafka; \
	  if ! timeout 900 mvn -B -q -f tools/kafka/pom.xml dependency:copy-dependencies \
	        -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(KAFKA_LIBS) > build/kafka/mvn.log 2>&1; then \
	    echo "make kafka: Maven could not fetch the Apache Kafka jars (Maven Central unreachable?); see build/kafka/mvn.log: $$(grep -m1 ERROR build/kafka/mvn.log)"; exit 1; \
	  fi; \
	  touch build/kafka/stamp; echo "make kafka: $$(ls $(KAFKA_LIBS) | wc -l) jars in $(KAFKA_LIBS)"; \
	fi

configure: deps
	cmake --preset $(PRESET) >/dev/null

build: configure
	cmake --build --preset $(PRESET) -j $(JOBS)

test: deps kafka
	$(MAKE) --no-print-directory build PRESET=dev
	ctest --preset dev -j $(JOBS) --timeout 600

asan: deps
	$(MAKE) --no-print-directory build PRESET=asan
	ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
	  ctest --preset asan -j $(JOBS) -L 'unit|integration' -LE kafka-apache --timeout 900

tsan: deps
	$(MAKE) --no-print-directory build PRESET=tsan
	TSAN_OPTIONS="suppressions=$(CURDIR)/tests/sanitizers/tsan.supp halt_on_error=1 second_deadlock_stack=1" \
	  ctest --preset tsan -j $(JOBS) -L 'unit|integration' -LE kafka-apache --timeout 900

demo: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS) --target meshhook meshhook-ingest meshhook-consumer
	./build/release/bin/meshhook dev --demo

bench: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)
	./benchmarks/run.sh build/release

fuzz: deps
	$(MAKE) --no-print-directory configure PRESET=fuzz
	cmake --build --preset fuzz -j $(JOBS) --target fuzz_transfer_event fuzz_signature fuzz_http_request
	FUZZ_SECONDS=$${FUZZ_SECONDS:-600} ./tests/fuzz/run.sh

# clang-tidy over our own sources (compile commands from the dev preset);
# any finding fails.
tidy: deps
	$(MAKE) --no-print-directory configure PRESET=dev
	run-clang-tidy -p build/dev -quiet -j $(JOBS) -extra-arg=-Wno-unknown-warning-option \
	  '^$(CURDIR)/(common|ingest|consumer|tools)/.*\.cpp$$' > build/tidy.log 2>&1 || true
	@if grep -qE '(warning|error): ' build/tidy.log; then \
	  grep -E '(warning|error): ' build/tidy.log | sort -u; echo "clang-tidy: findings above"; exit 1; fi
	@echo "clang-tidy: clean ($$(grep -c '^clang-tidy' build/tidy.log) files)"

clean:
	rm -rf build
