#!/usr/bin/env bash
# Prepares what benchmarks/gpu_check.py needs on a lent GPU machine, which reaches nothing outside the working tree
# it is sent: the ARC files and the embedded model's tokenizer (in .gpu-carry/, ignored by git: never committed),
# and wheels of the packages its image lacks (FastAPI and pydantic, which `likra`'s command line imports; in .whl/).
# Then prints the device tool's call: carry [".gpu-carry", ".whl"] and the command below (under 8 minutes on one H100).
# Afterwards: commit the JSON it returns as results/gpu/gpu_check.json, with the machine it ran on.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${LIKRA_DATA_DIR:-../shared/data}
rm -rf .gpu-carry && mkdir -p .gpu-carry/data .gpu-carry/tokenizer .whl
cp -r "$data/arc" .gpu-carry/data/
tokenizer=$(.venv/bin/python -c "from likra.models import prepare_embedded; print(prepare_embedded())")
cp "$tokenizer"/tokenizer.json "$tokenizer"/tokenizer_config.json .gpu-carry/tokenizer/
pin() { grep -iE "^${1//-/[-_]}==" constraints.txt; }
for package in fastapi starlette pydantic pydantic-core annotated-types typing-inspection; do
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$(pin "$package")"
done
du -sh .gpu-carry .whl
cat <<'CMD'
device run, carry [".gpu-carry", ".whl"], timeout_s 560:
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 && python3 benchmarks/gpu_check.py --data-dir .gpu-carry/data --tokenizer .gpu-carry/tokenizer --json $OUT/gpu_check.json 2>&1 | tee $OUT/gpu_check.log
CMD
