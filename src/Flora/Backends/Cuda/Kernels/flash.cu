// Fused causal/non-causal attention for head dimensions 64 and 128 on bf16 tensor cores (the FlashAttention-2
// scheme: Dao 2023). Scores and probabilities live in registers and shared memory, never in device memory; the
// forward pass keeps a running row max and sum (online softmax) and saves only the log-sum-exp per row.
// Inputs are bf16 copies (of the fused qkv tensor and of dO), staged into shared memory with cp.async into
// double buffers, so the next tile arrives while the current one is multiplied; accumulation is fp32, outputs fp32
// (the forward's O also bf16, for an attention output kept in bf16).
// The kernel bodies are templates over the head dimension D; flash_attention_forward_64/_128 and
// flash_attention_backward_64/_128 are their entry points. Key (and the backward's query) tiles have 64 rows.
//
// Tensor-core fragments of mma.m16n8k16 (row.col, bf16 in, fp32 out), g = lane / 4, t = lane % 4:
//   A (16 x 16): a0 = A[g][2t, 2t+1], a1 = A[g+8][2t, 2t+1], a2 = A[g][2t+8, 2t+9], a3 = A[g+8][2t+8, 2t+9]
//   B (16 x 8):  b0 = B[2t, 2t+1][g], b1 = B[2t+8, 2t+9][g]
//   C (16 x 8):  c0, c1 = C[g][2t, 2t+1], c2, c3 = C[g+8][2t, 2t+1]
// (each 32-bit register holds two bf16, the lower index in the low half). Fragments come from shared memory
// with ldmatrix (four 8 x 8 matrices per instruction, each lane naming one 16-byte row; .trans delivers the
// transpose, which reads B and A^T out of row-major tiles). Tiles are row-major with rows of D (or 64) elements
// padded to D + 8 (72 or 136 elements: 144 or 272 bytes, 4 banks past a multiple of 128 bytes), so the eight
// 16-byte rows of a matrix fall in 32 different banks.

#define FA_TILE 64
#define FA_LD 72                                                      // leading dimension of 64-column tiles (P, dS)

__device__ __forceinline__ void mma_bf16(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldmatrix_x4(unsigned int* r, const unsigned short* row) {
    unsigned int address = (unsigned int)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
}

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned int* r, const unsigned short* row) {
    unsigned int address = (unsigned int)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
}

__device__ __forceinline__ unsigned int pack_bf16(float lo, float hi) {
    return (unsigned int)to_bf16_bits(lo) | ((unsigned int)to_bf16_bits(hi) << 16);
}

// A fragment of rows [r0, r0 + 16), columns [k0, k0 + 16) of a row-major tile with rows ld elements apart.
__device__ __forceinline__ void load_a(unsigned int* a, const unsigned short* tile, int ld, int r0, int k0) {
    int lane = threadIdx.x & 31;
    ldmatrix_x4(a, tile + (r0 + (lane & 15)) * ld + k0 + (lane >> 4) * 8);
}

// A fragment of A = T^T for a row-major tile T: A rows [r0, r0 + 16) are columns of T, A columns [k0, k0 + 16) rows of T.
__device__ __forceinline__ void load_a_transposed(unsigned int* a, const unsigned short* tile, int ld, int r0, int k0) {
    int lane = threadIdx.x & 31;
    ldmatrix_x4_trans(a, tile + (k0 + (lane & 7) + (lane >> 4) * 8) * ld + r0 + ((lane >> 3) & 1) * 8);
}

// B fragments (b0, b1 of columns n0.. and of n0 + 8..) for k in [k0, k0 + 16) when B^T is the row-major tile (tile[n][k]).
__device__ __forceinline__ void load_b_from_rows(unsigned int* b, const unsigned short* tile, int ld, int n0, int k0) {
    int lane = threadIdx.x & 31;
    ldmatrix_x4(b, tile + (n0 + (lane & 7) + (lane >> 4) * 8) * ld + k0 + ((lane >> 3) & 1) * 8);
}

// The same when B itself is the row-major tile (tile[k][n]).
__device__ __forceinline__ void load_b_from_columns(unsigned int* b, const unsigned short* tile, int ld, int n0, int k0) {
    int lane = threadIdx.x & 31;
    ldmatrix_x4_trans(b, tile + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + n0 + (lane >> 4) * 8);
}

