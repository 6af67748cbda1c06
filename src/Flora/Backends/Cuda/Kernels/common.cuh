// Shared by every Flora kernel source (prepended by CudaBackend before compilation).
// Conventions: row-major fp32 tensors; n, rows and cols are element counts that fit in an int;
// grid-stride loops for element-wise kernels; reductions accumulate in double where the CPU does.
#define FLORA_KERNEL extern "C" __global__
#define FLORA_INF __int_as_float(0x7f800000)

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// Sum over a block of up to 1024 threads; every thread gets the result.
__device__ float block_sum(float v) {
    __shared__ float partial[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    int warps = (blockDim.x + 31) >> 5;
    v = lane < warps ? partial[lane] : 0.0f;
    return warp_sum(v);
}

__device__ float block_max(float v) {
    __shared__ float partial[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    int warps = (blockDim.x + 31) >> 5;
    v = lane < warps ? partial[lane] : -FLORA_INF;
    return warp_max(v);
}

__device__ double block_sum_d(double v) {
    __shared__ double partial_d[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) partial_d[warp] = v;
    __syncthreads();
    int warps = (blockDim.x + 31) >> 5;
    v = lane < warps ? partial_d[lane] : 0.0;
    return warp_sum_d(v);
}

// fp32 -> bf16 bits with round-to-nearest-even (NaN stays NaN), as the CPU's BFloat16 conversion.
__device__ __forceinline__ unsigned short to_bf16_bits(float x) {
    unsigned int bits = __float_as_uint(x);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((bits >> 16) | 0x40u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (unsigned short)(bits >> 16);
}

// An element as fp32 and back, for kernels written once for fp32 and bf16 tensors: bf16 bits widened exactly, and
// rounded to nearest even on the way back.
__device__ __forceinline__ float load_value(const float* x, long long i) { return x[i]; }
__device__ __forceinline__ float load_value(const unsigned short* x, long long i) { return __uint_as_float((unsigned int)x[i] << 16); }
__device__ __forceinline__ void store_value(float* x, long long i, float v) { x[i] = v; }
__device__ __forceinline__ void store_value(unsigned short* x, long long i, float v) { x[i] = to_bf16_bits(v); }

// The column sums of partial (chunks x cols, row-major) that the finishing kernels take: a block of 256 threads per 32
// columns (ColumnFinish on the host), warp w adding rows w, w + 8, ... of its 32 columns (coalesced), then warp 0's
// lanes adding the eight sums in warp order (a fixed order: the same result on every run). Valid in warp 0's lanes.
__device__ __forceinline__ float block_column_sum(const float* partial, int chunks, int cols, int c) {
    __shared__ float sums[8][32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float s = 0.0f;
    if (c < cols) for (int k = warp; k < chunks; k += 8) s += partial[(long long)k * cols + c];
    sums[warp][lane] = s;
    __syncthreads();
    float t = 0.0f;
    if (warp == 0) for (int w = 0; w < 8; w++) t += sums[w][lane];
    return t;
}

#define GRID_STRIDE(i, n) for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)
