# Two entry points, each doing all the set-up on a fresh machine:
#   make repro   -> virtual environment + `dvc repro` (the embedded synthetic default)
#   make test    -> virtual environment + the test suite (make test-fast: without the slow tests)
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
# torch/torchvision pinned as a matching pair (the CUDA build also runs on CPU-only machines);
# every other version comes from requirements.lock, the versions the committed results used.
TORCH   ?= torch==2.14.1 torchvision==0.29.1
LOCK    := requirements.lock
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONUNBUFFERED := 1

.PHONY: repro test test-fast lint lock bench real real-long cpu-long cpu-xl

$(STAMP): pyproject.toml Makefile $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c $(LOCK) $(TORCH)
	$(PY) -m pip install -q --disable-pip-version-check -c $(LOCK) -e '.[dev]'
	touch $@

# After changing a dependency in pyproject.toml: record the versions now installed.
lock: $(STAMP)
	{ sed -n '1,2p' $(LOCK); $(PY) -m pip freeze --exclude-editable; } > $(LOCK).new && mv $(LOCK).new $(LOCK)

# The long benchmarks train over sittings: `make cpu-xl HOURS=2` trains about 2 h, checkpoints and
# stops before evaluation; the same command goes on. Without HOURS they run to the end.
SITTING = $(if $(HOURS),--hours $(HOURS))

repro: $(STAMP)
	dvc repro

# The whole benchmark on the real faces of ../shared (docs/real-faces.md): reports/real/
real: $(STAMP)
	$(PY) -m dftnet.cli --params params-real.yaml bench --work real --reports reports/real \
		--annotator-report reports/annotator.md

# params-cpu-long.yaml's recipe on the real faces, the paper's two models (~1.5 h a seed): reports/real-long/
real-long: $(STAMP)
	$(PY) -m dftnet.cli --params params-real-long.yaml bench --work real-long --reports reports/real-long $(SITTING)

# The longer CPU recipe of the artifacts study (params-cpu-long.yaml; hours): reports/cpu-long/
cpu-long: $(STAMP)
	$(PY) -m dftnet.cli --params params-cpu-long.yaml bench --work cpu-long --reports reports/cpu-long $(SITTING)

# The same at 20,000 steps, the paper's two models (params-cpu-xl.yaml; ~9-18 h, in sittings): reports/cpu-xl/
cpu-xl: $(STAMP)
	$(PY) -m dftnet.cli --params params-cpu-xl.yaml bench --work cpu-xl --reports reports/cpu-xl $(SITTING)

test: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -q

# The inner loop: every test but those marked slow (the toy DVC pipelines, the real-photo bench).
test-fast: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -q -m "not slow"

# ruff (pyflakes, pycodestyle, bugbear) and mypy, configured in pyproject.toml; the test suite
# runs both (tests/test_structure.py).
lint: $(STAMP)
	$(PY) -m ruff check dftnet baselines benchmarks pipelines tests
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) benchmarks/bench_synth.py
	$(PY) benchmarks/bench_train.py
