// LayerNorm and RMSNorm: one warp per row for the row statistics; parameter gradients as
// deterministic two-pass column reductions (partial sums per chunk of rows, then a finish pass).

// y = (x - mean) rstd gamma + beta; saves mean and rstd.  Block: 32 x warpsPerBlock threads. y is fp32, or bf16 (the
// fp32 value rounded to nearest even) for a norm whose only reader is a product (layernorm_forward_bf16).
__device__ __forceinline__ void norm_store(float* y, long long i, float v) { y[i] = v; }
__device__ __forceinline__ void norm_store(unsigned short* y, long long i, float v) { y[i] = to_bf16_bits(v); }

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
    for (int c = lane; c < cols; c += 32) norm_store(y, (long long)row * cols + c, (xr[c] - mu) * r * gamma[c] + beta[c]);
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

// y = x rstd w, rstd = 1 / sqrt(mean(x^2) + eps)
FLORA_KERNEL void rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, int rows, int cols, float eps) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float* xr = x + (long long)row * cols;
    float s = 0.0f;
    for (int c = lane; c < cols; c += 32) s += xr[c] * xr[c];
    float r = rsqrtf(warp_sum(s) / cols + eps);
    float* yr = y + (long long)row * cols;
    for (int c = lane; c < cols; c += 32) yr[c] = xr[c] * r * w[c];
    if (lane == 0) rstd[row] = r;
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
