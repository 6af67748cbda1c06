// Optimizer kernels: Adafactor's factored and unfactored second moments, the AdamW step.

// rows[i] = decay rows[i] + (1 - decay) (mean_j g[i, j]^2 + eps); one warp per row.
FLORA_KERNEL void adafactor_row_moments(const float* g, float* rowMoments, int rows, int cols, float decay, float eps) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float* gr = g + (long long)row * cols;
    float s = 0.0f;
    for (int c = lane; c < cols; c += 32) s += gr[c] * gr[c];
    s = warp_sum(s);
    if (lane == 0) rowMoments[row] = decay * rowMoments[row] + (1.0f - decay) * (s / cols + eps);
}

// partial[chunk, c] = sum over the chunk's rows of g[:, c]^2
FLORA_KERNEL void column_partial_squares(const float* g, float* partial, int rows, int cols, int rowsPerChunk) {
    int chunk = blockIdx.y;
    int r0 = chunk * rowsPerChunk, r1 = min(rows, r0 + rowsPerChunk);
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int r = r0; r < r1; r++) { float v = g[(long long)r * cols + c]; s += v * v; }
        partial[(long long)chunk * cols + c] = s;
    }
}

// The same two for cols a multiple of 4 and 16-byte rows: a warp per row reading float4s (the row's sum taken in another
// order: lane l adds quads l, l + 32, ...), and four columns per thread (each column summed in the same order as above).
FLORA_KERNEL void adafactor_row_moments_x4(const float4* g, float* rowMoments, int rows, int cols, float decay, float eps) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31, quads = cols >> 2;
    if (row >= rows) return;
    const float4* gr = g + (long long)row * quads;
    float s = 0.0f;
    for (int q = lane; q < quads; q += 32) { float4 v = gr[q]; s += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w; }
    s = warp_sum(s);
    if (lane == 0) rowMoments[row] = decay * rowMoments[row] + (1.0f - decay) * (s / cols + eps);
}

FLORA_KERNEL void column_partial_squares_x4(const float4* g, float4* partial, int rows, int cols, int rowsPerChunk) {
    int chunk = blockIdx.y, quads = cols >> 2;
    int r0 = chunk * rowsPerChunk, r1 = min(rows, r0 + rowsPerChunk);
    for (int q = blockIdx.x * blockDim.x + threadIdx.x; q < quads; q += gridDim.x * blockDim.x) {
        float4 s = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        for (int r = r0; r < r1; r++) {
            float4 v = g[(long long)r * quads + q];
            s.x += v.x * v.x; s.y += v.y * v.y; s.z += v.z * v.z; s.w += v.w * v.w;
        }
        partial[(long long)chunk * quads + q] = s;
    }
}

// columns[c] = decay columns[c] + (1 - decay) (sum_chunks partial / rows + eps) (block_column_sum: 256 threads per 32 columns)
FLORA_KERNEL void adafactor_column_finish(const float* partial, float* columns, int chunks, int rows, int cols, float decay, float eps) {
    int c = blockIdx.x * 32 + (threadIdx.x & 31);
    float s = block_column_sum(partial, chunks, cols, c);
    if (threadIdx.x < 32 && c < cols) columns[c] = decay * columns[c] + (1.0f - decay) * (s / rows + eps);
}

// mean of the row moments into *meanOut (one block).
FLORA_KERNEL void mean_of(const float* x, float* meanOut, int n) {
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
    s = block_sum(s);
    if (threadIdx.x == 0) *meanOut = s / n;
}

// u = g / sqrt(rows_i / mean(rows) * columns_j), as rsqrt(rows_i / mean) * rsqrt(columns_j)
FLORA_KERNEL void adafactor_precondition(const float* g, const float* rowMoments, const float* columns, const float* meanRows, float* u, int rows, int cols,
                                         float alpha, float beta) {
    float mean = *meanRows;
    GRID_STRIDE(i, (long long)rows * cols) {
        long long r = i / cols;
        int c = (int)(i % cols);
        float x = alpha * (g[i] * rsqrtf(rowMoments[r] / mean) * rsqrtf(columns[c]));
        u[i] = beta == 0.0f ? x : fmaf(beta, u[i], x);              // beta = 0: u may be g
    }
}

