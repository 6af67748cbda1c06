// Embeddings, rotary positions and the softmax steps of attention (the products go to cuBLAS).

FLORA_KERNEL void embedding_forward(const float* table, const int* ids, float* out, int n, int cols) {
    GRID_STRIDE(i, (long long)n * cols) out[i] = table[(long long)ids[i / cols] * cols + i % cols];
}

// The same from a bf16 table (weights stored in bf16), widened exactly.
FLORA_KERNEL void embedding_forward_bf16(const unsigned short* table, const int* ids, float* out, int n, int cols) {
    GRID_STRIDE(i, (long long)n * cols) out[i] = __uint_as_float((unsigned int)table[(long long)ids[i / cols] * cols + i % cols] << 16);
}

// dtable[ids[r]] += alpha dout[r]  (atomics: repeated ids add up in any order)
FLORA_KERNEL void embedding_backward(const float* dout, const int* ids, float* dtable, int n, int cols, float alpha) {
    GRID_STRIDE(i, (long long)n * cols) atomicAdd(&dtable[(long long)ids[i / cols] * cols + i % cols], alpha * dout[i]);
}

// Rotate-half rotary positions in place: pair (x_i, x_{i+half}) of position t turns by t f_i, f_i = theta^(-2i/hd),
// rescaled as Llama 3 does when factor > 0 (RopeScaling.Apply: wavelengths below original / highFactor kept, above
// original / lowFactor divided by factor, smoothly interpolated between). Angles in double, as the CPU backend
// computes them; their cosines and sines are tabulated once per shape (rotary_table) and read by every rotation.
__device__ __forceinline__ double rotary_frequency(int i, int headDim, float theta, double factor, double lowFactor, double highFactor, double original) {
    double f = pow((double)theta, -2.0 * i / headDim);
    double wavelength = 2.0 * 3.141592653589793 / f;
    if (factor > 0.0 && !(wavelength < original / highFactor)) {                 // high frequencies stay as they are
        if (wavelength > original / lowFactor) f = f / factor;
        else {
            double smooth = (original / wavelength - lowFactor) / (highFactor - lowFactor);
            f = (1.0 - smooth) * f / factor + smooth * f;
        }
    }
    return f;
}

// table[t half + i] = (cos, sin) of t f_i for t < sequence, i < headDim / 2.
FLORA_KERNEL void rotary_table(float2* table, int sequence, int headDim, float theta, double factor, double lowFactor, double highFactor, double original) {
    int half = headDim / 2;
    GRID_STRIDE(k, (long long)sequence * half) {
        int t = (int)(k / half), i = (int)(k % half);
        double angle = t * rotary_frequency(i, headDim, theta, factor, lowFactor, highFactor, original);
        table[k] = make_float2((float)cos(angle), (float)sin(angle));
    }
}

// One thread per (row, head, i); sign -1 turns back (the inverse). On bf16 values (q and k kept in bf16) each pair is
// widened, turned in fp32 and rounded to nearest even.
template <typename T>
__device__ __forceinline__ void rotary_body(T* x, const float2* table, int rows, int stride, int offset, int heads, int headDim, int sequence, float sign) {
    int half = headDim / 2;
    GRID_STRIDE(k, (long long)rows * heads * half) {
        long long row = k / (heads * half);
        int rest = (int)(k % (heads * half)), h = rest / half, i = rest % half;
        int t = (int)(row % sequence);
        float2 cs = table[(long long)t * half + i];
        float c = cs.x, s = sign * cs.y;
        T* p = x + row * stride + offset + h * headDim;
        float a = load_value(p, i), b = load_value(p, i + half);
        store_value(p, i, a * c - b * s);
        store_value(p, i + half, a * s + b * c);
    }
}

FLORA_KERNEL void rotary(float* x, const float2* table, int rows, int stride, int offset, int heads, int headDim, int sequence, float sign) {
    rotary_body(x, table, rows, stride, offset, heads, headDim, sequence, sign);
}

FLORA_KERNEL void rotary_bf16(unsigned short* x, const float2* table, int rows, int stride, int offset, int heads, int headDim, int sequence, float sign) {
    rotary_body(x, table, rows, stride, offset, heads, headDim, sequence, sign);
}

// Attention kernels take `keys`: the keys of this batch element that are not padding (j >= keys gets no weight).
// Softmax of each row of scores (batchRows rows of cols) in place; causal rows keep j <= i (i = row % cols
// when queries and keys have the same length); lse[row] = max + log(sum).
FLORA_KERNEL void attention_softmax(float* scores, float* lse, int batchRows, int queries, int cols, int causal, int keys) {
    int row = blockIdx.x;
    if (row >= batchRows) return;
    float* s = scores + (long long)row * cols;
    int valid = min(causal ? (row % queries) + 1 : cols, keys);
    float m = -FLORA_INF;
    for (int c = threadIdx.x; c < valid; c += blockDim.x) m = fmaxf(m, s[c]);
    m = block_max(m);
    float sum = 0.0f;
    for (int c = threadIdx.x; c < valid; c += blockDim.x) { float e = expf(s[c] - m); s[c] = e; sum += e; }
    sum = block_sum(sum);
    float inv = 1.0f / sum;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s[c] = c < valid ? s[c] * inv : 0.0f;
    if (threadIdx.x == 0) lse[row] = m + logf(sum);
}

