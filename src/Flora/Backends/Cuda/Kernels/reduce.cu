// Whole-tensor reductions in double: each block writes one partial, the host adds the partials.
// kind: 0 sum, 1 sum of squares, 2 sum of magnitudes, 3 dot with b.
FLORA_KERNEL void reduce_partials(const float* a, const float* b, double* partials, int n, int kind) {
    double s = 0.0;
    GRID_STRIDE(i, n) {
        double x = a[i];
        s += kind == 0 ? x : kind == 1 ? x * x : kind == 2 ? fabs(x) : x * (double)b[i];
    }
    s = block_sum_d(s);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// Largest magnitude: one partial per block.
FLORA_KERNEL void max_magnitude_partials(const float* a, float* partials, int n) {
    float m = 0.0f;
    GRID_STRIDE(i, n) m = fmaxf(m, fabsf(a[i]));
    m = block_max(m);
    if (threadIdx.x == 0) partials[blockIdx.x] = m;
}
