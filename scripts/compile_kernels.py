#!/usr/bin/env python3
"""Compiles Flora's CUDA kernels with NVRTC on a machine without a GPU, to catch compile errors before GPU time.

The kernels are put together as CudaDevice.KernelSource does (common.cuh, then philox.cu, then the other .cu files in
ordinal order) and compiled with the options CudaDevice.LoadKernels uses, for sm_90. Only NVRTC is needed, no driver:
on Debian 12 it is `libnvrtc11.2` (with `libnvrtc-builtins11.8`) from the non-free component. NVRTC 11.8 is older than
the GPU machine's, so a source that passes here can still fail there, and 11.8 itself crashed (a segmentation fault,
no log) on kernels defined through a token-pasting macro, which is why the kernels are written out one by one: the GPU
run's own compilation is the final word.

Usage: scripts/compile_kernels.py [REPOSITORY_ROOT] [ARCHITECTURE]   (defaults: this repository, sm_90)
Exit code 0 when NVRTC compiles the source, 1 with its log otherwise, 2 when no NVRTC library is found.
"""
import ctypes
import glob
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
architecture = sys.argv[2] if len(sys.argv) > 2 else "sm_90"
kernels = os.path.join(root, "src", "Flora", "Backends", "Cuda", "Kernels")


def read(name):
    with open(os.path.join(kernels, name), encoding="utf-8") as f:
        return f"// ---- {name}\n" + f.read() + "\n"


names = sorted((os.path.basename(p) for p in glob.glob(os.path.join(kernels, "*.cu"))), key=lambda n: "" if n == "philox.cu" else n)
source = read("common.cuh") + "".join(read(n) for n in names)

nvrtc = None
for candidate in ("libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"):
    try:
        nvrtc = ctypes.CDLL(candidate)
        break
    except OSError:
        pass
if nvrtc is None:
    print("no NVRTC library found: on Debian 12 install libnvrtc11.2 and libnvrtc-builtins11.8 (non-free)", file=sys.stderr)
    sys.exit(2)

nvrtc.nvrtcCreateProgram.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
nvrtc.nvrtcCompileProgram.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
nvrtc.nvrtcGetProgramLogSize.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
nvrtc.nvrtcGetProgramLog.argtypes = [ctypes.c_void_p, ctypes.c_char_p]

program = ctypes.c_void_p()
if nvrtc.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"flora_kernels.cu", 0, None, None) != 0:
    print("nvrtcCreateProgram failed", file=sys.stderr)
    sys.exit(1)
options = [f"--gpu-architecture={architecture}".encode(), b"--std=c++17", b"-default-device", b"-lineinfo"]
result = nvrtc.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options))
size = ctypes.c_size_t()
nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
log = ctypes.create_string_buffer(size.value)
nvrtc.nvrtcGetProgramLog(program, log)
text = log.value.decode(errors="replace").strip()
if text:
    print(text)
print(f"{len(names)} kernel files, {len(source):,} characters: {'compiled' if result == 0 else f'NVRTC error {result}'} for {architecture}")
sys.exit(0 if result == 0 else 1)
