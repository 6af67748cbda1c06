// LayerNorm and RMSNorm: one warp per row for the row statistics; parameter gradients as
// deterministic two-pass column reductions (partial sums per chunk of rows, then a finish pass).

// y = (x - mean) rstd gamma + beta; saves mean and rstd.  Block: 32 x warpsPerBlock threads. y is fp32, or bf16 (the
// fp32 value rounded to nearest even: store_value) for a norm whose only reader is a product (layernorm_forward_bf16).

template <typename T>
__device__ __forceinline__ void layernorm_forward_body(const float* x, const float* gamma, const float* beta, T* y, float* mean, float* rstd,
                                                       int rows, int cols, float eps) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float* xr = x + (long long)row * cols;
    float s = 0.0f;
    for (int c = lane; c < cols; c += 32) s += xr[c];
    float mu = warp_sum(s) / cols;
    float v = 0.0f;
    for (int c = lane; c < cols; c += 32) { float d = xr[c] - mu; v += d * d; }
    float r = rsqrtf(warp_sum(v) / cols + eps);
    for (int c = lane; c < cols; c += 32) store_value(y, (long long)row * cols + c, (xr[c] - mu) * r * gamma[c] + beta[c]);
    if (lane == 0) { mean[row] = mu; rstd[row] = r; }
}

FLORA_KERNEL void layernorm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                                    int rows, int cols, float eps) {
    layernorm_forward_body(x, gamma, beta, y, mean, rstd, rows, cols, eps);
}

FLORA_KERNEL void layernorm_forward_bf16(const float* x, const float* gamma, const float* beta, unsigned short* y, float* mean, float* rstd,
                                         int rows, int cols, float eps) {
    layernorm_forward_body(x, gamma, beta, y, mean, rstd, rows, cols, eps);
}

// dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dxhat = dy gamma; plus residual[row] when given (a pre-norm
// block's skip connection, added in the same pass).
FLORA_KERNEL void layernorm_backward_dx(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                                        const float* residual, float* dx, int rows, int cols) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float *xr = x + (long long)row * cols, *dyr = dy + (long long)row * cols;
    float mu = mean[row], r = rstd[row];
    float sd = 0.0f, sdx = 0.0f;
    for (int c = lane; c < cols; c += 32) {
        float xhat = (xr[c] - mu) * r, d = dyr[c] * gamma[c];
        sd += d; sdx += d * xhat;
    }
    float meanD = warp_sum(sd) / cols, meanDX = warp_sum(sdx) / cols;
    float* dxr = dx + (long long)row * cols;
    for (int c = lane; c < cols; c += 32) {
        float xhat = (xr[c] - mu) * r, d = dyr[c] * gamma[c];
        float v = r * (d - meanD - xhat * meanDX);
        dxr[c] = residual != nullptr ? residual[(long long)row * cols + c] + v : v;
    }
}

// partial[chunk, c] = sum over the chunk's rows of dy xhat (and of dy when dBetaPartial is given).
FLORA_KERNEL void layernorm_backward_params(const float* dy, const float* x, const float* mean, const float* rstd,
                                            float* dGammaPartial, float* dBetaPartial, int rows, int cols, int rowsPerChunk) {
    int chunk = blockIdx.y;
    int r0 = chunk * rowsPerChunk, r1 = min(rows, r0 + rowsPerChunk);
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x) {
        float g = 0.0f, b = 0.0f;
        for (int r = r0; r < r1; r++) {
            float d = dy[(long long)r * cols + c];
            float xhat = mean == nullptr ? x[(long long)r * cols + c] * rstd[r] : (x[(long long)r * cols + c] - mean[r]) * rstd[r];
            g += d * xhat;
            b += d;
        }
        dGammaPartial[(long long)chunk * cols + c] = g;
        if (dBetaPartial != nullptr) dBetaPartial[(long long)chunk * cols + c] = b;
    }
}

// ---- rows of at most 1,024 columns, a multiple of 128 (GPT-2's 768 and 1,024): each lane keeps its columns of the row in
// registers (NORM_X4 float4s, read with 16-byte loads), so that the row is read once however many passes the math takes.
#define NORM_X4 8

