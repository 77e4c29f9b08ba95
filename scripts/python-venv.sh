#!/usr/bin/env bash
# Makes the Python test venv (make test-python) with PyPI's torch but without the CUDA wheels it can do without.
# Run: scripts/python-venv.sh VENV TORCH_VERSION [more pip requirements...]   (idempotent; prints what it chose)
#
# Why: PyPI's torch pulls ~3.3 GB of CUDA wheels (cuBLAS, cuDNN, cuFFT, NCCL, triton, ...), and a CI machine ran
# out of disk installing them. Importing torch only needs the shared libraries its CUDA library links against to
# be loadable, and this machine kind's CUDA toolkit (on the loader path) already has most of them. So: torch with
# --no-deps, its pure-Python requirements, and only the CUDA wheels whose libraries the loader cannot find (here
# cuFile, cuSPARSELt and NVSHMEM, ~0.3 GB). If torch still does not import, fall back to the full install.
set -euo pipefail
venv="$1"; torch_version="$2"; shift 2
# pip's resolver warns (as "ERROR") about each CUDA wheel of torch's left out on purpose; those lines are dropped.
pip() {
  "$venv/bin/pip" install -q --no-cache-dir "$@" 2> >(grep -Ev "dependency resolver does not currently|^torch .* requires .*, which is not installed" >&2)
}

test -x "$venv/bin/python" || python3 -m venv "$venv"
# Written only once every install below succeeded: a run that failed half-way is redone, not skipped.
done_marker="$venv/.python-venv-torch-$torch_version"
if [ ! -f "$done_marker" ]; then
  pip --no-deps "torch==$torch_version"
  # torch's own requirements, split into pure-Python ones (installed) and CUDA ones (installed only if needed).
  mapfile -t lean < <("$venv/bin/python" - <<'EOF'
import importlib.metadata as md, re, shutil, subprocess, os, sys
import sysconfig
reqs = md.requires("torch") or []
cuda_pkg = re.compile(r"^(nvidia-|cuda-|triton)")
pins = {}
for r in reqs:
    spec, _, marker = r.partition(";")
    if "extra" in marker:
        continue
    name = re.split(r"[<>=!~\[ ]", spec.strip(), maxsplit=1)[0].lower()
    if cuda_pkg.match(name):
        pins[name] = spec.strip()
    else:
        print(r.strip())  # with its marker: pip skips what is not for this platform
# Which libraries torch's CUDA library cannot load, and the requirement of torch's that ships each.
lib = os.path.join(sysconfig.get_paths()["purelib"], "torch", "lib")
out = subprocess.run(["ldd", os.path.join(lib, "libtorch_cuda.so"), os.path.join(lib, "libtorch_nvshmem.so")],
                     capture_output=True, text=True).stdout
missing = sorted({line.split()[0] for line in out.splitlines() if "not found" in line})
toolkit = pins.get("cuda-toolkit", "").split("]")[-1]   # "==13.0.2": its extras name one library each
extra = {"libcudart": "cudart", "libcublas": "cublas", "libcublasLt": "cublas", "libcufft": "cufft",
         "libcufile": "cufile", "libcurand": "curand", "libcusparse": "cusparse", "libcupti": "cupti",
         "libnvrtc": "nvrtc", "libnvJitLink": "nvjitlink", "libcusolver": "cusolver"}
wheel = {"libcusparseLt": "nvidia-cusparselt-cu13", "libnvshmem_host": "nvidia-nvshmem-cu13",
         "libnccl": "nvidia-nccl-cu13", "libcudnn": "nvidia-cudnn-cu13"}
for so in missing:
    stem = so.split(".so")[0]
    if stem in extra and toolkit:
        print(f"cuda-toolkit[{extra[stem]}]{toolkit}")
    elif stem in wheel and wheel[stem] in pins:
        print(pins[wheel[stem]])
    else:
        print(f"python-venv: no known wheel ships {so}; using the full torch install", file=sys.stderr)
        print("FULL")
EOF
)
  full=0
  ((${#lean[@]})) || full=1  # the requirement reader failed (its exit status is lost in the substitution)
  for requirement in "${lean[@]}"; do [ "$requirement" = FULL ] && full=1; done
  if ((full)) || ! pip "${lean[@]}" ||
     ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "python-venv: torch does not import without its CUDA wheels here; installing them all (~3.3 GB)"
    pip "torch==$torch_version"
  else
    echo "python-venv: torch $torch_version without the CUDA wheels the system provides; added: ${lean[*]}"
  fi
fi
if (($#)); then pip "$@"; fi
"$venv/bin/python" -c "import torch; print('python-venv: ok, torch', torch.__version__)"
touch "$done_marker"
