// Fused causal/non-causal attention for head dimension 64 on bf16 tensor cores (the FlashAttention-2 scheme:
// Dao 2023). Scores and probabilities live in registers and shared memory, never in device memory; the
// forward pass keeps a running row max and sum (online softmax) and saves only the log-sum-exp per row.
// Inputs are bf16 copies (of the fused qkv tensor and of dO), staged into shared memory with cp.async into
// double buffers, so the next tile arrives while the current one is multiplied; accumulation is fp32, outputs fp32.
//
// Tensor-core fragments of mma.m16n8k16 (row.col, bf16 in, fp32 out), g = lane / 4, t = lane % 4:
//   A (16 x 16): a0 = A[g][2t, 2t+1], a1 = A[g+8][2t, 2t+1], a2 = A[g][2t+8, 2t+9], a3 = A[g+8][2t+8, 2t+9]
//   B (16 x 8):  b0 = B[2t, 2t+1][g], b1 = B[2t+8, 2t+9][g]
//   C (16 x 8):  c0, c1 = C[g][2t, 2t+1], c2, c3 = C[g+8][2t, 2t+1]
// (each 32-bit register holds two bf16, the lower index in the low half). Fragments come from shared memory
// with ldmatrix (four 8 x 8 matrices per instruction, each lane naming one 16-byte row; .trans delivers the
// transpose, which reads B and A^T out of row-major tiles). Tiles are row-major with rows of 64 padded to 72
// elements (144 bytes), so the eight rows of a matrix fall in 32 different banks.

#define FA_D 64
#define FA_TILE 64
#define FA_LD 72

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

// A fragment of rows [r0, r0 + 16), columns [k0, k0 + 16) of a row-major tile.
__device__ __forceinline__ void load_a(unsigned int* a, const unsigned short* tile, int r0, int k0) {
    int lane = threadIdx.x & 31;
    ldmatrix_x4(a, tile + (r0 + (lane & 15)) * FA_LD + k0 + (lane >> 4) * 8);
}

// A fragment of A = T^T for a row-major tile T: A rows [r0, r0 + 16) are columns of T, A columns [k0, k0 + 16) rows of T.
__device__ __forceinline__ void load_a_transposed(unsigned int* a, const unsigned short* tile, int r0, int k0) {
    int lane = threadIdx.x & 31;
    ldmatrix_x4_trans(a, tile + (k0 + (lane & 7) + (lane >> 4) * 8) * FA_LD + r0 + ((lane >> 3) & 1) * 8);
}

// B fragments (b0, b1 of columns n0.. and of n0 + 8..) for k in [k0, k0 + 16) when B^T is the row-major tile (tile[n][k]).
__device__ __forceinline__ void load_b_from_rows(unsigned int* b, const unsigned short* tile, int n0, int k0) {
    int lane = threadIdx.x & 31;
    ldmatrix_x4(b, tile + (n0 + (lane & 7) + (lane >> 4) * 8) * FA_LD + k0 + ((lane >> 3) & 1) * 8);
}

// The same when B itself is the row-major tile (tile[k][n]).
__device__ __forceinline__ void load_b_from_columns(unsigned int* b, const unsigned short* tile, int n0, int k0) {
    int lane = threadIdx.x & 31;
    ldmatrix_x4_trans(b, tile + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * FA_LD + n0 + (lane >> 4) * 8);
}