// The same written as bf16 (beta is 0): an update that only feeds a product (FLORA's compression).
FLORA_KERNEL void adafactor_precondition_bf16(const float* g, const float* rowMoments, const float* columns, const float* meanRows, unsigned short* u,
                                              int rows, int cols, float alpha, float beta) {
    float mean = *meanRows;
    GRID_STRIDE(i, (long long)rows * cols) {
        long long r = i / cols;
        int c = (int)(i % cols);
        u[i] = to_bf16_bits(alpha * (g[i] * rsqrtf(rowMoments[r] / mean) * rsqrtf(columns[c])));
    }
}

// Both (beta 0): u in fp32 and rounded to bf16, for an update that feeds a product and is used whole too (FLORA's
// official variant compresses u, then adds the decompressed history to it).
FLORA_KERNEL void adafactor_precondition_and_bf16(const float* g, const float* rowMoments, const float* columns, const float* meanRows, float* u,
                                                  unsigned short* rounded, int rows, int cols, float alpha) {
    float mean = *meanRows;
    GRID_STRIDE(i, (long long)rows * cols) {
        long long r = i / cols;
        int c = (int)(i % cols);
        float x = alpha * (g[i] * rsqrtf(rowMoments[r] / mean) * rsqrtf(columns[c]));
        u[i] = x;
        rounded[i] = to_bf16_bits(x);
    }
}

// ---- the same, a warp per row of cols a multiple of 4 (16-byte loads): the row's factor is taken once, and no
// element index is divided; the same float operations in the same order, so the same values.

__device__ __forceinline__ float4 preconditioned4(float4 x, float rowFactor, float4 column, float alpha) {
    return make_float4(alpha * (x.x * rowFactor * rsqrtf(column.x)), alpha * (x.y * rowFactor * rsqrtf(column.y)),
                       alpha * (x.z * rowFactor * rsqrtf(column.z)), alpha * (x.w * rowFactor * rsqrtf(column.w)));
}

// u = alpha preconditioned g + beta u; where rounded is not null (beta 0), also u rounded to bf16 in the same pass.
FLORA_KERNEL void adafactor_precondition_x4(const float4* g, const float* rowMoments, const float4* columns, const float* meanRows, float4* u,
                                            uint2* rounded, int rows, int cols, float alpha, float beta) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31, quads = cols >> 2;
    if (row >= rows) return;
    float rowFactor = rsqrtf(rowMoments[row] / *meanRows);
    long long base = (long long)row * quads;
    for (int q = lane; q < quads; q += 32) {
        float4 x = preconditioned4(g[base + q], rowFactor, columns[q], alpha);
        if (beta != 0.0f) {
            float4 o = u[base + q];
            x = make_float4(fmaf(beta, o.x, x.x), fmaf(beta, o.y, x.y), fmaf(beta, o.z, x.z), fmaf(beta, o.w, x.w));
        }
        u[base + q] = x;
        if (rounded != nullptr)
            rounded[base + q] = make_uint2((unsigned int)to_bf16_bits(x.x) | ((unsigned int)to_bf16_bits(x.y) << 16),
                                           (unsigned int)to_bf16_bits(x.z) | ((unsigned int)to_bf16_bits(x.w) << 16));
    }
}

// v = decay v + (1 - decay)(g^2 + eps)
FLORA_KERNEL void squared_moving_average(const float* g, float* v, int n, float decay, float eps) {
    GRID_STRIDE(i, n) { float x = g[i]; v[i] = decay * v[i] + (1.0f - decay) * (x * x + eps); }
}

FLORA_KERNEL void divide_by_sqrt(const float* g, const float* v, float* u, int n, float alpha, float beta) {
    GRID_STRIDE(i, n) {
        float x = alpha * (g[i] * rsqrtf(v[i]));
        u[i] = beta == 0.0f ? x : fmaf(beta, u[i], x);
    }
}

FLORA_KERNEL void divide_by_sqrt_bf16(const float* g, const float* v, unsigned short* u, int n, float alpha, float beta) {
    GRID_STRIDE(i, n) u[i] = to_bf16_bits(alpha * (g[i] * rsqrtf(v[i])));
}

