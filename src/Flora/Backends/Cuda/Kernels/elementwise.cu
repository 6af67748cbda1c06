// Element-wise kernels: one thread per element in a grid-stride loop.

FLORA_KERNEL void fill(float* x, float value, int n) { GRID_STRIDE(i, n) x[i] = value; }

// Every element of a 16-bit tensor = the low 16 bits of value (a bf16 pattern).
FLORA_KERNEL void fill_u16(unsigned short* x, unsigned int value, int n) { GRID_STRIDE(i, n) x[i] = (unsigned short)value; }

// bf16 -> fp32, exact: weights stored in bf16, read where fp32 is needed.
FLORA_KERNEL void bf16_to_f32(const unsigned short* x, float* y, int n) { GRID_STRIDE(i, n) y[i] = __uint_as_float((unsigned int)x[i] << 16); }

FLORA_KERNEL void add(const float* a, const float* b, float* r, int n) { GRID_STRIDE(i, n) r[i] = a[i] + b[i]; }

// y = alpha x + beta y  (beta = 1: axpy)
FLORA_KERNEL void axpby(float alpha, const float* x, float beta, float* y, int n) {
    GRID_STRIDE(i, n) y[i] = beta == 1.0f ? fmaf(alpha, x[i], y[i]) : beta == 0.0f ? alpha * x[i] : fmaf(alpha, x[i], beta * y[i]);
}

FLORA_KERNEL void scale(float* x, float alpha, int n) { GRID_STRIDE(i, n) x[i] *= alpha; }

// y[r, c] += bias[c]
FLORA_KERNEL void add_bias(float* y, const float* bias, int rows, int cols) {
    GRID_STRIDE(i, (long long)rows * cols) y[i] += bias[i % cols];
}

FLORA_KERNEL void relu(const float* x, float* y, int n) { GRID_STRIDE(i, n) y[i] = fmaxf(x[i], 0.0f); }

FLORA_KERNEL void relu_backward(const float* y, const float* dy, float* dx, int n) { GRID_STRIDE(i, n) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f; }

#define GELU_C 0.7978845608f
#define GELU_A 0.044715f

// y = 0.5 x (1 + tanh(c (x + a x^3)))
FLORA_KERNEL void gelu(const float* x, float* y, int n) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        float t = tanhf(GELU_C * (v + GELU_A * v * v * v));
        y[i] = 0.5f * v * (1.0f + t);
    }
}

// dx = dy (0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2))
FLORA_KERNEL void gelu_backward(const float* x, const float* dy, float* dx, int n) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        float t = tanhf(GELU_C * (v + GELU_A * v * v * v));
        float d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_A * v * v);
        dx[i] = dy[i] * d;
    }
}

// GELU of a bf16 pre-activation (an MLP's, kept in bf16): y = GELU(x) rounded to nearest even, as the down projection
// would round its fp32 operand; and its derivative, dx = dy GELU'(x) in fp32. x is widened exactly. One thread takes a
// pair of elements (two bf16 in 32 bits, the lower index in the low half; an odd last element alone) when every
// pointer is aligned for it (ALIGNED: tensors start 256-byte aligned; views may not), else one element.
#define ALIGNED(bytes, a, b, c) ((((unsigned long long)(a) | (unsigned long long)(b) | (unsigned long long)(c)) & ((bytes) - 1)) == 0)
__device__ __forceinline__ float bf16_low(unsigned int pair) { return __uint_as_float(pair << 16); }
__device__ __forceinline__ float bf16_high(unsigned int pair) { return __uint_as_float(pair & 0xffff0000u); }
__device__ __forceinline__ float gelu_of(float v) { return 0.5f * v * (1.0f + tanhf(GELU_C * (v + GELU_A * v * v * v))); }

FLORA_KERNEL void gelu_bf16(const unsigned short* x, unsigned short* y, int n) {
    if (!ALIGNED(4, x, y, 0)) { GRID_STRIDE(i, n) y[i] = to_bf16_bits(gelu_of(__uint_as_float((unsigned int)x[i] << 16))); return; }
    GRID_STRIDE(p, (n + 1) / 2) {
        long long i = 2 * p;
        if (i + 1 < n) {
            unsigned int pair = reinterpret_cast<const unsigned int*>(x)[p];
            reinterpret_cast<unsigned int*>(y)[p] = (unsigned int)to_bf16_bits(gelu_of(bf16_low(pair))) | ((unsigned int)to_bf16_bits(gelu_of(bf16_high(pair))) << 16);
        } else y[i] = to_bf16_bits(gelu_of(__uint_as_float((unsigned int)x[i] << 16)));
    }
}