__device__ __forceinline__ void norm_store4(float* y, long long i, float a, float b, float c, float d) {
    *reinterpret_cast<float4*>(y + i) = make_float4(a, b, c, d);
}
__device__ __forceinline__ void norm_store4(unsigned short* y, long long i, float a, float b, float c, float d) {
    *reinterpret_cast<uint2*>(y + i) = make_uint2((unsigned int)to_bf16_bits(a) | ((unsigned int)to_bf16_bits(b) << 16),
                                                  (unsigned int)to_bf16_bits(c) | ((unsigned int)to_bf16_bits(d) << 16));
}

template <typename T>
__device__ __forceinline__ void layernorm_forward_x4_body(const float* x, const float* gamma, const float* beta, T* y, float* mean, float* rstd,
                                                          int rows, int cols, float eps) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31, n4 = cols >> 7;
    if (row >= rows) return;
    const float4 *xr = reinterpret_cast<const float4*>(x + (long long)row * cols), *g4 = reinterpret_cast<const float4*>(gamma),
                 *b4 = reinterpret_cast<const float4*>(beta);
    float4 xv[NORM_X4];
    float s = 0.0f;
    #pragma unroll
    for (int i = 0; i < NORM_X4; i++) if (i < n4) { xv[i] = xr[i * 32 + lane]; s += xv[i].x + xv[i].y + xv[i].z + xv[i].w; }
    float mu = warp_sum(s) / cols, v = 0.0f;
    #pragma unroll
    for (int i = 0; i < NORM_X4; i++) if (i < n4) {
        float a = xv[i].x - mu, b = xv[i].y - mu, c = xv[i].z - mu, d = xv[i].w - mu;
        v += a * a + b * b + c * c + d * d;
    }
    float r = rsqrtf(warp_sum(v) / cols + eps);
    #pragma unroll
    for (int i = 0; i < NORM_X4; i++) if (i < n4) {
        int c4 = i * 32 + lane;
        float4 g = g4[c4], b = b4[c4];
        norm_store4(y, (long long)row * cols + 4 * c4, (xv[i].x - mu) * r * g.x + b.x, (xv[i].y - mu) * r * g.y + b.y,
                    (xv[i].z - mu) * r * g.z + b.z, (xv[i].w - mu) * r * g.w + b.w);
    }
    if (lane == 0) { mean[row] = mu; rstd[row] = r; }
}

FLORA_KERNEL void layernorm_forward_x4(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                                       int rows, int cols, float eps) {
    layernorm_forward_x4_body(x, gamma, beta, y, mean, rstd, rows, cols, eps);
}

FLORA_KERNEL void layernorm_forward_bf16_x4(const float* x, const float* gamma, const float* beta, unsigned short* y, float* mean, float* rstd,
                                            int rows, int cols, float eps) {
    layernorm_forward_x4_body(x, gamma, beta, y, mean, rstd, rows, cols, eps);
}

// layernorm_backward_dx with x hat and dy gamma kept in registers.
FLORA_KERNEL void layernorm_backward_dx_x4(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                                           const float* residual, float* dx, int rows, int cols) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31, n4 = cols >> 7;
    if (row >= rows) return;
    long long base = (long long)row * cols;
    const float4 *xr = reinterpret_cast<const float4*>(x + base), *dyr = reinterpret_cast<const float4*>(dy + base),
                 *g4 = reinterpret_cast<const float4*>(gamma);
    float mu = mean[row], r = rstd[row], sd = 0.0f, sdx = 0.0f;
    float4 xh[NORM_X4], dd[NORM_X4];                                  // x hat and dy gamma
    #pragma unroll
    for (int i = 0; i < NORM_X4; i++) if (i < n4) {
        int c4 = i * 32 + lane;
        float4 xa = xr[c4], da = dyr[c4], g = g4[c4];
        xh[i] = make_float4((xa.x - mu) * r, (xa.y - mu) * r, (xa.z - mu) * r, (xa.w - mu) * r);
        dd[i] = make_float4(da.x * g.x, da.y * g.y, da.z * g.z, da.w * g.w);
        sd += dd[i].x + dd[i].y + dd[i].z + dd[i].w;
        sdx += dd[i].x * xh[i].x + dd[i].y * xh[i].y + dd[i].z * xh[i].z + dd[i].w * xh[i].w;
    }
    float meanD = warp_sum(sd) / cols, meanDX = warp_sum(sdx) / cols;
    #pragma unroll
    for (int i = 0; i < NORM_X4; i++) if (i < n4) {
        int c4 = i * 32 + lane;
        float4 o = make_float4(r * (dd[i].x - meanD - xh[i].x * meanDX), r * (dd[i].y - meanD - xh[i].y * meanDX),
                               r * (dd[i].z - meanD - xh[i].z * meanDX), r * (dd[i].w - meanD - xh[i].w * meanDX));
        if (residual != nullptr) {
            float4 a = reinterpret_cast<const float4*>(residual + base)[c4];
            o = make_float4(a.x + o.x, a.y + o.y, a.z + o.z, a.w + o.w);
        }
        reinterpret_cast<float4*>(dx + base)[c4] = o;
    }
}

