// Philox4x32-10 and its Box-Muller Gaussian, bit-identical to Flora.Backends.Philox on the CPU:
// the same IEEE single-precision operations in the same order, with explicit fused multiply-adds
// and round-to-nearest intrinsics (this module is also compiled with --fmad=false).

__device__ __forceinline__ void philox_round10(unsigned int& c0, unsigned int& c1, unsigned int& c2, unsigned int& c3, unsigned int k0, unsigned int k1) {
    for (int round = 0; round < 10; round++) {
        if (round > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        unsigned long long p0 = (unsigned long long)0xD2511F53u * c0;
        unsigned long long p1 = (unsigned long long)0xCD9E8D57u * c2;
        unsigned int hi0 = (unsigned int)(p0 >> 32), lo0 = (unsigned int)p0, hi1 = (unsigned int)(p1 >> 32), lo1 = (unsigned int)p1;
        unsigned int n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    }
}

__device__ __forceinline__ float philox_uniform(unsigned int x) {
    return __fmul_rn(__uint2float_rn((x >> 9) * 2u + 1u), 1.0f / 16777216.0f);
}

__device__ __forceinline__ float philox_log(float u) {
    int bits = __float_as_int(u);
    int e = ((bits >> 23) & 0xFF) - 127;
    float m = __int_as_float((bits & 0x007FFFFF) | 0x3F800000);
    if (m > 1.41421356f) { m = __fmul_rn(m, 0.5f); e += 1; }
    float s = __fdiv_rn(__fsub_rn(m, 1.0f), __fadd_rn(m, 1.0f));
    float s2 = __fmul_rn(s, s);
    float p = __fmaf_rn(s2, 1.0f / 11.0f, 1.0f / 9.0f);
    p = __fmaf_rn(s2, p, 1.0f / 7.0f);
    p = __fmaf_rn(s2, p, 1.0f / 5.0f);
    p = __fmaf_rn(s2, p, 1.0f / 3.0f);
    p = __fmaf_rn(s2, p, 1.0f);
    float lnM = __fmul_rn(__fmul_rn(2.0f, s), p);
    float ef = __int2float_rn(e);
    return __fmaf_rn(ef, 0.693145752f, __fmaf_rn(ef, 1.42860677e-06f, lnM));
}

__device__ __forceinline__ void philox_sincos_turns(float t, float& sn, float& cs) {
    float quarters = __fmul_rn(t, 4.0f);
    int q = __float2int_rz(quarters);
    float x = __fmul_rn(__fsub_rn(quarters, __int2float_rn(q)), 1.57079637f);
    float x2 = __fmul_rn(x, x);
    float s = __fmaf_rn(x2, 1.60590438e-10f, -2.50521084e-08f);
    s = __fmaf_rn(x2, s, 2.75573192e-06f);
    s = __fmaf_rn(x2, s, -1.98412698e-04f);
    s = __fmaf_rn(x2, s, 8.33333333e-03f);
    s = __fmaf_rn(x2, s, -1.66666667e-01f);
    s = __fmaf_rn(__fmul_rn(x2, x), s, x);
    float c = __fmaf_rn(x2, -1.14707456e-11f, 2.08767570e-09f);
    c = __fmaf_rn(x2, c, -2.75573192e-07f);
    c = __fmaf_rn(x2, c, 2.48015873e-05f);
    c = __fmaf_rn(x2, c, -1.38888889e-03f);
    c = __fmaf_rn(x2, c, 4.16666667e-02f);
    c = __fmaf_rn(x2, c, -0.5f);
    c = __fmaf_rn(x2, c, 1.0f);
    switch (q & 3) {
        case 0: sn = s; cs = c; break;
        case 1: sn = c; cs = -s; break;
        case 2: sn = -s; cs = -c; break;
        default: sn = -c; cs = s; break;
    }
}

// The four Gaussians of Philox block `block` (Box-Muller on its four uniforms), times stddev.
__device__ __forceinline__ void philox_gaussians(long long block, unsigned int k0, unsigned int k1, float stddev, float* z) {
    unsigned int c0 = (unsigned int)block, c1 = (unsigned int)((unsigned long long)block >> 32), c2 = 0, c3 = 0;
    philox_round10(c0, c1, c2, c3, k0, k1);
    float sn, cs;
    float r = __fsqrt_rn(__fmul_rn(-2.0f, philox_log(philox_uniform(c0))));
    philox_sincos_turns(philox_uniform(c1), sn, cs);
    z[0] = __fmul_rn(stddev, __fmul_rn(r, cs)); z[1] = __fmul_rn(stddev, __fmul_rn(r, sn));
    r = __fsqrt_rn(__fmul_rn(-2.0f, philox_log(philox_uniform(c2))));
    philox_sincos_turns(philox_uniform(c3), sn, cs);
    z[2] = __fmul_rn(stddev, __fmul_rn(r, cs)); z[3] = __fmul_rn(stddev, __fmul_rn(r, sn));
}

// The same values rounded to bf16: projections that only feed bf16 products are generated in bf16.
FLORA_KERNEL void fill_gaussian_bf16(unsigned short* x, int n, unsigned int k0, unsigned int k1, float stddev) {
    GRID_STRIDE(block, ((long long)n + 3) / 4) {
        float z[4];
        philox_gaussians(block, k0, k1, stddev, z);
        for (int j = 0; j < 4; j++) {
            long long i = block * 4 + j;
            if (i < n) x[i] = to_bf16_bits(z[j]);
        }
    }
}

// x[i] = std * z(seed, i) for i < n; one thread per block of four values.
FLORA_KERNEL void fill_gaussian(float* x, int n, unsigned int k0, unsigned int k1, float stddev) {
    GRID_STRIDE(block, ((long long)n + 3) / 4) {
        float z[4];
        philox_gaussians(block, k0, k1, stddev, z);
        for (int j = 0; j < 4; j++) {
            long long i = block * 4 + j;
            if (i < n) x[i] = z[j];
        }
    }
}

// ---- stochastic rounding to bf16 (Flora.Backends.StochasticRounding and BFloat16.RoundStochastic on the CPU)
// Element i takes 16 bits of Philox block i / 8 under the key (k0, k1): word (i / 2) % 4, its low half for even i and
// its high half for odd i. bf16(x) = (bits(x) + r) >> 16 rounds |x| up with probability equal to the dropped fraction.

__device__ __forceinline__ unsigned short stochastic_bf16_bits(float x, unsigned int r) {
    unsigned int bits = __float_as_uint(x);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((bits >> 16) | 0x40u);
    return (unsigned short)((bits + (r & 0xffffu)) >> 16);
}

// The four words of Philox block `block` (one block serves eight elements).
__device__ __forceinline__ void philox_words(long long block, unsigned int k0, unsigned int k1, unsigned int* w) {
    unsigned int c0 = (unsigned int)block, c1 = (unsigned int)((unsigned long long)block >> 32), c2 = 0, c3 = 0;
    philox_round10(c0, c1, c2, c3, k0, k1);
    w[0] = c0; w[1] = c1; w[2] = c2; w[3] = c3;
}

// y[i] = stochastic bf16 of x[i], one thread per block of eight elements (any n, any alignment).
FLORA_KERNEL void stochastic_round_bf16(const float* x, unsigned short* y, int n, unsigned int k0, unsigned int k1) {
    GRID_STRIDE(block, ((long long)n + 7) / 8) {
        unsigned int w[4];
        philox_words(block, k0, k1, w);
        for (int j = 0; j < 8; j++) {
            long long i = block * 8 + j;
            if (i < n) y[i] = stochastic_bf16_bits(x[i], (j & 1) ? (w[j >> 1] >> 16) : w[j >> 1]);
        }
    }
}

// The same for n a multiple of 8 with x 16-byte and y 16-byte aligned: two float4 loads and one 16-byte store per thread.
FLORA_KERNEL void stochastic_round_bf16_x8(const float4* x, uint4* y, int blocks, unsigned int k0, unsigned int k1) {
    GRID_STRIDE(block, blocks) {
        unsigned int w[4];
        philox_words(block, k0, k1, w);
        float4 a = x[2 * block], b = x[2 * block + 1];
        unsigned int h0 = stochastic_bf16_bits(a.x, w[0]), h1 = stochastic_bf16_bits(a.y, w[0] >> 16);
        unsigned int h2 = stochastic_bf16_bits(a.z, w[1]), h3 = stochastic_bf16_bits(a.w, w[1] >> 16);
        unsigned int h4 = stochastic_bf16_bits(b.x, w[2]), h5 = stochastic_bf16_bits(b.y, w[2] >> 16);
        unsigned int h6 = stochastic_bf16_bits(b.z, w[3]), h7 = stochastic_bf16_bits(b.w, w[3] >> 16);
        y[block] = make_uint4(h0 | (h1 << 16), h2 | (h3 << 16), h4 | (h5 << 16), h6 | (h7 << 16));
    }
}