__device__ __forceinline__ float gelu_derivative(float v) {
    float t = tanhf(GELU_C * (v + GELU_A * v * v * v));
    return 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_A * v * v);
}

FLORA_KERNEL void gelu_backward_bf16(const unsigned short* x, const float* dy, float* dx, int n) {
    if (!ALIGNED(4, x, 0, 0) || !ALIGNED(8, dy, dx, 0)) { GRID_STRIDE(i, n) dx[i] = dy[i] * gelu_derivative(__uint_as_float((unsigned int)x[i] << 16)); return; }
    GRID_STRIDE(p, (n + 1) / 2) {
        long long i = 2 * p;
        if (i + 1 < n) {
            unsigned int pair = reinterpret_cast<const unsigned int*>(x)[p];
            float2 d = reinterpret_cast<const float2*>(dy)[p];
            reinterpret_cast<float2*>(dx)[p] = make_float2(d.x * gelu_derivative(bf16_low(pair)), d.y * gelu_derivative(bf16_high(pair)));
        } else dx[i] = dy[i] * gelu_derivative(__uint_as_float((unsigned int)x[i] << 16));
    }
}

// The same with dx rounded to bf16: the up projection's output gradient, which its products read in bf16 anyway.
FLORA_KERNEL void gelu_backward_bf16_bf16(const unsigned short* x, const float* dy, unsigned short* dx, int n) {
    if (!ALIGNED(4, x, dx, 0) || !ALIGNED(8, dy, 0, 0)) { GRID_STRIDE(i, n) dx[i] = to_bf16_bits(dy[i] * gelu_derivative(__uint_as_float((unsigned int)x[i] << 16))); return; }
    GRID_STRIDE(p, (n + 1) / 2) {
        long long i = 2 * p;
        if (i + 1 < n) {
            unsigned int pair = reinterpret_cast<const unsigned int*>(x)[p];
            float2 d = reinterpret_cast<const float2*>(dy)[p];
            reinterpret_cast<unsigned int*>(dx)[p] = (unsigned int)to_bf16_bits(d.x * gelu_derivative(bf16_low(pair)))
                                                   | ((unsigned int)to_bf16_bits(d.y * gelu_derivative(bf16_high(pair))) << 16);
        } else dx[i] = to_bf16_bits(dy[i] * gelu_derivative(__uint_as_float((unsigned int)x[i] << 16)));
    }
}

// y = silu(a) b for gate a and up b, all (N, F) and contiguous.
FLORA_KERNEL void swiglu(const float* gate, const float* up, float* y, long long n) {
    GRID_STRIDE(i, n) {
        float a = gate[i], b = up[i];
        float s = 1.0f / (1.0f + expf(-a));
        y[i] = a * s * b;
    }
}

FLORA_KERNEL void swiglu_backward(const float* gate, const float* up, const float* dy, float* dGate, float* dUp, long long n) {
    GRID_STRIDE(i, n) {
        float a = gate[i], b = up[i];
        float s = 1.0f / (1.0f + expf(-a));
        float g = dy[i];
        dGate[i] = g * b * s * (1.0f + a * (1.0f - s));    // silu'(a) = s (1 + a (1 - s))
        dUp[i] = g * a * s;
    }
}

// The same with gate, up and y in bf16 (kept so because only products read them): fp32 arithmetic, y rounded to
// nearest even.
FLORA_KERNEL void swiglu_bf16(const unsigned short* gate, const unsigned short* up, unsigned short* y, long long n) {
    GRID_STRIDE(i, n) {
        float a = __uint_as_float((unsigned int)gate[i] << 16), b = __uint_as_float((unsigned int)up[i] << 16);
        float s = 1.0f / (1.0f + expf(-a));
        y[i] = to_bf16_bits(a * s * b);
    }
}

// bf16 gate and up, fp32 dy; dGate and dUp in bf16, since only the gate's and up's products read them.
FLORA_KERNEL void swiglu_backward_bf16(const unsigned short* gate, const unsigned short* up, const float* dy, unsigned short* dGate, unsigned short* dUp, long long n) {
    GRID_STRIDE(i, n) {
        float a = __uint_as_float((unsigned int)gate[i] << 16), b = __uint_as_float((unsigned int)up[i] << 16);
        float s = 1.0f / (1.0f + expf(-a));
        float g = dy[i];
        dGate[i] = to_bf16_bits(g * b * s * (1.0f + a * (1.0f - s)));
        dUp[i] = to_bf16_bits(g * a * s);
    }
}