// y = x rstd w, rstd = 1 / sqrt(mean(x^2) + eps); y fp32, or bf16 rounded to nearest even (rmsnorm_forward_bf16) for a
// norm whose only reader is a product.
template <typename T>
__device__ __forceinline__ void rmsnorm_forward_body(const float* x, const float* w, T* y, float* rstd, int rows, int cols, float eps) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float* xr = x + (long long)row * cols;
    float s = 0.0f;
    for (int c = lane; c < cols; c += 32) s += xr[c] * xr[c];
    float r = rsqrtf(warp_sum(s) / cols + eps);
    for (int c = lane; c < cols; c += 32) store_value(y, (long long)row * cols + c, xr[c] * r * w[c]);
    if (lane == 0) rstd[row] = r;
}

FLORA_KERNEL void rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, int rows, int cols, float eps) {
    rmsnorm_forward_body(x, w, y, rstd, rows, cols, eps);
}

FLORA_KERNEL void rmsnorm_forward_bf16(const float* x, const float* w, unsigned short* y, float* rstd, int rows, int cols, float eps) {
    rmsnorm_forward_body(x, w, y, rstd, rows, cols, eps);
}

// dx = rstd (dxhat - xhat mean(dxhat xhat)), dxhat = dy w, xhat = x rstd; plus residual[row] when given.
FLORA_KERNEL void rmsnorm_backward_dx(const float* dy, const float* x, const float* rstd, const float* w, const float* residual, float* dx,
                                      int rows, int cols) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float *xr = x + (long long)row * cols, *dyr = dy + (long long)row * cols;
    float r = rstd[row], sdx = 0.0f;
    for (int c = lane; c < cols; c += 32) sdx += dyr[c] * w[c] * xr[c] * r;
    float meanDX = warp_sum(sdx) / cols;
    float* dxr = dx + (long long)row * cols;
    for (int c = lane; c < cols; c += 32) {
        float v = r * (dyr[c] * w[c] - xr[c] * r * meanDX);
        dxr[c] = residual != nullptr ? residual[(long long)row * cols + c] + v : v;
    }
}

// ---- RMSNorm on rows of a multiple of 4 columns up to 256 x 4 x NORM_ROW_X4 (the Llama family's 2,048 to 8,192): a block
// per row, each thread keeping its float4s of the row (columns 4 (i blockDim + thread) ..) in registers, so the row is
// read once with 16-byte loads and a block's worth of loads is in flight (a warp per row, above, leaves most of the
// memory bandwidth unused at these widths). The same float operations per element; the row sums in another order.
#define NORM_ROW_X4 8

template <typename T>
__device__ __forceinline__ void rmsnorm_forward_rows_body(const float* x, const float* w, T* y, float* rstd, int cols, float eps) {
    int row = blockIdx.x, n4 = cols >> 2;
    long long base = (long long)row * cols;
    const float4 *xr = reinterpret_cast<const float4*>(x + base), *w4 = reinterpret_cast<const float4*>(w);
    float4 xv[NORM_ROW_X4];
    float s = 0.0f;
    #pragma unroll
    for (int i = 0; i < NORM_ROW_X4; i++) {
        int c4 = i * blockDim.x + threadIdx.x;
        if (c4 < n4) { xv[i] = xr[c4]; s += xv[i].x * xv[i].x + xv[i].y * xv[i].y + xv[i].z * xv[i].z + xv[i].w * xv[i].w; }
    }
    float r = rsqrtf(block_sum(s) / cols + eps);
    #pragma unroll
    for (int i = 0; i < NORM_ROW_X4; i++) {
        int c4 = i * blockDim.x + threadIdx.x;
        if (c4 < n4) {
            float4 g = w4[c4];
            norm_store4(y, base + 4 * c4, xv[i].x * r * g.x, xv[i].y * r * g.y, xv[i].z * r * g.z, xv[i].w * r * g.w);
        }
    }
    if (threadIdx.x == 0) rstd[row] = r;
}