// p = p (1 - lr wd) - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
FLORA_KERNEL void adam_apply(float* p, const float* m, const float* v, int n, float stepSize, float sqrtBc2, float eps, float decay) {
    GRID_STRIDE(i, n) {
        float denominator = sqrtf(v[i]) / sqrtBc2 + eps;
        p[i] = p[i] * decay - stepSize * (m[i] / denominator);
    }
}

// squared_moving_average (eps 0), axpby and adam_apply in one pass, with their arithmetic: one read of p, g, m, v and
// one write of p, m, v instead of three passes.
FLORA_KERNEL void adam_step(float* p, const float* g, float* m, float* v, int n, float beta1, float beta2, float stepSize, float sqrtBc2, float eps, float decay) {
    GRID_STRIDE(i, n) {
        float x = g[i];
        float vi = beta2 * v[i] + (1.0f - beta2) * (x * x + 0.0f);
        float mi = beta1 == 1.0f ? fmaf(1.0f - beta1, x, m[i]) : beta1 == 0.0f ? (1.0f - beta1) * x : fmaf(1.0f - beta1, x, beta1 * m[i]);
        v[i] = vi;
        m[i] = mi;
        float denominator = sqrtf(vi) / sqrtBc2 + eps;
        p[i] = p[i] * decay - stepSize * (mi / denominator);
    }
}

// Adafactor's final step with device-side scalars (no round trip to the host).
// partials[2 block] = sum of a^2 over the block's share of a, partials[2 block + 1] = sum of b c over b
// (b^2 when c is null).
FLORA_KERNEL void sum_squares_pair(const float* a, int na, const float* b, const float* c, int nb, double* partials) {
    double sa = 0.0, sb = 0.0;
    GRID_STRIDE(i, na) { double x = a[i]; sa += x * x; }
    if (c == nullptr) { GRID_STRIDE(i, nb) { double x = b[i]; sb += x * x; } }
    else { GRID_STRIDE(i, nb) sb += (double)b[i] * c[i]; }
    sa = block_sum_d(sa);
    sb = block_sum_d(sb);
    if (threadIdx.x == 0) { partials[2 * blockIdx.x] = sa; partials[2 * blockIdx.x + 1] = sb; }
}

// coef[0] = 1 - wd s (the weight's factor), coef[1] = -s / clip (the update's), with
// s = lr (scale ? max(eps2, RMS(p)) : 1) and clip = max(1, RMS(u) / threshold). One block.
FLORA_KERNEL void adafactor_coefficients(const double* pPartials, int pBlocks, int pStride, long long pCount,
                                         const double* uPartials, int uBlocks, int uStride, long long uCount,
                                         float lr, float eps2, float threshold, float wd, int scale, float* coef) {
    double sp = 0.0, su = 0.0;
    for (int i = threadIdx.x; i < pBlocks; i += blockDim.x) sp += pPartials[(long long)i * pStride];
    for (int i = threadIdx.x; i < uBlocks; i += blockDim.x) su += uPartials[(long long)i * uStride];
    sp = block_sum_d(sp);
    su = block_sum_d(su);
    if (threadIdx.x == 0) {
        float rmsP = (float)sqrt(sp / (pCount > 0 ? pCount : 1)), rmsU = (float)sqrt(su / (uCount > 0 ? uCount : 1));
        float s = lr * (scale ? fmaxf(eps2, rmsP) : 1.0f);
        float clip = fmaxf(1.0f, rmsU / threshold);
        coef[0] = 1.0f - wd * s;
        coef[1] = -s / clip;
    }
}