// Vector reductions (red.global.add.v4.f32) need sm_90 and PTX ISA 8.1 (CUDA 12.1).
#if __CUDA_ARCH__ >= 900 && (__CUDACC_VER_MAJOR__ > 12 || (__CUDACC_VER_MAJOR__ == 12 && __CUDACC_VER_MINOR__ >= 1))
#define FA_VECTOR_RED 1
#else
#define FA_VECTOR_RED 0
#endif

// x[0 .. 3] += (a, b, c, d) as one 16-byte reduction in global memory (x 16-byte aligned; each element atomic).
__device__ __forceinline__ void red_add_v4(float* x, float a, float b, float c, float d) {
#if FA_VECTOR_RED
    asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};\n" :: "l"(x), "f"(a), "f"(b), "f"(c), "f"(d) : "memory");
#else
    atomicAdd(x, a); atomicAdd(x + 1, b); atomicAdd(x + 2, c); atomicAdd(x + 3, d);
#endif
}

// Asynchronous 16-byte copy from global to shared memory; src_bytes = 0 fills zeros (rows past the end).
__device__ __forceinline__ void cp_async16(unsigned short* dst, const unsigned short* src, int srcBytes) {
    unsigned int address = (unsigned int)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(address), "l"(src), "r"(srcBytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all_but_one() { asm volatile("cp.async.wait_group 1;\n" ::); }

// Starts copying rows [r0, r0 + count) of a bf16 head slice (`rows` rows of `chunks` 16-byte chunks of 8 elements:
// chunks = D / 8) into a tile with rows ld elements apart (zeros past `rows`), one thread per chunk.
__device__ __forceinline__ void stage_tile(unsigned short* tile, int ld, int chunks, const unsigned short* src, long long stride, int r0, int rows, int count) {
    for (int i = threadIdx.x; i < count * chunks; i += blockDim.x) {
        int r = i / chunks, c = i % chunks;
        bool in = r0 + r < rows;
        cp_async16(tile + r * ld + c * 8, in ? src + (long long)(r0 + r) * stride + c * 8 : src, in ? 16 : 0);
    }
}

// C (16 x N) = A rows [r0, r0 + 16) of tile a (k = K columns) times B, where B^T is rows [n0, n0 + N) of the
// row-major (... x K) tile bt; both tiles have rows ld elements apart. c[nt][*] is the C fragment of columns
// [n0 + 8 nt, n0 + 8 nt + 8).
template <int K, int N>
__device__ __forceinline__ void warp_product_abt(float c[N / 8][4], const unsigned short* a, const unsigned short* bt, int ld, int r0, int n0) {
    #pragma unroll
    for (int nt = 0; nt < N / 8; nt++) c[nt][0] = c[nt][1] = c[nt][2] = c[nt][3] = 0.f;
    #pragma unroll
    for (int ks = 0; ks < K / 16; ks++) {
        unsigned int af[4];
        load_a(af, a, ld, r0, ks * 16);
        #pragma unroll
        for (int np = 0; np < N / 16; np++) {
            unsigned int bf[4];
            load_b_from_rows(bf, bt, ld, n0 + np * 16, ks * 16);
            mma_bf16(c[2 * np], af, bf[0], bf[1]);
            mma_bf16(c[2 * np + 1], af, bf[2], bf[3]);
        }
    }
}

// C (16 x N) += A (16 x 64, the fragments af[ks] of the four k-steps) times columns [n0, n0 + N) of the row-major
// (64 x ...) tile b with rows ld elements apart; c[nt][*] is the C fragment of columns [n0 + 8 nt, n0 + 8 nt + 8).
template <int N>
__device__ __forceinline__ void warp_product_ab(float c[N / 8][4], const unsigned int af[4][4], const unsigned short* b, int ld, int n0) {
    #pragma unroll
    for (int ks = 0; ks < 4; ks++) {
        #pragma unroll
        for (int np = 0; np < N / 16; np++) {
            unsigned int bf[4];
            load_b_from_columns(bf, b, ld, n0 + np * 16, ks * 16);
            mma_bf16(c[2 * np], af[ks], bf[0], bf[1]);
            mma_bf16(c[2 * np + 1], af[ks], bf[2], bf[3]);
        }
    }
}

// The A fragments of a 16 x 64 matrix (k = 64: four k-steps) from its columns [n0, n0 + N) held as C fragments
// (N / 8 tiles of 16 x 8): a[n0 / 16 ..] for the N / 16 k-steps they make.
template <int N>
__device__ __forceinline__ void c_to_a(const float c[N / 8][4], unsigned int a[4][4], int n0) {
    #pragma unroll
    for (int i = 0; i < N / 16; i++) {
        int ks = n0 / 16 + i;
        a[ks][0] = pack_bf16(c[2 * i][0], c[2 * i][1]);
        a[ks][1] = pack_bf16(c[2 * i][2], c[2 * i][3]);
        a[ks][2] = pack_bf16(c[2 * i + 1][0], c[2 * i + 1][1]);
        a[ks][3] = pack_bf16(c[2 * i + 1][2], c[2 * i + 1][3]);
    }
}

// Forward: grid (batch * heads, query tiles of 128: blocks start in linear order, x first, so with the tiles reversed
// every head's longest causal tile starts before any shorter one), 256 threads (8 warps x 16 query rows), dynamic shared memory
// (FusedForwardSharedBytes(D) on the host: (128 + 4 x 64) rows of D + 8 bf16); each K/V tile of 64 keys staged in
// shared memory serves all 128 rows, and the next one is in flight while it is used. q, k, v (bf16) and o (fp32)
// point at head 0 of batch 0 (the column offset applied); head h starts D h columns in, and reads key/value head
// h / group of k and v (grouped-query attention; group 1 otherwise). lse (B, H, Tq) = log sum_j exp(scale s_ij),
// natural log, as the other attention path saves it.
#define FA_QROWS 128
template <int D>
__device__ __forceinline__ void flash_attention_forward_body(unsigned short* smem, const unsigned short* q, const unsigned short* k, const unsigned short* v,
                                                             long long qStride, long long kStride, long long vStride,
                                                             void* o, int oBf16, long long oStride, float* lse, int heads, int tq, int tk, float scale, int causal,
                                                             const int* keyLengths, int group) {
    const int LD = D + 8, T = FA_TILE * LD;                           // smem: Q (128 rows), then K and V twice each
    unsigned short *Qs = smem, *Ks = Qs + FA_QROWS * LD, *Vs = Ks + 2 * T;     // Ks, Vs: buffers 0 and 1, T apart
    int tile = causal ? gridDim.y - 1 - blockIdx.y : blockIdx.y;     // the longest causal rows first
    int bh = blockIdx.x, b = bh / heads, h = bh % heads;
    int q0 = tile * FA_QROWS, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, w16 = warp * 16;
    const unsigned short* qb = q + (long long)b * tq * qStride + h * D;
    const unsigned short* kb = k + (long long)b * tk * kStride + (h / group) * D;
    const unsigned short* vb = v + (long long)b * tk * vStride + (h / group) * D;
    const float log2e = 1.4426950408889634f, sl2 = scale * log2e;

    if (keyLengths != nullptr) tk = min(tk, keyLengths[b]);           // keys past the source's length are padding
    int kend = causal ? min(tk, q0 + FA_QROWS) : tk, tiles = (kend + FA_TILE - 1) / FA_TILE;
    stage_tile(Qs, LD, D / 8, qb, qStride, q0, tq, FA_QROWS);
    stage_tile(Ks, LD, D / 8, kb, kStride, 0, tk, FA_TILE);
    stage_tile(Vs, LD, D / 8, vb, vStride, 0, tk, FA_TILE);
    cp_async_commit();
    unsigned int qf[D / 16][4];                                       // this warp's 16 rows of Q as A fragments
    float m[2] = {-FLORA_INF, -FLORA_INF}, l[2] = {0.f, 0.f}, acc[D / 8][4];
    #pragma unroll
    for (int nt = 0; nt < D / 8; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
    int rowLast = q0 + w16 + 15;                                      // this warp's last row: later keys are all masked
    for (int j = 0; j < tiles; j++) {
        int k0 = j * FA_TILE;
        if (j + 1 < tiles) {                                          // the next tile goes into the other buffer
            stage_tile(Ks + ((j + 1) & 1) * T, LD, D / 8, kb, kStride, k0 + FA_TILE, tk, FA_TILE);
            stage_tile(Vs + ((j + 1) & 1) * T, LD, D / 8, vb, vStride, k0 + FA_TILE, tk, FA_TILE);
        }
        cp_async_commit();
        cp_async_wait_all_but_one();                                  // tile j (and Q) have landed
        __syncthreads();
        if (j == 0) {
            #pragma unroll
            for (int ks = 0; ks < D / 16; ks++) load_a(qf[ks], Qs, LD, w16, ks * 16);
        }
        const unsigned short *kt = Ks + (j & 1) * T, *vt = Vs + (j & 1) * T;
        if (!(causal && k0 > rowLast)) {                              // else nothing is visible to this warp
            float s[8][4];                                            // the 64 keys of the tile
            #pragma unroll
            for (int nt = 0; nt < 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
            #pragma unroll
            for (int ks = 0; ks < D / 16; ks++) {                     // S = Q K^T (k = head dimension): B^T = K, row-major
                #pragma unroll
                for (int np = 0; np < 4; np++) {
                    unsigned int bf[4];
                    load_b_from_rows(bf, kt, LD, np * 16, ks * 16);
                    mma_bf16(s[2 * np], qf[ks], bf[0], bf[1]);
                    mma_bf16(s[2 * np + 1], qf[ks], bf[2], bf[3]);
                }
            }
            float mx[2] = {-FLORA_INF, -FLORA_INF};
            #pragma unroll
            for (int nt = 0; nt < 8; nt++) {
                #pragma unroll
                for (int e = 0; e < 4; e++) {
                    int key = k0 + nt * 8 + 2 * t + (e & 1), row = q0 + w16 + g + (e >> 1) * 8;
                    float x = s[nt][e] * sl2;
                    if (key >= tk || (causal && key > row)) x = -FLORA_INF;
                    s[nt][e] = x;
                    mx[e >> 1] = fmaxf(mx[e >> 1], x);
                }
            }
            #pragma unroll
            for (int r = 0; r < 2; r++) {
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            }
            float base[2], corr[2];
            #pragma unroll
            for (int r = 0; r < 2; r++) {
                float mNew = fmaxf(m[r], mx[r]);
                base[r] = mNew == -FLORA_INF ? 0.f : mNew;            // a row with nothing visible yet stays all zero
                corr[r] = exp2f(m[r] - base[r]);
                m[r] = mNew;
                l[r] *= corr[r];
            }
            #pragma unroll
            for (int nt = 0; nt < 8; nt++) {
                #pragma unroll
                for (int e = 0; e < 4; e++) {
                    float p = exp2f(s[nt][e] - base[e >> 1]);
                    s[nt][e] = p;
                    l[e >> 1] += p;
                }
            }
            #pragma unroll
            for (int nt = 0; nt < D / 8; nt++) {
                #pragma unroll
                for (int e = 0; e < 4; e++) acc[nt][e] *= corr[e >> 1];
            }
            unsigned int pf[4][4];
            c_to_a<64>(s, pf, 0);
            warp_product_ab<D>(acc, pf, vt, LD, 0);                   // O += P V, k = the 64 keys of the tile
        }
        __syncthreads();                                              // buffer j & 1 is free for tile j + 2
    }
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        int row = q0 + w16 + g + r * 8;
        if (row >= tq) continue;
        float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
        long long o0 = ((long long)b * tq + row) * oStride + h * D;
        #pragma unroll
        for (int nt = 0; nt < D / 8; nt++) {
            float lo = acc[nt][2 * r] * inv, hi = acc[nt][2 * r + 1] * inv;
            if (oBf16) *reinterpret_cast<unsigned int*>(static_cast<unsigned short*>(o) + o0 + nt * 8 + 2 * t) = pack_bf16(lo, hi);
            else *reinterpret_cast<float2*>(static_cast<float*>(o) + o0 + nt * 8 + 2 * t) = make_float2(lo, hi);
        }
        if (t == 0) lse[(long long)bh * tq + row] = l[r] > 0.f ? (m[r] + log2f(l[r])) / log2e : -FLORA_INF;
    }
}

FLORA_KERNEL void __launch_bounds__(256) flash_attention_forward_64(const unsigned short* q, const unsigned short* k, const unsigned short* v,
                                          long long qStride, long long kStride, long long vStride,
                                          void* o, int oBf16, long long oStride, float* lse, int heads, int tq, int tk, float scale, int causal,
                                          const int* keyLengths, int group) {
    extern __shared__ __align__(16) unsigned short smem[];
    flash_attention_forward_body<64>(smem, q, k, v, qStride, kStride, vStride, o, oBf16, oStride, lse, heads, tq, tk, scale, causal, keyLengths, group);
}

FLORA_KERNEL void __launch_bounds__(256) flash_attention_forward_128(const unsigned short* q, const unsigned short* k, const unsigned short* v,
                                          long long qStride, long long kStride, long long vStride,
                                          void* o, int oBf16, long long oStride, float* lse, int heads, int tq, int tk, float scale, int causal,
                                          const int* keyLengths, int group) {
    extern __shared__ __align__(16) unsigned short smem[];
    flash_attention_forward_body<128>(smem, q, k, v, qStride, kStride, vStride, o, oBf16, oStride, lse, heads, tq, tk, scale, causal, keyLengths, group);
}

// D[(b H + h) Tq + t] = sum_d dO[b Tq + t][hd h + d] O[b Tq + t][hd h + d]: one warp per (row, head). hd is a multiple
// of 64 (the fused kernels' 64 or 128); each step adds the products of columns d and d + 32 of one lane. O is fp32, or
// bf16 (oBf16: the output kept in bf16), widened exactly.
FLORA_KERNEL void flash_attention_row_dot(const float* dO, long long dOStride, const void* O, int oBf16, long long oStride, float* D, int rows, int heads, int tq, int hd) {
    int item = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (item >= rows * heads) return;
    int row = item / heads, h = item % heads, b = row / tq, t = row % tq;
    const float* a = dO + (long long)row * dOStride + (long long)h * hd;
    long long o0 = (long long)row * oStride + (long long)h * hd;
    auto out = [&](int d) {
        return oBf16 ? __uint_as_float((unsigned int)static_cast<const unsigned short*>(O)[o0 + d] << 16) : static_cast<const float*>(O)[o0 + d];
    };
    float s = 0.f;
    for (int d = lane; d < hd; d += 64) s += a[d] * out(d) + a[d + 32] * out(d + 32);
    s = warp_sum(s);
    if (lane == 0) D[((long long)b * heads + h) * tq + t] = s;
}

// x[r][c] = 0 for a column block (rows x cols at row stride `stride`).
FLORA_KERNEL void zero_columns(float* x, long long stride, int rows, int cols) {
    GRID_STRIDE(i, (long long)rows * cols) x[(i / cols) * stride + i % cols] = 0.f;
}

// Backward: grid (batch * key/value heads, key tiles: every head's first key tile, the longest when causal, starts
// before any later one), 128 threads, dynamic shared memory (FusedBackwardSharedBytes(D)
// on the host: six tiles of 64 rows of D + 8 bf16, two of 64 x 72, four rows of 64 floats). rowDot (B, H, Tq) holds
// the FlashAttention-2 paper's D_i = rowsum(dO_i O_i) (flash_attention_row_dot). Each block owns 64 keys of
// one key/value head: it walks the query tiles (64 rows) that can see them, for each of the `group` query heads that
// read this key/value head in turn (the next tile in flight while the current one is used), and accumulates dK and dV
// over all of them in registers; dQ (zeroed before) receives each tile's contribution through atomic adds (16-byte
// vector reductions, FA_VECTOR_RED, when dqVector says dq's rows are 16-byte aligned). Per query tile:
//   phase 1 (warp = 16 query rows): S = Q K^T, dP = dO V^T (k = D; 64 or 32 keys at a time), P = exp(scale S - lse),
//            dS = P (dP - rowDot); dQ += scale dS K (k = the 64 keys, 64 columns of dQ at a time); P and dS go to
//            shared memory (row-major, [query][key]);
//   phase 2 (warp = 16 keys): dV += P^T dO, dK += scale dS^T Q (A = P^T and dS^T through transposing loads; k = the 64 queries).
template <int D>
__device__ __forceinline__ void flash_attention_backward_body(unsigned short* smem, const unsigned short* q, const unsigned short* k, const unsigned short* v,
                                                              long long qStride, long long kStride, long long vStride,
                                                              const unsigned short* dO, long long dOStride, const float* lse, const float* rowDot,
                                                              float* dq, float* dk, float* dv, long long dqStride, long long dkStride, long long dvStride,
                                                              int heads, int tq, int tk, float scale, int causal, const int* keyLengths, int group, int dqVector) {
    const int LD = D + 8, T = FA_TILE * LD, PT = FA_TILE * FA_LD;    // T: a 64-row tile of Q, K, V or dO; PT: of P or dS
    const int KC = D == 64 ? 64 : 32;                                 // keys per pass of phase 1 (below)
    unsigned short *Ks = smem, *Vs = Ks + T, *Qs = Vs + T, *dOs = Qs + 2 * T, *Ps = dOs + 2 * T, *dSs = Ps + PT;  // Qs, dOs: two buffers
    float* lseS = reinterpret_cast<float*>(dSs + PT);                 // two buffers of 64
    float* Drow = lseS + 2 * FA_TILE;                                 // two buffers of 64 row dots
    int kvHeads = heads / group, b = blockIdx.x / kvHeads, kvh = blockIdx.x % kvHeads;
    int k0 = blockIdx.y * FA_TILE, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, w16 = warp * 16;
    const float log2e = 1.4426950408889634f, sl2 = scale * log2e;
    int validKeys = keyLengths != nullptr ? min(tk, keyLengths[b]) : tk;   // keys past the source's length are padding
    if (k0 >= validKeys) {                                            // a tile of padding keys: no gradient
        for (int i = threadIdx.x; i < FA_TILE * D; i += blockDim.x) {
            int key = k0 + i / D, d = i % D;
            if (key >= tk) continue;
            dk[((long long)b * tk + key) * dkStride + kvh * D + d] = 0.f;
            dv[((long long)b * tk + key) * dvStride + kvh * D + d] = 0.f;
        }
        return;
    }
    int qStart = causal ? k0 : 0;                                     // earlier queries see none of these keys
    int tiles = qStart < tq ? (tq - qStart + FA_TILE - 1) / FA_TILE : 0, steps = group * tiles;

    // Step j is query tile j % tiles (rows qStart + 64 (j % tiles) ..) of query head kvh group + j / tiles.
    // Stages it into buffer j & 1, with its lse (in log2 units) and row dots.
    auto stage = [&](int j) {
        int h = kvh * group + j / tiles, bh = b * heads + h, q0 = qStart + (j % tiles) * FA_TILE, buffer = j & 1;
        stage_tile(Qs + buffer * T, LD, D / 8, q + (long long)b * tq * qStride + h * D, qStride, q0, tq, FA_TILE);
        stage_tile(dOs + buffer * T, LD, D / 8, dO + (long long)b * tq * dOStride + h * D, dOStride, q0, tq, FA_TILE);
        for (int r = threadIdx.x; r < FA_TILE; r += blockDim.x) {
            bool in = q0 + r < tq;
            lseS[buffer * FA_TILE + r] = in ? lse[(long long)bh * tq + q0 + r] * log2e : 0.f;
            Drow[buffer * FA_TILE + r] = in ? rowDot[(long long)bh * tq + q0 + r] : 0.f;
        }
    };
    stage_tile(Ks, LD, D / 8, k + (long long)b * tk * kStride + kvh * D, kStride, k0, tk, FA_TILE);
    stage_tile(Vs, LD, D / 8, v + (long long)b * tk * vStride + kvh * D, vStride, k0, tk, FA_TILE);
    if (steps > 0) stage(0);
    cp_async_commit();
    float dkAcc[D / 8][4], dvAcc[D / 8][4];                           // this warp's 16 keys x D
    #pragma unroll
    for (int nt = 0; nt < D / 8; nt++) {
        #pragma unroll
        for (int e = 0; e < 4; e++) dkAcc[nt][e] = dvAcc[nt][e] = 0.f;
    }
    for (int j = 0; j < steps; j++) {
        int h = kvh * group + j / tiles, q0 = qStart + (j % tiles) * FA_TILE, buffer = j & 1;
        if (j + 1 < steps) stage(j + 1);
        cp_async_commit();
        cp_async_wait_all_but_one();                                  // tile j (and K, V) have landed
        __syncthreads();
        const unsigned short *qt = Qs + buffer * T, *dot = dOs + buffer * T;
        const float *lseT = lseS + buffer * FA_TILE, *dT = Drow + buffer * FA_TILE;
        // ---- phase 1: this warp's 16 query rows against the block's 64 keys, KC keys at a time: one pass at D = 64, two
        // of 32 keys at D = 128, so that S and dP take 32 registers rather than 64 beside the 128 of dK and dV
        unsigned int sf[4][4];                                        // dS as A fragments (k = the 64 keys), for dQ
        #pragma unroll
        for (int kc = 0; kc < FA_TILE; kc += KC) {
            float s[KC / 8][4], dp[KC / 8][4];
            warp_product_abt<D, KC>(s, qt, Ks, LD, w16, kc);
            warp_product_abt<D, KC>(dp, dot, Vs, LD, w16, kc);
            #pragma unroll
            for (int nt = 0; nt < KC / 8; nt++) {
                #pragma unroll
                for (int r = 0; r < 2; r++) {
                    int col = kc + nt * 8 + 2 * t, rowInTile = w16 + g + r * 8, row = q0 + rowInTile;
                    float p[2], ds[2];
                    #pragma unroll
                    for (int e = 0; e < 2; e++) {
                        int key = k0 + col + e;
                        bool visible = row < tq && key < validKeys && !(causal && key > row);
                        p[e] = visible ? exp2f(s[nt][2 * r + e] * sl2 - lseT[rowInTile]) : 0.f;
                        ds[e] = p[e] * (dp[nt][2 * r + e] - dT[rowInTile]);
                        s[nt][2 * r + e] = ds[e];                     // s now holds dS (C fragments)
                    }
                    *reinterpret_cast<unsigned int*>(Ps + rowInTile * FA_LD + col) = pack_bf16(p[0], p[1]);
                    *reinterpret_cast<unsigned int*>(dSs + rowInTile * FA_LD + col) = pack_bf16(ds[0], ds[1]);
                }
            }
            c_to_a<KC>(s, sf, kc);
        }
        // dQ rows (16 x D) += scale dS K: k = the 64 keys, B = K (row-major [key][d]), 64 columns of dQ at a time, the
        // chunks not unrolled so that one 16 x 64 block of fp32 accumulators (32 registers) is live at once, whatever D is
        #pragma unroll 1
        for (int c0 = 0; c0 < D; c0 += 64) {
            float dqPart[8][4];
            #pragma unroll
            for (int nt = 0; nt < 8; nt++) dqPart[nt][0] = dqPart[nt][1] = dqPart[nt][2] = dqPart[nt][3] = 0.f;
            warp_product_ab<64>(dqPart, sf, Ks, LD, c0);
#if FA_VECTOR_RED
            if (dqVector) {
                // 16-byte reductions (a quarter of the atomic transactions): lanes t and t ^ 1 swap half their fragments,
                // so that an even t holds columns 2t .. 2t + 3 of row g and an odd t columns 2t - 2 .. 2t + 1 of row g + 8.
                bool odd = t & 1;
                int row = q0 + w16 + g + (odd ? 8 : 0);
                float* dqRow = dq + ((long long)b * tq + row) * dqStride + h * D + c0 + 2 * (t & ~1);
                #pragma unroll
                for (int nt = 0; nt < 8; nt++) {
                    float r0 = __shfl_xor_sync(0xffffffffu, odd ? dqPart[nt][0] : dqPart[nt][2], 1);
                    float r1 = __shfl_xor_sync(0xffffffffu, odd ? dqPart[nt][1] : dqPart[nt][3], 1);
                    float x0 = odd ? r0 : dqPart[nt][0], x1 = odd ? r1 : dqPart[nt][1], x2 = odd ? dqPart[nt][2] : r0, x3 = odd ? dqPart[nt][3] : r1;
                    if (row < tq) red_add_v4(dqRow + nt * 8, scale * x0, scale * x1, scale * x2, scale * x3);
                }
                continue;
            }
#endif
            #pragma unroll
            for (int r = 0; r < 2; r++) {
                int row = q0 + w16 + g + r * 8;
                if (row >= tq) continue;
                float* dqRow = dq + ((long long)b * tq + row) * dqStride + h * D + c0;   // h: this step's query head
                #pragma unroll
                for (int nt = 0; nt < 8; nt++) {
                    atomicAdd(dqRow + nt * 8 + 2 * t, scale * dqPart[nt][2 * r]);
                    atomicAdd(dqRow + nt * 8 + 2 * t + 1, scale * dqPart[nt][2 * r + 1]);
                }
            }
        }
        __syncthreads();                                              // P and dS complete
        // ---- phase 2: this warp's 16 keys; k = the 64 queries of the tile
        #pragma unroll
        for (int ks = 0; ks < 4; ks++) {
            unsigned int pa[4], sa[4];
            load_a_transposed(pa, Ps, FA_LD, w16, ks * 16);           // P^T rows = keys
            load_a_transposed(sa, dSs, FA_LD, w16, ks * 16);
            #pragma unroll
            for (int np = 0; np < D / 16; np++) {
                unsigned int bo[4], bq[4];
                load_b_from_columns(bo, dot, LD, np * 16, ks * 16);   // B = dO (row-major [query][d])
                load_b_from_columns(bq, qt, LD, np * 16, ks * 16);    // B = Q
                mma_bf16(dvAcc[2 * np], pa, bo[0], bo[1]);
                mma_bf16(dvAcc[2 * np + 1], pa, bo[2], bo[3]);
                mma_bf16(dkAcc[2 * np], sa, bq[0], bq[1]);
                mma_bf16(dkAcc[2 * np + 1], sa, bq[2], bq[3]);
            }
        }
        __syncthreads();                                              // buffer j & 1, P and dS are free again
    }
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        int key = k0 + w16 + g + r * 8;
        if (key >= tk) continue;
        float* dkRow = dk + ((long long)b * tk + key) * dkStride + kvh * D;
        float* dvRow = dv + ((long long)b * tk + key) * dvStride + kvh * D;
        #pragma unroll
        for (int nt = 0; nt < D / 8; nt++) {
            *reinterpret_cast<float2*>(dkRow + nt * 8 + 2 * t) = make_float2(scale * dkAcc[nt][2 * r], scale * dkAcc[nt][2 * r + 1]);
            *reinterpret_cast<float2*>(dvRow + nt * 8 + 2 * t) = make_float2(dvAcc[nt][2 * r], dvAcc[nt][2 * r + 1]);
        }
    }
}

FLORA_KERNEL void __launch_bounds__(128) flash_attention_backward_64(const unsigned short* q, const unsigned short* k, const unsigned short* v,
                                           long long qStride, long long kStride, long long vStride,
                                           const unsigned short* dO, long long dOStride, const float* lse, const float* rowDot,
                                           float* dq, float* dk, float* dv, long long dqStride, long long dkStride, long long dvStride,
                                           int heads, int tq, int tk, float scale, int causal, const int* keyLengths, int group, int dqVector) {
    extern __shared__ __align__(16) unsigned short smem[];
    flash_attention_backward_body<64>(smem, q, k, v, qStride, kStride, vStride, dO, dOStride, lse, rowDot, dq, dk, dv, dqStride, dkStride, dvStride,
                                      heads, tq, tk, scale, causal, keyLengths, group, dqVector);
}

FLORA_KERNEL void __launch_bounds__(128) flash_attention_backward_128(const unsigned short* q, const unsigned short* k, const unsigned short* v,
                                           long long qStride, long long kStride, long long vStride,
                                           const unsigned short* dO, long long dOStride, const float* lse, const float* rowDot,
                                           float* dq, float* dk, float* dv, long long dqStride, long long dkStride, long long dvStride,
                                           int heads, int tq, int tk, float scale, int causal, const int* keyLengths, int group, int dqVector) {
    extern __shared__ __align__(16) unsigned short smem[];
    flash_attention_backward_body<128>(smem, q, k, v, qStride, kStride, vStride, dO, dOStride, lse, rowDot, dq, dk, dv, dqStride, dkStride, dvStride,
                                       heads, tq, tk, scale, causal, keyLengths, group, dqVector);
}