FLORA_KERNEL void rmsnorm_forward_rows(const float* x, const float* w, float* y, float* rstd, int cols, float eps) {
    rmsnorm_forward_rows_body(x, w, y, rstd, cols, eps);
}

FLORA_KERNEL void rmsnorm_forward_rows_bf16(const float* x, const float* w, unsigned short* y, float* rstd, int cols, float eps) {
    rmsnorm_forward_rows_body(x, w, y, rstd, cols, eps);
}

// rmsnorm_backward_dx and the weight gradient's partial sums in one pass: block b takes rows b, b + gridDim.x, ..., and
// each thread adds dy xhat of its columns over those rows in registers, written at the end as row b of dwPartial
// (gridDim.x x cols; column_finish adds the rows). dy, x and the residual are read once instead of twice.
FLORA_KERNEL void rmsnorm_backward_rows(const float* dy, const float* x, const float* rstd, const float* w, const float* residual, float* dx,
                                        float* dwPartial, int rows, int cols) {
    int n4 = cols >> 2;
    const float4* w4 = reinterpret_cast<const float4*>(w);
    float4 dw[NORM_ROW_X4];
    #pragma unroll
    for (int i = 0; i < NORM_ROW_X4; i++) dw[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int row = blockIdx.x; row < rows; row += gridDim.x) {
        long long base = (long long)row * cols;
        const float4 *xr = reinterpret_cast<const float4*>(x + base), *dyr = reinterpret_cast<const float4*>(dy + base);
        float r = rstd[row], sdx = 0.0f;
        float4 xh[NORM_ROW_X4], dd[NORM_ROW_X4];                     // x hat and dy w
        #pragma unroll
        for (int i = 0; i < NORM_ROW_X4; i++) {
            int c4 = i * blockDim.x + threadIdx.x;
            if (c4 < n4) {
                float4 xa = xr[c4], da = dyr[c4], g = w4[c4];
                xh[i] = make_float4(xa.x * r, xa.y * r, xa.z * r, xa.w * r);
                dd[i] = make_float4(da.x * g.x, da.y * g.y, da.z * g.z, da.w * g.w);
                sdx += dd[i].x * xh[i].x + dd[i].y * xh[i].y + dd[i].z * xh[i].z + dd[i].w * xh[i].w;
                dw[i] = make_float4(dw[i].x + da.x * xh[i].x, dw[i].y + da.y * xh[i].y, dw[i].z + da.z * xh[i].z, dw[i].w + da.w * xh[i].w);
            }
        }
        float meanDX = block_sum(sdx) / cols;
        #pragma unroll
        for (int i = 0; i < NORM_ROW_X4; i++) {
            int c4 = i * blockDim.x + threadIdx.x;
            if (c4 < n4) {
                float4 o = make_float4(r * (dd[i].x - xh[i].x * meanDX), r * (dd[i].y - xh[i].y * meanDX),
                                       r * (dd[i].z - xh[i].z * meanDX), r * (dd[i].w - xh[i].w * meanDX));
                if (residual != nullptr) {
                    float4 a = reinterpret_cast<const float4*>(residual + base)[c4];
                    o = make_float4(a.x + o.x, a.y + o.y, a.z + o.z, a.w + o.w);
                }
                reinterpret_cast<float4*>(dx + base)[c4] = o;
            }
        }
    }
    #pragma unroll
    for (int i = 0; i < NORM_ROW_X4; i++) {
        int c4 = i * blockDim.x + threadIdx.x;
        if (c4 < n4) reinterpret_cast<float4*>(dwPartial + (long long)blockIdx.x * cols)[c4] = dw[i];
    }
}
