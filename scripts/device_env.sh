# Sourced (not run) by scripts/gpu_train.sh and benchmarks/gpu_throughput.sh from the repository root: the
# environment of a run on a lent device machine, where this package is not installed and there is no network.
# Installs the wheels that scripts/gpu_wheels.sh put in .whl/ (not with CPU_SMOKE), puts a copy of the package
# on PYTHONPATH (its sub-packages where setup.cfg's package_dir maps them), and defines `ensure_data`: $DATA
# holds the offline data, built when missing and the packages can be fetched, else one line saying to build it
# elsewhere and carry it. Sets PY, SITE, DATA.
PY=${PYTHON:-python3}
SITE=${VVC_SITE:-/tmp/vvc_site}
DATA=${DATA:-data/offline}
export PYTHONUNBUFFERED=1 PYTHONSAFEPATH=1  # never import the bare ./vvc_lightning folder from the cwd

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1 && [ -z "${CPU_SMOKE:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE/deps" .whl/*.whl
  export PYTHONPATH="$SITE/deps:${PYTHONPATH:-}"
fi
rm -rf "$SITE/src" && mkdir -p "$SITE/src"
cp -r vvc_lightning "$SITE/src/vvc_lightning"
for sub in backbones datamodules configs; do cp -r "$sub" "$SITE/src/vvc_lightning/$sub"; done
export PYTHONPATH="$SITE/src:${PYTHONPATH:-}"

ensure_data() {
  if [ ! -f "$DATA/manifest.json" ]; then  # no network on a lent GPU machine: one line saying to build here and carry
    $PY scripts/build_training_data.py --can-build -o "$DATA" || exit 2
    $PY scripts/build_training_data.py -o "$DATA"
  fi
}
