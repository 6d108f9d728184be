#!/usr/bin/env bash
# Fill .whl/ with the wheels that `import vvc_lightning` and `fit` need on the GPU machine and that its
# image lacks (python 3.12, x86-64; torch, lightning, numpy, scipy, opencv, matplotlib, timm, einops,
# safetensors, torchmetrics, scikit-image are there). ST-LPIPS keeps only its AlexNet weights (the VGG
# file alone is 59 MB; the device tool carries 64 MiB in all).   bash scripts/gpu_wheels.sh
set -euo pipefail
mkdir -p .whl
grep -qxF '/.whl/' .gitignore 2>/dev/null || echo '/.whl/' >> "$(git rev-parse --git-common-dir)/info/exclude"
PLAT="--platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
for p in compressai==1.2.8 omegaconf==2.4.0 webdataset==1.0.2 braceexpand==0.1.7 av==18.1.0 \
         pytorch-msssim==1.0.0 stlpips_pytorch==0.0.2 lpips==0.1.4 scikit-video==1.1.11; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $PLAT -d .whl "$p"
done
st=$(ls .whl/stlpips_pytorch-0.0.2-*.whl)
if unzip -l "$st" | grep -q vgg_shift_tolerant.pth; then
  zip -q -d "$st" 'stlpips_pytorch/weights/vST0.0/vgg_shift_tolerant.pth'
fi
du -ch .whl/*.whl | tail -1
