// Softmax cross-entropy: one block per row. loss[row] = log(sum exp(x - max)) + max - x[target],
// or -1 when the target is negative (ignored row); the host sums the rows that count.

FLORA_KERNEL void softmax_cross_entropy(const float* logits, const int* targets, float* probs, float* loss, int rows, int cols) {
    int row = blockIdx.x;
    if (row >= rows) return;
    const float* x = logits + (long long)row * cols;
    float* p = probs + (long long)row * cols;                  // may be the logits themselves (in place)
    int t = targets[row];
    __shared__ float target;
    if (threadIdx.x == 0) target = t < 0 ? 0.0f : x[t];       // read before p overwrites x
    float m = -FLORA_INF;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, x[c]);
    m = block_max(m);
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) { float e = expf(x[c] - m); p[c] = e; s += e; }
    s = block_sum(s);
    float inv = 1.0f / s;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) p[c] *= inv;
    if (threadIdx.x == 0) loss[row] = t < 0 ? -1.0f : logf(s) + m - target;
}

// dlogits = scale (p - onehot(target)) for counted rows, 0 for ignored ones.
FLORA_KERNEL void softmax_cross_entropy_backward(const float* probs, const int* targets, float* dlogits, int rows, int cols, float scale) {
    GRID_STRIDE(i, (long long)rows * cols) {
        long long r = i / cols;
        int c = (int)(i % cols), t = targets[r];
        dlogits[i] = t < 0 ? 0.0f : scale * (probs[i] - (c == t ? 1.0f : 0.0f));
    }
}

// counter += 1 for each row whose argmax (first index of the maximum) equals its target.
FLORA_KERNEL void count_correct(const float* logits, const int* targets, int* counter, int rows, int cols) {
    int row = blockIdx.x;
    if (row >= rows) return;
    const float* x = logits + (long long)row * cols;
    __shared__ float best[32];
    __shared__ int bestIndex[32];
    float v = -FLORA_INF;
    int index = 0x7fffffff;
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        if (x[c] > v) { v = x[c]; index = c; }
    for (int offset = 16; offset > 0; offset >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, offset);
        int oi = __shfl_xor_sync(0xffffffffu, index, offset);
        if (ov > v || (ov == v && oi < index)) { v = ov; index = oi; }
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { best[warp] = v; bestIndex[warp] = index; }
    __syncthreads();
    if (threadIdx.x == 0) {
        int warps = (blockDim.x + 31) >> 5;
        for (int w = 1; w < warps; w++)
            if (best[w] > v || (best[w] == v && bestIndex[w] < index)) { v = best[w]; index = bestIndex[w]; }
        if (v == best[0] && bestIndex[0] < index) index = bestIndex[0];
        int t = targets[row];
        if (t >= 0 && index == t) atomicAdd(counter, 1);
    }
}

// ---- the fused output projection + cross-entropy (LinearCrossEntropy): logits chunks have a row stride ld
// (the vocabulary rounded up to a multiple of 8, so that every row starts 32-byte aligned for the products).

// Max M and sum S of exp(x - M) over a row of the block, in one pass (each thread keeps a running max and
// rescales its sum when the max grows), float4 loads up to the last multiple of 4.
__device__ void row_max_sum(const float* x, int cols, float& M, float& S) {
    float m = -FLORA_INF, s = 0.0f;
    int vec = cols / 4;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    for (int i = threadIdx.x; i < vec; i += blockDim.x) {
        float4 v = x4[i];
        float top = fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w));
        if (top > m) { s *= expf(m - top); m = top; }
        s += expf(v.x - m) + expf(v.y - m) + expf(v.z - m) + expf(v.w - m);
    }
    for (int c = vec * 4 + threadIdx.x; c < cols; c += blockDim.x) {
        float v = x[c];
        if (v > m) { s *= expf(m - v); m = v; }
        s += expf(v - m);
    }
    M = block_max(m);
    S = block_sum(m == -FLORA_INF ? 0.0f : s * expf(m - M));
}

// loss[row] = log S + M - x[target], or -1 for an ignored row (target < 0). One block per row.
FLORA_KERNEL void cross_entropy_rows(const float* logits, long long ld, const int* targets, float* loss, int rows, int cols) {
    int row = blockIdx.x;
    if (row >= rows) return;
    const float* x = logits + row * ld;
    float M, S;
    row_max_sum(x, cols, M, S);
    int t = targets[row];
    if (threadIdx.x == 0) loss[row] = t < 0 ? -1.0f : logf(S) + M - x[t];
}