// Adafactor's whole step for a small unfactored parameter (a bias, a norm's weight) in one block: squared_moving_average,
// divide_by_sqrt, then AdafactorUpdate's two sums of squares, coefficients and update, with the same arithmetic, so that
// a parameter costs one launch instead of five. u may be g (beta 0) or a first moment (alpha = 1 - b1, beta = b1).
FLORA_KERNEL void adafactor_unfactored_step(float* p, const float* g, float* v, float* u, int n, float decay, float eps1, float alpha, float beta,
                                            float lr, float eps2, float threshold, float wd, int scale) {
    double sp = 0.0, su = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float x = g[i];
        float vi = decay * v[i] + (1.0f - decay) * (x * x + eps1);
        float y = alpha * (x * rsqrtf(vi));
        float ui = beta == 0.0f ? y : fmaf(beta, u[i], y);
        v[i] = vi;
        u[i] = ui;
        double pd = p[i], ud = ui;
        sp += pd * pd;
        su += ud * ud;
    }
    sp = block_sum_d(sp);
    su = block_sum_d(su);
    float rmsP = (float)sqrt(sp / (n > 0 ? n : 1)), rmsU = (float)sqrt(su / (n > 0 ? n : 1));
    float s = lr * (scale ? fmaxf(eps2, rmsP) : 1.0f);
    float keep = 1.0f - wd * s, step = -s / fmaxf(1.0f, rmsU / threshold);
    for (int i = threadIdx.x; i < n; i += blockDim.x) p[i] = fmaf(step, u[i], keep * p[i]);
}

// p = coef[0] p + coef[1] u
FLORA_KERNEL void scaled_update(float* p, const float* u, const float* coef, int n) {
    float keep = coef[0], step = coef[1];
    GRID_STRIDE(i, n) p[i] = fmaf(step, u[i], keep * p[i]);
}

// ---- the same update on a bf16 weight, rounded stochastically in the same pass (bf16 weights without an fp32 copy)

// sum_squares_pair with a bf16 a (widened exactly): the same sums, in the same order, as over its fp32 copy.
FLORA_KERNEL void sum_squares_pair_bf16(const unsigned short* a, int na, const float* b, int nb, double* partials) {
    double sa = 0.0, sb = 0.0;
    GRID_STRIDE(i, na) { double x = __uint_as_float((unsigned int)a[i] << 16); sa += x * x; }
    GRID_STRIDE(i, nb) { double x = b[i]; sb += x * x; }
    sa = block_sum_d(sa);
    sb = block_sum_d(sb);
    if (threadIdx.x == 0) { partials[2 * blockIdx.x] = sa; partials[2 * blockIdx.x + 1] = sb; }
}

// p (bf16) = stochastic bf16 of scaled_update's fmaf(coef[1], u, coef[0] p) on the widened p, with the random bits
// stochastic_round_bf16 gives element i for the keys (k0, k1): the fp32 copy, the update and the rounding in one pass.
FLORA_KERNEL void scaled_update_rounded_bf16(unsigned short* p, const float* u, const float* coef, int n, unsigned int k0, unsigned int k1) {
    float keep = coef[0], step = coef[1];
    GRID_STRIDE(block, ((long long)n + 7) / 8) {
        unsigned int w[4];
        philox_words(block, k0, k1, w);
        for (int j = 0; j < 8; j++) {
            long long i = block * 8 + j;
            if (i < n) p[i] = stochastic_bf16_bits(fmaf(step, u[i], keep * __uint_as_float((unsigned int)p[i] << 16)), (j & 1) ? (w[j >> 1] >> 16) : w[j >> 1]);
        }
    }
}

__device__ __forceinline__ unsigned int scaled_rounded_pair(unsigned int pair, float u0, float u1, float keep, float step, unsigned int bits) {
    unsigned int lo = stochastic_bf16_bits(fmaf(step, u0, keep * __uint_as_float(pair << 16)), bits);
    unsigned int hi = stochastic_bf16_bits(fmaf(step, u1, keep * __uint_as_float(pair & 0xFFFF0000u)), bits >> 16);
    return lo | (hi << 16);
}

// The same for n a multiple of 8, p and u 16-byte aligned: eight elements per thread (one 16-byte p, two float4 u).
FLORA_KERNEL void scaled_update_rounded_bf16_x8(uint4* p, const float4* u, const float* coef, int blocks, unsigned int k0, unsigned int k1) {
    float keep = coef[0], step = coef[1];
    GRID_STRIDE(block, blocks) {
        unsigned int w[4];
        philox_words(block, k0, k1, w);
        uint4 h = p[block];
        float4 a = u[2 * block], b = u[2 * block + 1];
        p[block] = make_uint4(scaled_rounded_pair(h.x, a.x, a.y, keep, step, w[0]), scaled_rounded_pair(h.y, a.z, a.w, keep, step, w[1]),
                              scaled_rounded_pair(h.z, b.x, b.y, keep, step, w[2]), scaled_rounded_pair(h.w, b.z, b.w, keep, step, w[3]));
    }
}

