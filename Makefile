# Thin wrapper over CMake for the README's commands.
#   make demo   install what is missing, build, train a sparse MN network on Fashion-MNIST
#   make test   install what is missing, build (normal + ASan/UBSan + MPI), run ctest on the three
#               (the MPI build runs its data-parallel tests, label mpi)
#   make mpi    the MPI build (OpenMPI from Debian; mpirun -np P build-mpi/kronvi train ...)
#   make bench  benchmarks (tables);  make experiments  the long runs behind the README tables
#   make speed  the speed acceptance against PyTorch (bench/speed.sh; installs python3-torch)
#   make install    the libraries, headers, CLI, pkg-config and CMake files, Python binding
#                   under PREFIX (default /usr/local);  make deb  the Debian package (CPack)
JOBS ?= 2
BUILD ?= build
ASAN_BUILD ?= build-asan
MPI_BUILD ?= build-mpi
DEB_PACKAGES = cmake make gcc pkg-config libopenblas-dev liblapacke-dev zlib1g-dev libpng-dev \
               dataset-fashion-mnist python3 python3-numpy dpkg-dev file
MPI_PACKAGES = libopenmpi-dev openmpi-bin
FASHION ?= /usr/share/datasets/fashion-mnist
PREFIX ?= /usr/local

.PHONY: all deps deps-mpi build asan mpi test test-fast demo bench mpi-scaling speed experiments \
        install deb clean format

all: build

# apt-get installs the Debian packages of $(1) that are missing
define install_missing
	@missing=""; for p in $(1); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
endef

deps:
	$(call install_missing,$(DEB_PACKAGES))

deps-mpi: deps
	$(call install_missing,$(MPI_PACKAGES))

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKRONVI_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)

# The data-parallel build: the library with src/dist/comm_mpi.c, the CLI and the tests that need
# MPI (the other tests are the same code as in $(BUILD)).
mpi: deps-mpi
	cmake -S . -B $(MPI_BUILD) -DCMAKE_BUILD_TYPE=Release -DKRONVI_MPI=ON >/dev/null
	cmake --build $(MPI_BUILD) -j$(JOBS) --target kronvi test32_comm test32_shard

# The sanitizer build runs every test except those labelled long (real-data training); the MPI
# build the tests labelled mpi (each runs several processes, one at a time).
test: build asan mpi
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 OMP_NUM_THREADS=2 ctest --output-on-failure -j$(JOBS) -LE long
	cd $(MPI_BUILD) && ctest --output-on-failure -L mpi

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

demo: build
	./$(BUILD)/kronvi train --data $(FASHION) --arch 784-300-300-300-10 --act elu \
	  --family mn --prior ard --epochs 10 --batch 100 --lr 1e-3 --kl-warmup 3 --seed 1 \
	  --threads 2 --save demo-mn.safetensors --log demo-mn.csv
	./$(BUILD)/kronvi report demo-mn.safetensors

bench: build
	./$(BUILD)/bench_lrt --threads 2

# Data-parallel examples per second for P = 1, 2 and the communication model (docs/distributed.md)
mpi-scaling: mpi
	bash bench/mpi_scaling.sh --build $(MPI_BUILD)

speed: build
	@dpkg -s python3-torch >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-torch; }
	bash bench/speed.sh --build $(BUILD)

experiments: build
	bash bench/experiments.sh

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

deb: build
	cd $(BUILD) && cpack -G DEB

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(MPI_BUILD)
