# Thin wrapper over CMake for the README's commands.
#   make demo   install what is missing, build, train a sparse MN network on Fashion-MNIST
#   make test   install what is missing, build (normal + ASan/UBSan), run ctest on both
#   make bench  benchmarks (tables);  make experiments  the long runs behind the README tables
#   make speed  the speed acceptance against PyTorch (bench/speed.sh; installs python3-torch)
JOBS ?= 2
BUILD ?= build
ASAN_BUILD ?= build-asan
DEB_PACKAGES = cmake make gcc pkg-config libopenblas-dev liblapacke-dev zlib1g-dev libpng-dev \
               dataset-fashion-mnist python3 python3-numpy
FASHION ?= /usr/share/datasets/fashion-mnist

.PHONY: all deps build asan test test-fast demo bench speed experiments clean format

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKRONVI_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)

# The sanitizer build runs every test except those labelled long (real-data training).
test: build asan
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 OMP_NUM_THREADS=2 ctest --output-on-failure -j$(JOBS) -LE long

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

demo: build
	./$(BUILD)/kronvi train --data $(FASHION) --arch 784-300-300-300-10 --act elu \
	  --family mn --prior ard --epochs 10 --batch 100 --lr 1e-3 --kl-warmup 3 --seed 1 \
	  --threads 2 --save demo-mn.safetensors --log demo-mn.csv
	./$(BUILD)/kronvi report demo-mn.safetensors

bench: build
	./$(BUILD)/bench_lrt --threads 2

speed: build
	@dpkg -s python3-torch >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-torch; }
	bash bench/speed.sh --build $(BUILD)

experiments: build
	bash bench/experiments.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
