// Fused causal/non-causal attention for head dimension 64 on bf16 tensor cores (the FlashAttention-2 scheme:
// Dao 2023). Scores and probabilities live in registers and shared memory, never in device memory; the
// forward pass keeps a running row max and sum (online softmax) and saves only the log-sum-exp per row.
// Inputs stay fp32 in device memory (columns of the fused qkv tensor) and are rounded to bf16 as tiles are
// staged into shared memory; accumulation is fp32.
//
// Tensor-core fragments of mma.m16n8k16 (row.col, bf16 in, fp32 out), g = lane / 4, t = lane % 4:
//   A (16 x 16): a0 = A[g][2t, 2t+1], a1 = A[g+8][2t, 2t+1], a2 = A[g][2t+8, 2t+9], a3 = A[g+8][2t+8, 2t+9]
//   B (16 x 8):  b0 = B[2t, 2t+1][g], b1 = B[2t+8, 2t+9][g]
//   C (16 x 8):  c0, c1 = C[g][2t, 2t+1], c2, c3 = C[g+8][2t, 2t+1]
// (each 32-bit register holds two bf16, the lower index in the low half). Tiles are 64 x 64 with rows
// padded to 72 elements so that the fragment loads of a warp hit 32 different banks.

#define FA_D 64
#define FA_TILE 64
#define FA_LD 72