// Asynchronous 16-byte copy from global to shared memory; src_bytes = 0 fills zeros (rows past the end).
__device__ __forceinline__ void cp_async16(unsigned short* dst, const unsigned short* src, int srcBytes) {
    unsigned int address = (unsigned int)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(address), "l"(src), "r"(srcBytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all_but_one() { asm volatile("cp.async.wait_group 1;\n" ::); }

// Starts copying rows [r0, r0 + count) of a (rows x 64) bf16 head slice into a tile (zeros past `rows`), 8 threads a row.
__device__ __forceinline__ void stage_tile(unsigned short* tile, const unsigned short* src, long long stride, int r0, int rows, int count) {
    for (int i = threadIdx.x; i < count * 8; i += blockDim.x) {
        int r = i >> 3, c = i & 7;
        bool in = r0 + r < rows;
        cp_async16(tile + r * FA_LD + c * 8, in ? src + (long long)(r0 + r) * stride + c * 8 : src, in ? 16 : 0);
    }
}

// C (16 x 64) = A rows [r0, r0 + 16) of tile a (k = 64 columns) times B, where B^T is the row-major (64 x 64) tile bt.
// c[nt][*] is the C fragment of columns [8 nt, 8 nt + 8).
__device__ __forceinline__ void warp_product_abt(float c[8][4], const unsigned short* a, const unsigned short* bt, int r0) {
    for (int nt = 0; nt < 8; nt++) c[nt][0] = c[nt][1] = c[nt][2] = c[nt][3] = 0.f;
    for (int ks = 0; ks < 4; ks++) {
        unsigned int af[4];
        load_a(af, a, r0, ks * 16);
        for (int np = 0; np < 4; np++) {
            unsigned int bf[4];
            load_b_from_rows(bf, bt, np * 16, ks * 16);
            mma_bf16(c[2 * np], af, bf[0], bf[1]);
            mma_bf16(c[2 * np + 1], af, bf[2], bf[3]);
        }
    }
}

// C (16 x 64) += A (16 x 64, the fragments af[ks] of the four k-steps) times the row-major (64 x 64) tile b.
__device__ __forceinline__ void warp_product_ab(float c[8][4], const unsigned int af[4][4], const unsigned short* b) {
    for (int ks = 0; ks < 4; ks++)
        for (int np = 0; np < 4; np++) {
            unsigned int bf[4];
            load_b_from_columns(bf, b, np * 16, ks * 16);
            mma_bf16(c[2 * np], af[ks], bf[0], bf[1]);
            mma_bf16(c[2 * np + 1], af[ks], bf[2], bf[3]);
        }
}

// The A fragments of a 16 x 64 matrix held as C fragments (8 tiles of 16 x 8), for the four k-steps.
__device__ __forceinline__ void c_to_a(const float c[8][4], unsigned int a[4][4]) {
    for (int ks = 0; ks < 4; ks++) {
        a[ks][0] = pack_bf16(c[2 * ks][0], c[2 * ks][1]);
        a[ks][1] = pack_bf16(c[2 * ks][2], c[2 * ks][3]);
        a[ks][2] = pack_bf16(c[2 * ks + 1][0], c[2 * ks + 1][1]);
        a[ks][3] = pack_bf16(c[2 * ks + 1][2], c[2 * ks + 1][3]);
    }
}

// Forward: grid (query tiles of 128, batch * heads), 256 threads (8 warps x 16 query rows), dynamic shared memory
// (FusedForwardSharedBytes on the host); each K/V tile staged
// in shared memory serves all 128 rows, and the next one is in flight while it is used. q, k, v (bf16) and o (fp32)
// point at head 0 of batch 0 (the column offset applied); head h starts 64 h columns in, and reads key/value head
// h / group of k and v (grouped-query attention; group 1 otherwise). lse (B, H, Tq) = log sum_j exp(scale s_ij),
// natural log, as the other attention path saves it.
#define FA_QROWS 128
FLORA_KERNEL void __launch_bounds__(256) flash_attention_forward(const unsigned short* q, const unsigned short* k, const unsigned short* v,
                                          long long qStride, long long kStride, long long vStride,
                                          float* o, long long oStride, float* lse, int heads, int tq, int tk, float scale, int causal,
                                          const int* keyLengths, int group) {
    extern __shared__ __align__(16) unsigned short smem[];            // dynamic: Q (128 rows), then K and V twice each
    const int T = FA_TILE * FA_LD;
    unsigned short *Qs = smem, *Ks = Qs + FA_QROWS * FA_LD, *Vs = Ks + 2 * T;   // Ks, Vs: buffers 0 and 1, T apart
    int tile = causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;     // the longest causal rows first
    int bh = blockIdx.y, b = bh / heads, h = bh % heads;
    int q0 = tile * FA_QROWS, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, w16 = warp * 16;
    const unsigned short* qb = q + (long long)b * tq * qStride + h * FA_D;
    const unsigned short* kb = k + (long long)b * tk * kStride + (h / group) * FA_D;
    const unsigned short* vb = v + (long long)b * tk * vStride + (h / group) * FA_D;
    const float log2e = 1.4426950408889634f, sl2 = scale * log2e;

    if (keyLengths != nullptr) tk = min(tk, keyLengths[b]);           // keys past the source's length are padding
    int kend = causal ? min(tk, q0 + FA_QROWS) : tk, tiles = (kend + FA_TILE - 1) / FA_TILE;
    stage_tile(Qs, qb, qStride, q0, tq, FA_QROWS);
    stage_tile(Ks, kb, kStride, 0, tk, FA_TILE);
    stage_tile(Vs, vb, vStride, 0, tk, FA_TILE);
    cp_async_commit();
    unsigned int qf[4][4];                                            // this warp's 16 rows of Q as A fragments
    float m[2] = {-FLORA_INF, -FLORA_INF}, l[2] = {0.f, 0.f}, acc[8][4];
    for (int nt = 0; nt < 8; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
    int rowLast = q0 + w16 + 15;                                      // this warp's last row: later keys are all masked
    for (int j = 0; j < tiles; j++) {
        int k0 = j * FA_TILE;
        if (j + 1 < tiles) {                                          // the next tile goes into the other buffer
            stage_tile(Ks + ((j + 1) & 1) * T, kb, kStride, k0 + FA_TILE, tk, FA_TILE);
            stage_tile(Vs + ((j + 1) & 1) * T, vb, vStride, k0 + FA_TILE, tk, FA_TILE);
        }
        cp_async_commit();
        cp_async_wait_all_but_one();                                  // tile j (and Q) have landed
        __syncthreads();
        if (j == 0)
            for (int ks = 0; ks < 4; ks++) load_a(qf[ks], Qs, w16, ks * 16);
        const unsigned short *kt = Ks + (j & 1) * T, *vt = Vs + (j & 1) * T;
        if (!(causal && k0 > rowLast)) {                              // else nothing is visible to this warp
            float s[8][4];
            for (int nt = 0; nt < 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
            for (int ks = 0; ks < 4; ks++)                            // S = Q K^T: B^T = K, row-major
                for (int np = 0; np < 4; np++) {
                    unsigned int bf[4];
                    load_b_from_rows(bf, kt, np * 16, ks * 16);
                    mma_bf16(s[2 * np], qf[ks], bf[0], bf[1]);
                    mma_bf16(s[2 * np + 1], qf[ks], bf[2], bf[3]);
                }
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
                base[r] = mNew == -FLORA_INF ? 0.f : mNew;            // a row with nothing visible yet stays all zero
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
            unsigned int pf[4][4];
            c_to_a(s, pf);
            warp_product_ab(acc, pf, vt);                             // O += P V, k = the 64 keys of the tile
        }
        __syncthreads();                                              // buffer j & 1 is free for tile j + 2
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

// Backward: grid (key tiles, batch * key/value heads), 128 threads, dynamic shared memory (FusedBackwardSharedBytes on
// the host). Each block owns 64 keys of one key/value head: it walks the query tiles that can see them, for each of the
// `group` query heads that read this key/value head in turn (the next tile in flight while the current one is used),
// and accumulates dK and dV over all of them in registers; dQ (zeroed before) receives each tile's contribution
// through atomic adds. Per query tile:
//   phase 1 (warp = 16 query rows): S = Q K^T, dP = dO V^T, P = exp(scale S - lse), dS = P (dP - D);
//            dQ += scale dS K; P and dS go to shared memory (row-major, [query][key]);
//   phase 2 (warp = 16 keys): dV += P^T dO, dK += scale dS^T Q (A = P^T and dS^T through transposing loads).
FLORA_KERNEL void __launch_bounds__(128) flash_attention_backward(const unsigned short* q, const unsigned short* k, const unsigned short* v,
                                           long long qStride, long long kStride, long long vStride,
                                           const unsigned short* dO, long long dOStride, const float* lse, const float* D,
                                           float* dq, float* dk, float* dv, long long dqStride, long long dkStride, long long dvStride,
                                           int heads, int tq, int tk, float scale, int causal, const int* keyLengths, int group) {
    extern __shared__ __align__(16) unsigned short smem[];
    const int T = FA_TILE * FA_LD;
    unsigned short *Ks = smem, *Vs = Ks + T, *Qs = Vs + T, *dOs = Qs + 2 * T, *Ps = dOs + 2 * T, *dSs = Ps + T;  // Qs, dOs: two buffers
    float* lseS = reinterpret_cast<float*>(dSs + T);                 // two buffers of 64
    float* Drow = lseS + 2 * FA_TILE;                                 // two buffers of 64
    int kvHeads = heads / group, b = blockIdx.y / kvHeads, kvh = blockIdx.y % kvHeads;
    int k0 = blockIdx.x * FA_TILE, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, w16 = warp * 16;
    const float log2e = 1.4426950408889634f, sl2 = scale * log2e;
    int validKeys = keyLengths != nullptr ? min(tk, keyLengths[b]) : tk;   // keys past the source's length are padding
    if (k0 >= validKeys) {                                            // a tile of padding keys: no gradient
        for (int i = threadIdx.x; i < FA_TILE * FA_D; i += blockDim.x) {
            int key = k0 + i / FA_D, d = i % FA_D;
            if (key >= tk) continue;
            dk[((long long)b * tk + key) * dkStride + kvh * FA_D + d] = 0.f;
            dv[((long long)b * tk + key) * dvStride + kvh * FA_D + d] = 0.f;
        }
        return;
    }
    int qStart = causal ? k0 : 0;                                     // earlier queries see none of these keys
    int tiles = qStart < tq ? (tq - qStart + FA_TILE - 1) / FA_TILE : 0, steps = group * tiles;

    // Step j is query tile j % tiles (rows qStart + 64 (j % tiles) ..) of query head kvh group + j / tiles.
    // Stages it into buffer j & 1, with its lse (in log2 units) and D.
    auto stage = [&](int j) {
        int h = kvh * group + j / tiles, bh = b * heads + h, q0 = qStart + (j % tiles) * FA_TILE, buffer = j & 1;
        stage_tile(Qs + buffer * T, q + (long long)b * tq * qStride + h * FA_D, qStride, q0, tq, FA_TILE);
        stage_tile(dOs + buffer * T, dO + (long long)b * tq * dOStride + h * FA_D, dOStride, q0, tq, FA_TILE);
        for (int r = threadIdx.x; r < FA_TILE; r += blockDim.x) {
            bool in = q0 + r < tq;
            lseS[buffer * FA_TILE + r] = in ? lse[(long long)bh * tq + q0 + r] * log2e : 0.f;
            Drow[buffer * FA_TILE + r] = in ? D[(long long)bh * tq + q0 + r] : 0.f;
        }
    };
    stage_tile(Ks, k + (long long)b * tk * kStride + kvh * FA_D, kStride, k0, tk, FA_TILE);
    stage_tile(Vs, v + (long long)b * tk * vStride + kvh * FA_D, vStride, k0, tk, FA_TILE);
    if (steps > 0) stage(0);
    cp_async_commit();
    float dkAcc[8][4], dvAcc[8][4];
    for (int nt = 0; nt < 8; nt++)
        for (int e = 0; e < 4; e++) dkAcc[nt][e] = dvAcc[nt][e] = 0.f;
    for (int j = 0; j < steps; j++) {
        int h = kvh * group + j / tiles, q0 = qStart + (j % tiles) * FA_TILE, buffer = j & 1;
        if (j + 1 < steps) stage(j + 1);
        cp_async_commit();
        cp_async_wait_all_but_one();                                  // tile j (and K, V) have landed
        __syncthreads();
        const unsigned short *qt = Qs + buffer * T, *dot = dOs + buffer * T;
        const float *lseT = lseS + buffer * FA_TILE, *dT = Drow + buffer * FA_TILE;
        // ---- phase 1: this warp's 16 query rows against the block's 64 keys
        float s[8][4], dp[8][4];
        warp_product_abt(s, qt, Ks, w16);
        warp_product_abt(dp, dot, Vs, w16);
        for (int nt = 0; nt < 8; nt++)
            for (int r = 0; r < 2; r++) {
                int col = nt * 8 + 2 * t, rowInTile = w16 + g + r * 8, row = q0 + rowInTile;
                float p[2], ds[2];
                for (int e = 0; e < 2; e++) {
                    int key = k0 + col + e;
                    bool visible = row < tq && key < validKeys && !(causal && key > row);
                    p[e] = visible ? exp2f(s[nt][2 * r + e] * sl2 - lseT[rowInTile]) : 0.f;
                    ds[e] = p[e] * (dp[nt][2 * r + e] - dT[rowInTile]);
                    s[nt][2 * r + e] = ds[e];                         // s now holds dS (C fragments)
                }
                *reinterpret_cast<unsigned int*>(Ps + rowInTile * FA_LD + col) = pack_bf16(p[0], p[1]);
                *reinterpret_cast<unsigned int*>(dSs + rowInTile * FA_LD + col) = pack_bf16(ds[0], ds[1]);
            }
        // dQ rows (16 x 64) += scale dS K: k = the 64 keys, B = K (row-major [key][d])
        float dqPart[8][4];
        for (int nt = 0; nt < 8; nt++) dqPart[nt][0] = dqPart[nt][1] = dqPart[nt][2] = dqPart[nt][3] = 0.f;
        unsigned int sf[4][4];
        c_to_a(s, sf);
        warp_product_ab(dqPart, sf, Ks);
        for (int r = 0; r < 2; r++) {
            int row = q0 + w16 + g + r * 8;
            if (row >= tq) continue;
            float* dqRow = dq + ((long long)b * tq + row) * dqStride + h * FA_D;   // h: this step's query head
            for (int nt = 0; nt < 8; nt++) {
                atomicAdd(dqRow + nt * 8 + 2 * t, scale * dqPart[nt][2 * r]);
                atomicAdd(dqRow + nt * 8 + 2 * t + 1, scale * dqPart[nt][2 * r + 1]);
            }
        }
        __syncthreads();                                              // P and dS complete
        // ---- phase 2: this warp's 16 keys; k = the 64 queries of the tile
        for (int ks = 0; ks < 4; ks++) {
            unsigned int pa[4], sa[4];
            load_a_transposed(pa, Ps, w16, ks * 16);                  // P^T rows = keys
            load_a_transposed(sa, dSs, w16, ks * 16);
            for (int np = 0; np < 4; np++) {
                unsigned int bo[4], bq[4];
                load_b_from_columns(bo, dot, np * 16, ks * 16);       // B = dO (row-major [query][d])
                load_b_from_columns(bq, qt, np * 16, ks * 16);        // B = Q
                mma_bf16(dvAcc[2 * np], pa, bo[0], bo[1]);
                mma_bf16(dvAcc[2 * np + 1], pa, bo[2], bo[3]);
                mma_bf16(dkAcc[2 * np], sa, bq[0], bq[1]);
                mma_bf16(dkAcc[2 * np + 1], sa, bq[2], bq[3]);
            }
        }
        __syncthreads();                                              // buffer j & 1, P and dS are free again
    }
    for (int r = 0; r < 2; r++) {
        int key = k0 + w16 + g + r * 8;
        if (key >= tk) continue;
        float* dkRow = dk + ((long long)b * tk + key) * dkStride + kvh * FA_D;
        float* dvRow = dv + ((long long)b * tk + key) * dvStride + kvh * FA_D;
        for (int nt = 0; nt < 8; nt++) {
            *reinterpret_cast<float2*>(dkRow + nt * 8 + 2 * t) = make_float2(scale * dkAcc[nt][2 * r], scale * dkAcc[nt][2 * r + 1]);
            *reinterpret_cast<float2*>(dvRow + nt * 8 + 2 * t) = make_float2(dvAcc[nt][2 * r], dvAcc[nt][2 * r + 1]);
        }
    }
}