// Column sums in two passes, deterministic: partial[chunk, c] = sum of rows [chunk * rowsPerChunk, ...) of x[:, c].
FLORA_KERNEL void column_partial_sums(const float* x, float* partial, int rows, int cols, int rowsPerChunk) {
    int chunk = blockIdx.y;
    int r0 = chunk * rowsPerChunk, r1 = min(rows, r0 + rowsPerChunk);
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int r = r0; r < r1; r++) s += x[(long long)r * cols + c];
        partial[(long long)chunk * cols + c] = s;
    }
}

// The same over a bf16 x (a gradient kept in bf16), widened exactly; four columns per thread (8-byte loads), cols a
// multiple of 4 (column_partial_sums_bf16 otherwise, one column per thread).
FLORA_KERNEL void column_partial_sums_bf16(const unsigned short* x, float* partial, int rows, int cols, int rowsPerChunk) {
    int chunk = blockIdx.y;
    int r0 = chunk * rowsPerChunk, r1 = min(rows, r0 + rowsPerChunk);
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int r = r0; r < r1; r++) s += __uint_as_float((unsigned int)x[(long long)r * cols + c] << 16);
        partial[(long long)chunk * cols + c] = s;
    }
}

FLORA_KERNEL void column_partial_sums_bf16_x4(const unsigned short* x, float* partial, int rows, int cols, int rowsPerChunk) {
    int chunk = blockIdx.y, quads = cols / 4;
    int r0 = chunk * rowsPerChunk, r1 = min(rows, r0 + rowsPerChunk);
    for (int q = blockIdx.x * blockDim.x + threadIdx.x; q < quads; q += gridDim.x * blockDim.x) {
        float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
        #pragma unroll 4
        for (int r = r0; r < r1; r++) {
            uint2 v = reinterpret_cast<const uint2*>(x + (long long)r * cols)[q];
            s.x += bf16_low(v.x); s.y += bf16_high(v.x); s.z += bf16_low(v.y); s.w += bf16_high(v.y);
        }
        reinterpret_cast<float4*>(partial + (long long)chunk * cols)[q] = s;
    }
}

// result[c] = beta result[c] + alpha sum over chunks of partial[:, c] (block_column_sum: 256 threads per 32 columns)
FLORA_KERNEL void column_finish(const float* partial, float* result, int chunks, int cols, float alpha, float beta) {
    int c = blockIdx.x * 32 + (threadIdx.x & 31);
    float s = block_column_sum(partial, chunks, cols, c);
    if (threadIdx.x < 32 && c < cols) result[c] = beta == 0.0f ? alpha * s : fmaf(alpha, s, beta * result[c]);
}

// fp32 -> bf16 (to_bf16_bits from common.cuh): the tensor-core operands of the bf16 mode.

FLORA_KERNEL void to_bf16(const float* x, unsigned short* y, int n) { GRID_STRIDE(i, n) y[i] = to_bf16_bits(x[i]); }

// A bf16 copy of x (rows, cols; cols a multiple of 4) and, on the way, the column sums of each chunk of rows (as
// column_partial_sums): a layer's output gradient is converted for its two products and summed for its bias in one
// pass. Each thread takes four columns (16-byte loads) down its chunk of rows.
FLORA_KERNEL void to_bf16_column_partials(const float* x, unsigned short* y, float* partial, int rows, int cols, int rowsPerChunk) {
    int chunk = blockIdx.y, quads = cols / 4;
    int r0 = chunk * rowsPerChunk, r1 = min(rows, r0 + rowsPerChunk);
    for (int q = blockIdx.x * blockDim.x + threadIdx.x; q < quads; q += gridDim.x * blockDim.x) {
        float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
        #pragma unroll 4
        for (int r = r0; r < r1; r++) {
            float4 v = reinterpret_cast<const float4*>(x + (long long)r * cols)[q];
            reinterpret_cast<uint2*>(y + (long long)r * cols)[q] =
                make_uint2((unsigned int)to_bf16_bits(v.x) | ((unsigned int)to_bf16_bits(v.y) << 16),
                           (unsigned int)to_bf16_bits(v.z) | ((unsigned int)to_bf16_bits(v.w) << 16));
            s.x += v.x; s.y += v.y; s.z += v.z; s.w += v.w;
        }
        reinterpret_cast<float4*>(partial + (long long)chunk * cols)[q] = s;
    }
}

FLORA_KERNEL void to_bf16_x4(const float4* x, uint2* y, int n4) {
    GRID_STRIDE(i, n4) {
        float4 v = x[i];
        y[i] = make_uint2((unsigned int)to_bf16_bits(v.x) | ((unsigned int)to_bf16_bits(v.y) << 16),
                          (unsigned int)to_bf16_bits(v.z) | ((unsigned int)to_bf16_bits(v.w) << 16));
    }
}