__device__ __forceinline__ void mma_bf16(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ unsigned int pack_bf16(float lo, float hi) {
    return (unsigned int)to_bf16_bits(lo) | ((unsigned int)to_bf16_bits(hi) << 16);
}

// Two consecutive bf16 of a row-major tile (the pair at [row][col], [row][col + 1]).
__device__ __forceinline__ unsigned int pair_along_row(const unsigned short* s, int row, int col) {
    return *reinterpret_cast<const unsigned int*>(s + row * FA_LD + col);
}

// Two bf16 of a column of a row-major tile (the pair at [row][col], [row + 1][col]).
__device__ __forceinline__ unsigned int pair_along_column(const unsigned short* s, int row, int col) {
    return (unsigned int)s[row * FA_LD + col] | ((unsigned int)s[(row + 1) * FA_LD + col] << 16);
}

// Stages rows [r0, r0 + 64) of a (rows x 64) fp32 head slice into a bf16 tile (zeros past `rows`).
// transposed: tile[col][row] instead of tile[row][col].
__device__ void stage_tile(unsigned short* tile, const float* src, long long stride, int r0, int rows, bool transposed) {
    for (int i = threadIdx.x; i < FA_TILE * (FA_D / 4); i += blockDim.x) {
        // Row-major staging walks a row with 16 threads (coalesced); transposed staging walks rows (no bank conflicts).
        int r = transposed ? i % FA_TILE : i / (FA_D / 4), c4 = transposed ? i / FA_TILE : i % (FA_D / 4);
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (r0 + r < rows) v = *reinterpret_cast<const float4*>(src + (long long)(r0 + r) * stride + c4 * 4);
        if (transposed) {
            tile[(c4 * 4 + 0) * FA_LD + r] = to_bf16_bits(v.x);
            tile[(c4 * 4 + 1) * FA_LD + r] = to_bf16_bits(v.y);
            tile[(c4 * 4 + 2) * FA_LD + r] = to_bf16_bits(v.z);
            tile[(c4 * 4 + 3) * FA_LD + r] = to_bf16_bits(v.w);
        } else {
            *reinterpret_cast<uint2*>(tile + r * FA_LD + c4 * 4) = make_uint2(pack_bf16(v.x, v.y), pack_bf16(v.z, v.w));
        }
    }
}

// S (16 x 64) of this warp = A rows [w16, w16 + 16) of tile a (row-major, k = 64 columns) times B^T, B row-major
// (64 x 64: row n is column n of the product). s[nt][*] is the C fragment of columns [8 nt, 8 nt + 8).
__device__ __forceinline__ void warp_product_abt(float s[8][4], const unsigned short* a, const unsigned short* b, int w16) {
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    for (int nt = 0; nt < 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
    for (int ks = 0; ks < 4; ks++) {
        unsigned int af[4] = {pair_along_row(a, w16 + g, ks * 16 + 2 * t), pair_along_row(a, w16 + g + 8, ks * 16 + 2 * t),
                              pair_along_row(a, w16 + g, ks * 16 + 2 * t + 8), pair_along_row(a, w16 + g + 8, ks * 16 + 2 * t + 8)};
        for (int nt = 0; nt < 8; nt++)
            mma_bf16(s[nt], af, pair_along_row(b, nt * 8 + g, ks * 16 + 2 * t), pair_along_row(b, nt * 8 + g, ks * 16 + 2 * t + 8));
    }
}

// The A fragments of a 16 x 64 matrix held as C fragments (8 tiles of 16 x 8), for k-step ks (columns 16 ks ..).
__device__ __forceinline__ void c_to_a(const float c[8][4], int ks, unsigned int* a) {
    a[0] = pack_bf16(c[2 * ks][0], c[2 * ks][1]);
    a[1] = pack_bf16(c[2 * ks][2], c[2 * ks][3]);
    a[2] = pack_bf16(c[2 * ks + 1][0], c[2 * ks + 1][1]);
    a[3] = pack_bf16(c[2 * ks + 1][2], c[2 * ks + 1][3]);
}

// Forward: grid (query tiles, batch * heads), 128 threads (4 warps x 16 query rows).
// q, k, v, o point at head 0 of batch 0 (the column offset already applied); head h starts 64 h columns in.
// lse (B, H, Tq) = log sum_j exp(scale s_ij), natural log, as the other attention path saves it.
FLORA_KERNEL void flash_attention_forward(const float* q, const float* k, const float* v, long long qStride, long long kStride, long long vStride,
                                          float* o, long long oStride, float* lse, int heads, int tq, int tk, float scale, int causal) {
    __shared__ __align__(16) unsigned short Qs[FA_TILE * FA_LD], Ks[FA_TILE * FA_LD], Vt[FA_D * FA_LD];
    int tile = causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;     // the longest causal rows first
    int bh = blockIdx.y, b = bh / heads, h = bh % heads;
    int q0 = tile * FA_TILE, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, w16 = warp * 16;
    const float* qb = q + (long long)b * tq * qStride + h * FA_D;
    const float* kb = k + (long long)b * tk * kStride + h * FA_D;
    const float* vb = v + (long long)b * tk * vStride + h * FA_D;
    const float log2e = 1.4426950408889634f, sl2 = scale * log2e;

    stage_tile(Qs, qb, qStride, q0, tq, false);
    float m[2] = {-FLORA_INF, -FLORA_INF}, l[2] = {0.f, 0.f}, acc[8][4];
    for (int nt = 0; nt < 8; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
    int kend = causal ? min(tk, q0 + FA_TILE) : tk;
    for (int k0 = 0; k0 < kend; k0 += FA_TILE) {
        __syncthreads();                                              // the previous tiles are consumed
        stage_tile(Ks, kb, kStride, k0, tk, false);
        stage_tile(Vt, vb, vStride, k0, tk, true);                    // Vt[d][key]: B of P V pairs along keys
        __syncthreads();
        float s[8][4];
        warp_product_abt(s, Qs, Ks, w16);
        float mx[2] = {-FLORA_INF, -FLORA_INF};
        for (int nt = 0; nt < 8; nt++)
            for (int e = 0; e < 4; e++) {
                int key = k0 + nt * 8 + 2 * t + (e & 1), row = q0 + w16 + g + (e >> 1) * 8;
                float x = s[nt][e] * sl2;
                if (key >= tk || (causal && key > row)) x = -FLORA_INF;
                s[nt][e] = x;
                mx[e >> 1] = fmaxf(mx[e >> 1], x);
            }
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        }
        float base[2], corr[2];
        for (int r = 0; r < 2; r++) {
            float mNew = fmaxf(m[r], mx[r]);
            base[r] = mNew == -FLORA_INF ? 0.f : mNew;                // a row with nothing visible yet stays all zero
            corr[r] = exp2f(m[r] - base[r]);
            m[r] = mNew;
            l[r] *= corr[r];
        }
        for (int nt = 0; nt < 8; nt++)
            for (int e = 0; e < 4; e++) {
                float p = exp2f(s[nt][e] - base[e >> 1]);
                s[nt][e] = p;
                l[e >> 1] += p;
                acc[nt][e] *= corr[e >> 1];
            }
        for (int ks = 0; ks < 4; ks++) {                              // O += P V, k = the 64 keys of the tile
            unsigned int af[4];
            c_to_a(s, ks, af);
            for (int nt = 0; nt < 8; nt++)
                mma_bf16(acc[nt], af, pair_along_row(Vt, nt * 8 + g, ks * 16 + 2 * t), pair_along_row(Vt, nt * 8 + g, ks * 16 + 2 * t + 8));
        }
    }
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
    for (int r = 0; r < 2; r++) {
        int row = q0 + w16 + g + r * 8;
        if (row >= tq) continue;
        float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
        float* orow = o + ((long long)b * tq + row) * oStride + h * FA_D;
        for (int nt = 0; nt < 8; nt++)
            *reinterpret_cast<float2*>(orow + nt * 8 + 2 * t) = make_float2(acc[nt][2 * r] * inv, acc[nt][2 * r + 1] * inv);
        if (t == 0) lse[(long long)bh * tq + row] = l[r] > 0.f ? (m[r] + log2f(l[r])) / log2e : -FLORA_INF;
    }
}

// D[(b H + h) Tq + t] = sum_d dO[b Tq + t][64 h + d] O[b Tq + t][64 h + d]: one warp per (row, head).
FLORA_KERNEL void flash_attention_row_dot(const float* dO, long long dOStride, const float* O, long long oStride, float* D, int rows, int heads, int tq) {
    int item = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (item >= rows * heads) return;
    int row = item / heads, h = item % heads, b = row / tq, t = row % tq;
    const float* a = dO + (long long)row * dOStride + h * FA_D;
    const float* c = O + (long long)row * oStride + h * FA_D;
    float s = a[lane] * c[lane] + a[lane + 32] * c[lane + 32];
    s = warp_sum(s);
    if (lane == 0) D[((long long)b * heads + h) * tq + t] = s;
}

// x[r][c] = 0 for a column block (rows x cols at row stride `stride`).
FLORA_KERNEL void zero_columns(float* x, long long stride, int rows, int cols) {
    GRID_STRIDE(i, (long long)rows * cols) x[(i / cols) * stride + i % cols] = 0.f;
}

// Backward: grid (key tiles, batch * heads), 128 threads, dynamic shared memory FLASH_BACKWARD_SHARED bytes.
// Each block owns 64 keys: it walks the query tiles that can see them and accumulates dK and dV in registers;
// dQ (zeroed before) receives each tile's contribution through atomic adds. Per query tile:
//   phase 1 (warp = 16 query rows): S = Q K^T, dP = dO V^T, P = exp(scale S - lse), dS = P (dP - D);
//            dQ += scale dS K; P^T and dS^T go to shared memory;
//   phase 2 (warp = 16 keys): dV += P^T dO, dK += scale dS^T Q.
FLORA_KERNEL void flash_attention_backward(const float* q, const float* k, const float* v, long long qStride, long long kStride, long long vStride,
                                           const float* dO, long long dOStride, const float* lse, const float* D,
                                           float* dq, float* dk, float* dv, long long dqStride, long long dkStride, long long dvStride,
                                           int heads, int tq, int tk, float scale, int causal) {
    extern __shared__ __align__(16) unsigned short smem[];
    unsigned short *Ks = smem, *Vs = Ks + FA_TILE * FA_LD, *Qs = Vs + FA_TILE * FA_LD, *dOs = Qs + FA_TILE * FA_LD;
    unsigned short *Pt = dOs + FA_TILE * FA_LD, *dSt = Pt + FA_TILE * FA_LD;
    float* lseS = reinterpret_cast<float*>(dSt + FA_TILE * FA_LD);
    float* Drow = lseS + FA_TILE;
    int bh = blockIdx.y, b = bh / heads, h = bh % heads;
    int k0 = blockIdx.x * FA_TILE, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, w16 = warp * 16;
    const float log2e = 1.4426950408889634f, sl2 = scale * log2e;
    const float* qb = q + (long long)b * tq * qStride + h * FA_D;
    const float* dOb = dO + (long long)b * tq * dOStride + h * FA_D;
    stage_tile(Ks, k + (long long)b * tk * kStride + h * FA_D, kStride, k0, tk, false);
    stage_tile(Vs, v + (long long)b * tk * vStride + h * FA_D, vStride, k0, tk, false);
    float dkAcc[8][4], dvAcc[8][4];
    for (int nt = 0; nt < 8; nt++)
        for (int e = 0; e < 4; e++) dkAcc[nt][e] = dvAcc[nt][e] = 0.f;
    int qStart = causal ? (k0 / FA_TILE) * FA_TILE : 0;                // earlier queries see none of these keys
    for (int q0 = qStart; q0 < tq; q0 += FA_TILE) {
        __syncthreads();                                              // the previous query tile is consumed
        stage_tile(Qs, qb, qStride, q0, tq, false);
        stage_tile(dOs, dOb, dOStride, q0, tq, false);
        for (int r = threadIdx.x; r < FA_TILE; r += blockDim.x) {
            bool in = q0 + r < tq;
            lseS[r] = in ? lse[(long long)bh * tq + q0 + r] * log2e : 0.f;
            Drow[r] = in ? D[(long long)bh * tq + q0 + r] : 0.f;
        }
        __syncthreads();
        // ---- phase 1: this warp's 16 query rows against the block's 64 keys
        float s[8][4], dp[8][4];
        warp_product_abt(s, Qs, Ks, w16);
        warp_product_abt(dp, dOs, Vs, w16);
        for (int nt = 0; nt < 8; nt++)
            for (int e = 0; e < 4; e++) {
                int col = nt * 8 + 2 * t + (e & 1), rowInTile = w16 + g + (e >> 1) * 8;
                int key = k0 + col, row = q0 + rowInTile;
                bool visible = row < tq && key < tk && !(causal && key > row);
                float p = visible ? exp2f(s[nt][e] * sl2 - lseS[rowInTile]) : 0.f;
                float ds = p * (dp[nt][e] - Drow[rowInTile]);
                s[nt][e] = ds;                                        // s now holds dS (C fragments)
                Pt[col * FA_LD + rowInTile] = to_bf16_bits(p);
                dSt[col * FA_LD + rowInTile] = to_bf16_bits(ds);
            }
        // dQ rows (16 x 64) += scale dS K: k = the 64 keys, B[key][d] = Ks[key][d] (pairs along a column)
        float dqPart[8][4];
        for (int nt = 0; nt < 8; nt++) dqPart[nt][0] = dqPart[nt][1] = dqPart[nt][2] = dqPart[nt][3] = 0.f;
        for (int ks = 0; ks < 4; ks++) {
            unsigned int af[4];
            c_to_a(s, ks, af);
            for (int nt = 0; nt < 8; nt++)
                mma_bf16(dqPart[nt], af, pair_along_column(Ks, ks * 16 + 2 * t, nt * 8 + g), pair_along_column(Ks, ks * 16 + 2 * t + 8, nt * 8 + g));
        }
        for (int r = 0; r < 2; r++) {
            int row = q0 + w16 + g + r * 8;
            if (row >= tq) continue;
            float* dqRow = dq + ((long long)b * tq + row) * dqStride + h * FA_D;
            for (int nt = 0; nt < 8; nt++) {
                atomicAdd(dqRow + nt * 8 + 2 * t, scale * dqPart[nt][2 * r]);
                atomicAdd(dqRow + nt * 8 + 2 * t + 1, scale * dqPart[nt][2 * r + 1]);
            }
        }
        __syncthreads();                                              // P^T and dS^T complete
        // ---- phase 2: this warp's 16 keys; k = the 64 queries of the tile, B[query][d] = dOs / Qs (pairs along a column)
        for (int ks = 0; ks < 4; ks++) {
            unsigned int pa[4] = {pair_along_row(Pt, w16 + g, ks * 16 + 2 * t), pair_along_row(Pt, w16 + g + 8, ks * 16 + 2 * t),
                                  pair_along_row(Pt, w16 + g, ks * 16 + 2 * t + 8), pair_along_row(Pt, w16 + g + 8, ks * 16 + 2 * t + 8)};
            unsigned int sa[4] = {pair_along_row(dSt, w16 + g, ks * 16 + 2 * t), pair_along_row(dSt, w16 + g + 8, ks * 16 + 2 * t),
                                  pair_along_row(dSt, w16 + g, ks * 16 + 2 * t + 8), pair_along_row(dSt, w16 + g + 8, ks * 16 + 2 * t + 8)};
            for (int nt = 0; nt < 8; nt++) {
                mma_bf16(dvAcc[nt], pa, pair_along_column(dOs, ks * 16 + 2 * t, nt * 8 + g), pair_along_column(dOs, ks * 16 + 2 * t + 8, nt * 8 + g));
                mma_bf16(dkAcc[nt], sa, pair_along_column(Qs, ks * 16 + 2 * t, nt * 8 + g), pair_along_column(Qs, ks * 16 + 2 * t + 8, nt * 8 + g));
            }
        }
    }
    for (int r = 0; r < 2; r++) {
        int key = k0 + w16 + g + r * 8;
        if (key >= tk) continue;
        float* dkRow = dk + ((long long)b * tk + key) * dkStride + h * FA_D;
        float* dvRow = dv + ((long long)b * tk + key) * dvStride + h * FA_D;
        for (int nt = 0; nt < 8; nt++) {
            *reinterpret_cast<float2*>(dkRow + nt * 8 + 2 * t) = make_float2(scale * dkAcc[nt][2 * r], scale * dkAcc[nt][2 * r + 1]);
            *reinterpret_cast<float2*>(dvRow + nt * 8 + 2 * t) = make_float2(dvAcc[nt][2 * r], dvAcc[nt][2 * r + 1]);
        }
    }
}