// ---- FLORA's official variant closing a factored Adafactor step (CudaBackend.AdafactorFloraOfficialStep): these two kernels
// and two products are four passes over the (n, m) matrices where five ran. The preconditioned u is never stored in fp32:
// the first kernel rounds it to bf16 for the compression and sums u^2 and p^2; the update takes u again from g. A warp per
// row, cols a multiple of 8.

__device__ __forceinline__ unsigned int bf16_pair(float lo, float hi) {
    return (unsigned int)to_bf16_bits(lo) | ((unsigned int)to_bf16_bits(hi) << 16);
}

__device__ __forceinline__ double squares8(float4 a, float4 b) {
    return (double)a.x * a.x + (double)a.y * a.y + (double)a.z * a.z + (double)a.w * a.w
         + (double)b.x * b.x + (double)b.y * b.y + (double)b.z * b.z + (double)b.w * b.w;
}

__device__ __forceinline__ float4 widen_pair2(unsigned int lo, unsigned int hi) {
    return make_float4(__uint_as_float(lo << 16), __uint_as_float(lo & 0xFFFF0000u), __uint_as_float(hi << 16), __uint_as_float(hi & 0xFFFF0000u));
}

// rounded = bf16(u) with u = the preconditioned g (alpha 1, preconditioned4's operations); partials[2 block] = sum of u^2,
// partials[2 block + 1] = sum of p^2 over the block's rows (p Float32, or BFloat16 widened exactly when pBf16).
FLORA_KERNEL void flora_precondition_sums(const float4* g, const float* rowMoments, const float4* columns, const float* meanRows,
                                          uint4* rounded, const void* p, int pBf16, int rows, int cols, double* partials) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31, octs = cols >> 3;
    double su = 0.0, sp = 0.0;
    if (row < rows) {
        float rowFactor = rsqrtf(rowMoments[row] / *meanRows);
        long long base = (long long)row * octs;
        for (int o = lane; o < octs; o += 32) {
            long long e = base + o;
            float4 a = preconditioned4(g[2 * e], rowFactor, columns[2 * o], 1.0f), b = preconditioned4(g[2 * e + 1], rowFactor, columns[2 * o + 1], 1.0f);
            rounded[e] = make_uint4(bf16_pair(a.x, a.y), bf16_pair(a.z, a.w), bf16_pair(b.x, b.y), bf16_pair(b.z, b.w));
            su += squares8(a, b);
            if (pBf16) { uint4 h = ((const uint4*)p)[e]; sp += squares8(widen_pair2(h.x, h.y), widen_pair2(h.z, h.w)); }
            else sp += squares8(((const float4*)p)[2 * e], ((const float4*)p)[2 * e + 1]);
        }
    }
    su = block_sum_d(su);
    sp = block_sum_d(sp);
    if (threadIdx.x == 0) { partials[2 * blockIdx.x] = su; partials[2 * blockIdx.x + 1] = sp; }
}

// partials[2 block] = sum of m x, partials[2 block + 1] = sum of m c: the r-space terms of ||y||^2.
FLORA_KERNEL void dot_pair(const float* m, const float* x, const float* c, int n, double* partials) {
    double sx = 0.0, sc = 0.0;
    GRID_STRIDE(i, n) { double v = m[i]; sx += v * x[i]; sc += v * c[i]; }
    sx = block_sum_d(sx);
    sc = block_sum_d(sc);
    if (threadIdx.x == 0) { partials[2 * blockIdx.x] = sx; partials[2 * blockIdx.x + 1] = sc; }
}

