# tsdp: pure-C Diffusion Policy training and speculative inference.
#   make            build build/libtsdp.a and build/tsdp
#   make test       install missing Debian packages (OpenMPI included), build and run the Check test suite
#                   (the MPI tests run when the build found MPI; plain make builds without it too)
#   make asan       the same tests under AddressSanitizer + UBSan
#   make demo       tsdp pipeline --config configs/demo_tsdp.ini into runs/demo (~10 min), report to results/demo
#   make reproduce  tsdp pipeline --config configs/pusht_tsdp.ini into runs/pusht (hours), report to results/pusht
#   make bench      GEMM benchmark, and U-Net forward latency for CKPT (default: the demo's)
#   make plot-demo  draw a sample figure to build/plot_demo.png (the plot module's look)
#   make fixtures   regenerate the PyTorch reference fixtures (needs scripts/deps.sh --dev)
#   make fuzz       run each libFuzzer harness (tests/fuzz/) FUZZ_RUNS times from its seed corpus
#   make killtest   SIGKILL train, distill and rl train KILLS times each and check every resume (scripts/kill_test.sh)
#   make clean

CC       ?= cc
BUILD    ?= build
DATA_DIR ?= ../shared/data
OPT      ?= -O2
SAN      ?=
CFLAGS   = -std=c11 -D_DEFAULT_SOURCE $(OPT) -g -Wall -Wextra -I. $(SAN) \
           $(shell pkg-config --cflags hdf5 openblas cairo 2>/dev/null)
LDLIBS   = $(shell pkg-config --libs hdf5 openblas cairo 2>/dev/null) -lblosc -linih -lgif -lchipmunk -lz -lm -lpthread
TESTLIBS = $(shell pkg-config --libs check 2>/dev/null)
# MPI (core/dist.c only): used when pkg-config knows ompi-c or mpicc is on the PATH, else the
# build is single-process (make MPI=0 forces that; make clean when switching).
ifeq ($(origin MPI),undefined)
  MPI := $(shell (pkg-config --exists ompi-c 2>/dev/null || command -v mpicc >/dev/null 2>&1) && echo 1 || echo 0)
endif
ifeq ($(MPI),1)
  CFLAGS += -DTS_HAVE_MPI $(shell pkg-config --cflags ompi-c 2>/dev/null || mpicc --showme:compile)
  LDLIBS += $(shell pkg-config --libs ompi-c 2>/dev/null || mpicc --showme:link)
endif

LIB_SRC  = $(wildcard core/*.c nn/*.c data/*.c sim/*.c train/*.c infer/*.c rl/*.c)
CLI_SRC  = $(wildcard cli/*.c)
TEST_SRC = $(wildcard tests/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_OBJ = $(TEST_SRC:%.c=$(BUILD)/obj/%.o)
HEADERS  = $(wildcard */*.h)

.PHONY: all deps test check asan demo reproduce bench plot-demo fixtures clean fuzz fuzz-build killtest
all: $(BUILD)/libtsdp.a $(BUILD)/tsdp

deps:
	@bash scripts/deps.sh --mpi

$(BUILD)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# core/dist.o follows the MPI switch (the only object that depends on it).
$(BUILD)/obj/core/dist.o: $(BUILD)/mpi-$(MPI).stamp
$(BUILD)/mpi-$(MPI).stamp:
	@mkdir -p $(BUILD) && rm -f $(BUILD)/mpi-*.stamp && touch $@

$(BUILD)/libtsdp.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tsdp: $(CLI_OBJ) $(BUILD)/libtsdp.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/test_tsdp: $(TEST_OBJ) $(BUILD)/libtsdp.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS) $(TESTLIBS)

# Tests run from the repository root; they find fixtures under tests/fixtures and the real
# dataset under $(DATA_DIR) (tests that need it are skipped with a message when it is absent).
test: deps
	@$(MAKE) --no-print-directory check

# (the fuzz settings come before `check`, whose prerequisites read FUZZ_OK when parsed)
FUZZ_CC        ?= clang
FUZZ_RUNS      ?= 1000000
FUZZ_SMOKE_RUNS ?= 2000
FUZZ_NAMES     = zarr config ckpt dataset
FUZZ_SAN       = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_OK := $(shell printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' | \
             $(FUZZ_CC) -x c - -fsanitize=fuzzer -o /dev/null >/dev/null 2>&1 && echo 1)

check: $(BUILD)/test_tsdp $(BUILD)/tsdp $(if $(FUZZ_OK),fuzz-build)
	TSDP_DATA_DIR=$(DATA_DIR) TSDP_BIN=$(BUILD)/tsdp OPENBLAS_NUM_THREADS=1 $(if $(FUZZ_OK),TSDP_FUZZ_DIR=build/fuzz) \
	  TSDP_FUZZ_RUNS=$(FUZZ_SMOKE_RUNS) LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 $(BUILD)/test_tsdp

asan: deps
	@$(MAKE) --no-print-directory check BUILD=build/asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"

# The whole pipeline (cli/pipeline.c): resumable stage by stage; the report, figures and GIFs
# are copied to results/ (scripts/demo.sh).
demo: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/demo.sh $(BUILD)/tsdp $(DATA_DIR) configs/demo_tsdp.ini runs/demo results/demo

reproduce: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/demo.sh $(BUILD)/tsdp $(DATA_DIR) configs/pusht_tsdp.ini runs/pusht results/pusht

CKPT ?= runs/demo/base.h5
bench: deps
	@$(MAKE) --no-print-directory all
	OPENBLAS_NUM_THREADS=1 $(BUILD)/tsdp bench gemm
	@if [ -f "$(CKPT)" ]; then $(BUILD)/tsdp bench step --ckpt "$(CKPT)"; \
	else echo "bench step: no checkpoint at $(CKPT) (make demo trains one; or make bench CKPT=FILE.h5)"; fi

plot-demo: $(BUILD)/test_tsdp
	CK_RUN_SUITE=plot CK_RUN_CASE=plot TSDP_PLOT_DEMO=$(BUILD)/plot_demo.png $(BUILD)/test_tsdp

fixtures:
	/usr/bin/python3 scripts/make_fixtures.py tests/fixtures

# Fuzz harnesses (tests/fuzz/fuzz_NAME.c, seed corpus tests/fuzz/corpus/NAME/), built with
# clang's libFuzzer plus ASan and UBSan into build/fuzz. `make fuzz` runs each FUZZ_RUNS times;
# `make check` runs each FUZZ_SMOKE_RUNS times (a Check test) when clang can link libFuzzer,
# and counts that test as skipped otherwise.
fuzz-build:
	@$(MAKE) --no-print-directory BUILD=build/fuzz CC=$(FUZZ_CC) OPT=-O1 SAN="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	  $(FUZZ_NAMES:%=build/fuzz/fuzz_%)

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(BUILD)/libtsdp.a
	$(CC) $(CFLAGS) -fsanitize=fuzzer $< $(BUILD)/libtsdp.a -o $@ $(LDLIBS)

fuzz: fuzz-build
	@bash scripts/fuzz.sh build/fuzz $(FUZZ_RUNS) $(FUZZ_NAMES)

# The kill test: each training command SIGKILLed KILLS times at random moments (KILL_SEED) on
# the Push-T data under $(DATA_DIR), every resume ending bit-identical to an uninterrupted run
# with no stray files; `make check` runs 3 kills each on the test fixture.
KILLS ?= 20
killtest: $(BUILD)/tsdp
	DATA_DIR=$(abspath $(DATA_DIR)) bash scripts/kill_test.sh $(BUILD)/tsdp $(KILLS)

clean:
	rm -rf build