// P = exp(S - lse) per row (0 above the diagonal when causal).
FLORA_KERNEL void attention_probabilities(float* scores, const float* lse, int batchRows, int queries, int cols, int causal, int keys) {
    GRID_STRIDE(k, (long long)batchRows * cols) {
        long long row = k / cols;
        int c = (int)(k % cols), valid = min(causal ? (int)(row % queries) + 1 : cols, keys);
        scores[k] = c < valid ? expf(scores[k] - lse[row]) : 0.0f;
    }
}

// d[row] = sum over the head's hd columns of dO * O, for rows (t) of head h of batch b; heads batched.
// O and dO are (B*T, width) with head h at column h*hd; out is (H, T) for this batch b.
FLORA_KERNEL void attention_row_dot(const float* dO, const float* O, float* d, int queries, int heads, int headDim, int stride) {
    int warpId = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (warpId >= heads * queries) return;
    int h = warpId / queries, t = warpId % queries;
    const float *a = dO + (long long)t * stride + h * headDim, *b = O + (long long)t * stride + h * headDim;
    float s = 0.0f;
    for (int c = lane; c < headDim; c += 32) s += a[c] * b[c];
    s = warp_sum(s);
    if (lane == 0) d[warpId] = s;
}

// dS = P (dP - d[row]) in place in dP.
FLORA_KERNEL void attention_softmax_backward(const float* p, float* dp, const float* d, int batchRows, int cols) {
    GRID_STRIDE(k, (long long)batchRows * cols) dp[k] = p[k] * (dp[k] - d[k / cols]);
}

// Inverted dropout with the Philox mask of the CPU backend: element i keeps its value (times scale)
// when the uniform of word i % 4 of block i / 4 is at least p (philox_round10 comes from philox.cu).

FLORA_KERNEL void dropout(const float* x, float* y, int n, float p, float scale, unsigned int k0, unsigned int k1) {
    GRID_STRIDE(block, ((long long)n + 3) / 4) {
        unsigned int c0 = (unsigned int)block, c1 = (unsigned int)(block >> 32), c2 = 0, c3 = 0;
        philox_round10(c0, c1, c2, c3, k0, k1);
        unsigned int words[4] = {c0, c1, c2, c3};
        for (int j = 0; j < 4; j++) {
            long long i = block * 4 + j;
            if (i >= n) break;
            float u = (float)((words[j] >> 9) * 2u + 1u) * (1.0f / 16777216.0f);
            y[i] = u >= p ? x[i] * scale : 0.0f;
        }
    }
}

// bf16 variants of the attention steps: the probabilities and the score gradients become bf16 operands of
// the next products; the scores stay fp32. to_bf16_bits comes from elementwise.cu.

// Softmax of each score row (as attention_softmax) written as bf16 probabilities; lse[row] = max + log(sum).
FLORA_KERNEL void attention_softmax_bf16(const float* scores, unsigned short* p16, float* lse, int batchRows, int queries, int cols, int causal, int keys) {
    int row = blockIdx.x;
    if (row >= batchRows) return;
    const float* s = scores + (long long)row * cols;
    unsigned short* p = p16 + (long long)row * cols;
    int valid = min(causal ? (row % queries) + 1 : cols, keys);
    float m = -FLORA_INF;
    for (int c = threadIdx.x; c < valid; c += blockDim.x) m = fmaxf(m, s[c]);
    m = block_max(m);
    float sum = 0.0f;
    for (int c = threadIdx.x; c < valid; c += blockDim.x) sum += expf(s[c] - m);
    sum = block_sum(sum);
    float inv = 1.0f / sum;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) p[c] = to_bf16_bits(c < valid ? expf(s[c] - m) * inv : 0.0f);
    if (threadIdx.x == 0) lse[row] = m + logf(sum);
}

// P = exp(S - lse) as bf16 (0 above the diagonal when causal); S is kept for the backward step below.
FLORA_KERNEL void attention_probabilities_bf16(const float* scores, const float* lse, unsigned short* p16, int batchRows, int queries, int cols, int causal, int keys) {
    GRID_STRIDE(k, (long long)batchRows * cols) {
        long long row = k / cols;
        int c = (int)(k % cols), valid = min(causal ? (int)(row % queries) + 1 : cols, keys);
        p16[k] = to_bf16_bits(c < valid ? expf(scores[k] - lse[row]) : 0.0f);
    }
}

// dS = P (dP - d[row]) with P = exp(S - lse), as bf16.
FLORA_KERNEL void attention_softmax_backward_bf16(const float* scores, const float* lse, const float* dp, const float* d, unsigned short* ds16,
                                                 int batchRows, int queries, int cols, int causal, int keys) {
    GRID_STRIDE(k, (long long)batchRows * cols) {
        long long row = k / cols;
        int c = (int)(k % cols), valid = min(causal ? (int)(row % queries) + 1 : cols, keys);
        float p = c < valid ? expf(scores[k] - lse[row]) : 0.0f;
        ds16[k] = to_bf16_bits(p * (dp[k] - d[row]));
    }
}
