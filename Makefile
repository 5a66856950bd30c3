# The commands a QEMU user expects: ./configure && make, make check, make run.
BUILD ?= build
NINJA ?= ninja

.PHONY: all check run deps clean rig-assets

all: $(BUILD)/build.ninja
	$(NINJA) -C $(BUILD)

$(BUILD)/build.ninja:
	@command -v meson >/dev/null || scripts/install-deps.sh
	./configure --builddir=$(BUILD)

# Everything the project needs on a fresh Debian 12 machine (apt, idempotent).
deps:
	scripts/install-deps.sh

# Unit tests (under ASan/UBSan), then the tests in the rig. Ends with
# "N passed, N failed".
check: all
	scripts/check $(BUILD)

rig-assets:
	tests/rig/rig assets

# Boot a stock Debian guest under Vireo and give its console to the user.
run: all
	scripts/run-guest $(BUILD)

clean:
	rm -rf $(BUILD)