// adafactor_coefficients' coef for y = (1 - beta) u + beta decompress(M), with ||decompress(M)||^2 = <M, X> (X = M A A^T
// or A A^T M) and <u, decompress(M)> = <compress(u), M>: ||y||^2 = (1 - b)^2 ||u||^2 + 2 b (1 - b) <c, M> + b^2 <M, X>.
FLORA_KERNEL void flora_official_coefficients(const double* sums, int sumBlocks, const double* dots, int dotBlocks, long long count, float beta,
                                              float lr, float eps2, float threshold, float wd, int scale, float* coef) {
    double su = 0.0, sp = 0.0, sx = 0.0, sc = 0.0;
    for (int i = threadIdx.x; i < sumBlocks; i += blockDim.x) { su += sums[2 * i]; sp += sums[2 * i + 1]; }
    for (int i = threadIdx.x; i < dotBlocks; i += blockDim.x) { sx += dots[2 * i]; sc += dots[2 * i + 1]; }
    su = block_sum_d(su);
    sp = block_sum_d(sp);
    sx = block_sum_d(sx);
    sc = block_sum_d(sc);
    if (threadIdx.x == 0) {
        double b = beta, k = 1.0 - b, n = count > 0 ? (double)count : 1.0;
        double yy = fmax(0.0, k * k * su + 2.0 * b * k * sc + b * b * sx);
        float rmsP = (float)sqrt(sp / n), rmsY = (float)sqrt(yy / n);
        float s = lr * (scale ? fmaxf(eps2, rmsP) : 1.0f);
        coef[0] = 1.0f - wd * s;
        coef[1] = -s / fmaxf(1.0f, rmsY / threshold);
    }
}

// p = coef[0] p + coef[1] y with y = (1 - beta) u + d: u the preconditioned g again (flora_precondition_sums' operations),
// d = beta decompress(M) in bf16. A bf16 p is rounded stochastically with the bits scaled_update_rounded_bf16_x8 gives
// element i (block i / 8 of the keys (k0, k1)).
FLORA_KERNEL void flora_official_update(const float4* g, const float* rowMoments, const float4* columns, const float* meanRows, const uint4* d,
                                        void* p, int pBf16, int rows, int cols, float beta, const float* coef, unsigned int k0, unsigned int k1) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31, octs = cols >> 3;
    if (row >= rows) return;
    float keep = coef[0], step = coef[1], k = 1.0f - beta;
    float rowFactor = rsqrtf(rowMoments[row] / *meanRows);
    long long base = (long long)row * octs;
    for (int o = lane; o < octs; o += 32) {
        long long e = base + o;
        float4 a = preconditioned4(g[2 * e], rowFactor, columns[2 * o], 1.0f), b = preconditioned4(g[2 * e + 1], rowFactor, columns[2 * o + 1], 1.0f);
        uint4 h = d[e];
        float4 da = widen_pair2(h.x, h.y), db = widen_pair2(h.z, h.w);
        a = make_float4(fmaf(k, a.x, da.x), fmaf(k, a.y, da.y), fmaf(k, a.z, da.z), fmaf(k, a.w, da.w));
        b = make_float4(fmaf(k, b.x, db.x), fmaf(k, b.y, db.y), fmaf(k, b.z, db.z), fmaf(k, b.w, db.w));
        if (pBf16) {
            uint4* pp = (uint4*)p;
            unsigned int w[4];
            philox_words(e, k0, k1, w);
            uint4 q = pp[e];
            pp[e] = make_uint4(scaled_rounded_pair(q.x, a.x, a.y, keep, step, w[0]), scaled_rounded_pair(q.y, a.z, a.w, keep, step, w[1]),
                               scaled_rounded_pair(q.z, b.x, b.y, keep, step, w[2]), scaled_rounded_pair(q.w, b.z, b.w, keep, step, w[3]));
        } else {
            float4* pf = (float4*)p;
            float4 p0 = pf[2 * e], p1 = pf[2 * e + 1];
            pf[2 * e] = make_float4(fmaf(step, a.x, keep * p0.x), fmaf(step, a.y, keep * p0.y), fmaf(step, a.z, keep * p0.z), fmaf(step, a.w, keep * p0.w));
            pf[2 * e + 1] = make_float4(fmaf(step, b.x, keep * p1.x), fmaf(step, b.y, keep * p1.y), fmaf(step, b.z, keep * p1.z), fmaf(step, b.w, keep * p1.w));
        }
    }
}
