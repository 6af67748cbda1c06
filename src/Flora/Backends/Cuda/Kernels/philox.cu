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
