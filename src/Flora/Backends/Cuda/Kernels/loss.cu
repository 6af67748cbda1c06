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