// As cross_entropy_rows, and dlogits = scale (softmax - onehot(target)) (0 on ignored rows) in place, fp32.
FLORA_KERNEL void cross_entropy_backward_f32(float* logits, long long ld, const int* targets, float* loss, int rows, int cols, float scale) {
    int row = blockIdx.x;
    if (row >= rows) return;
    float* x = logits + row * ld;
    float M, S;
    row_max_sum(x, cols, M, S);
    int t = targets[row];
    float target = t < 0 ? 0.0f : x[t];
    __syncthreads();                                             // every thread has read x[t] before it is overwritten
    if (threadIdx.x == 0) loss[row] = t < 0 ? -1.0f : logf(S) + M - target;
    float k = t < 0 ? 0.0f : scale / S;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) x[c] = k * expf(x[c] - M) - (c == t ? scale : 0.0f);
}

FLORA_KERNEL void zero_u16(unsigned short* x, long long n) { GRID_STRIDE(i, n) x[i] = 0; }

// ---- the same with the logits in bf16 (bf16 mode: the product writes them so, as autocast does), four per 8-byte load.

__device__ __forceinline__ float bf16_to_float(unsigned short h) { return __uint_as_float((unsigned int)h << 16); }

__device__ void row_max_sum_bf16(const unsigned short* x, int cols, float& M, float& S) {
    float m = -FLORA_INF, s = 0.0f;
    int vec = cols / 4;
    const uint2* x4 = reinterpret_cast<const uint2*>(x);
    for (int i = threadIdx.x; i < vec; i += blockDim.x) {
        uint2 p = x4[i];
        float v0 = __uint_as_float(p.x << 16), v1 = __uint_as_float(p.x & 0xffff0000u), v2 = __uint_as_float(p.y << 16), v3 = __uint_as_float(p.y & 0xffff0000u);
        float top = fmaxf(fmaxf(v0, v1), fmaxf(v2, v3));
        if (top > m) { s *= expf(m - top); m = top; }
        s += expf(v0 - m) + expf(v1 - m) + expf(v2 - m) + expf(v3 - m);
    }
    for (int c = vec * 4 + threadIdx.x; c < cols; c += blockDim.x) {
        float v = bf16_to_float(x[c]);
        if (v > m) { s *= expf(m - v); m = v; }
        s += expf(v - m);
    }
    M = block_max(m);
    S = block_sum(m == -FLORA_INF ? 0.0f : s * expf(m - M));
}

// cross_entropy_rows for bf16 logits.
FLORA_KERNEL void cross_entropy_rows_bf16(const unsigned short* logits, long long ld, const int* targets, float* loss, int rows, int cols) {
    int row = blockIdx.x;
    if (row >= rows) return;
    const unsigned short* x = logits + row * ld;
    float M, S;
    row_max_sum_bf16(x, cols, M, S);
    int t = targets[row];
    if (threadIdx.x == 0) loss[row] = t < 0 ? -1.0f : logf(S) + M - bf16_to_float(x[t]);
}

// cross_entropy_backward_f32 for bf16 logits, the bf16 gradients written over them (row stride ld, a multiple of 4; columns
// past cols set to 0). The target's logit is read before the block's reductions, so before any gradient is written.
FLORA_KERNEL void cross_entropy_backward_bf16_in_place(unsigned short* logits, long long ld, const int* targets, float* loss, int rows, int cols, float scale) {
    int row = blockIdx.x;
    if (row >= rows) return;
    unsigned short* x = logits + row * ld;
    int t = targets[row];
    float xt = t < 0 ? 0.0f : bf16_to_float(x[t]);
    float M, S;
    row_max_sum_bf16(x, cols, M, S);
    if (threadIdx.x == 0) loss[row] = t < 0 ? -1.0f : logf(S) + M - xt;
    float k = t < 0 ? 0.0f : scale / S, hit = t < 0 ? 0.0f : scale;
    int vec = cols / 4;
    uint2* x4 = reinterpret_cast<uint2*>(x);
    for (int i = threadIdx.x; i < vec; i += blockDim.x) {
        uint2 p = x4[i];
        int c = i * 4;
        float v0 = __uint_as_float(p.x << 16), v1 = __uint_as_float(p.x & 0xffff0000u), v2 = __uint_as_float(p.y << 16), v3 = __uint_as_float(p.y & 0xffff0000u);
        float a0 = k * expf(v0 - M) - (c == t ? hit : 0.0f), a1 = k * expf(v1 - M) - (c + 1 == t ? hit : 0.0f);
        float a2 = k * expf(v2 - M) - (c + 2 == t ? hit : 0.0f), a3 = k * expf(v3 - M) - (c + 3 == t ? hit : 0.0f);
        x4[i] = make_uint2((unsigned int)to_bf16_bits(a0) | ((unsigned int)to_bf16_bits(a1) << 16),
                           (unsigned int)to_bf16_bits(a2) | ((unsigned int)to_bf16_bits(a3) << 16));
    }
    for (int c = vec * 4 + threadIdx.x; c < cols; c += blockDim.x) x[c] = to_bf16_bits(k * expf(bf16_to_float(x[c]) - M) - (c == t ? hit : 0.0f));
    for (int c = cols + threadIdx.x; c < ld; c += blockDim.x) x[c] = 0;       // padding columns: read by the dx product
}
