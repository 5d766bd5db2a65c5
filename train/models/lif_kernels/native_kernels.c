/* The CPU kernels of the training loop's memory-bound layers, as C loops with one pass over memory each:
 * the multi-step LIF (forward, backward), 2x2 stride-2 sum pooling (forward, backward) and the two in one op.
 *
 * Built at first use by lif_kernels/native.py (gcc/cc -O3 -ffp-contract=off, no -ffast-math, no -march:
 * the arithmetic is IEEE single/double, operation by operation in the order of the ``fused`` op, so the
 * spikes are bit-identical to Norse's step). Neurons are processed in blocks of BLOCK: a block's membrane
 * stays in L1 over all T steps; blocks are shared among OpenMP threads (torch's libgomp, already loaded).
 *
 * Forward, per step (see fused.py):   u = v + a * ((x + v_leak) - v);  z = u > v_th;  v = (u - u z) + z v_reset
 * Backward (SuperSpike, s = 1 / (|u - v_th| + 1)^2, Norse's ``super``), from the last step:
 *     r[t] = g[t] s[t] + (1 - a) ((1 - z[t]) + (v_reset - u[t]) s[t]) r[t+1];   dI[t] = a r[t]
 * The forward keeps nothing but its output; the backward recomputes the membranes from the input currents x.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define BLOCK 1024

/* Vectorised twice on x86-64 with GCC: an AVX2 clone and the baseline (SSE2), picked by the CPU at load time (the
 * same IEEE operations either way: no FMA, -ffp-contract=off). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

/* One step of a block (m neurons): the loop is written out per case (leak or not, membrane kept or not) so that
 * each is vectorised. */
#define LIF_STEP(REAL, XL, STORE_U)                                                                           \
    for (int64_t i = 0; i < m; ++i) {                                                                        \
        const REAL xl = XL;                                                                                  \
        REAL d = xl - v[i];                                                                                  \
        d = d * a;                                                                                           \
        const REAL uu = d + v[i];                                                                            \
        const REAL z = (REAL)(uu > v_th);                                                                    \
        zt[i] = z;                                                                                           \
        STORE_U;                                                                                             \
        v[i] = (uu - uu * z) + z * v_reset;                                                                  \
    }

/* LIF_STEP on the inputs xt, plus v_leak where add_leak (v_leak != 0): chosen once per step, outside the loop. */
#define LIF_STEP_XT(REAL, STORE_U)                                                                            \
    if (add_leak) {                                                                                          \
        LIF_STEP(REAL, xt[i] + v_leak, STORE_U)                                                              \
    } else {                                                                                                 \
        LIF_STEP(REAL, xt[i], STORE_U)                                                                       \
    }

/* One reverse step over m neurons: the spikes' gradient G[i] through the surrogate, plus the next step's r through
 * the leak and the reset (r: the running gradient of the membrane; ut: this step's pre-reset membranes). */
#define LIF_GRAD_STEP(REAL, FABS, G)                                                                          \
    for (int64_t i = 0; i < m; ++i) {                                                                        \
        const REAL uu = ut[i];                                                                               \
        const REAL z = (REAL)(uu > v_th);                                                                    \
        const REAL den = FABS(uu - v_th) + (REAL)1;                                                          \
        const REAL s = (REAL)1 / (den * den);                                                                \
        const REAL p = ((REAL)1 - z) + (v_reset - uu) * s;                                                   \
        const REAL ri = G[i] * s + keep * p * r[i];                                                          \
        r[i] = ri;                                                                                           \
        ot[i] = a * ri;                                                                                      \
    }

#define LIF_FORWARD(NAME, REAL)                                                                               \
    CLONES void NAME(const REAL *x, REAL *spikes, int64_t steps, int64_t n, REAL a, REAL v_leak, REAL v_th,          \
              REAL v_reset, int add_leak, int threads) {                                                     \
        const int64_t blocks = (n + BLOCK - 1) / BLOCK;                                                      \
        _Pragma("omp parallel for num_threads(threads) schedule(static)")                                    \
        for (int64_t b = 0; b < blocks; ++b) {                                                               \
            REAL v[BLOCK];                                                                                   \
            const int64_t lo = b * BLOCK, m = n - lo < BLOCK ? n - lo : BLOCK;                               \
            for (int64_t i = 0; i < m; ++i) v[i] = v_leak;                                                   \
            for (int64_t t = 0; t < steps; ++t) {                                                            \
                const REAL *restrict xt = x + t * n + lo;                                                    \
                REAL *restrict zt = spikes + t * n + lo;                                                     \
                LIF_STEP_XT(REAL, (void)0)                                                                   \
            }                                                                                                \
        }                                                                                                    \
    }

/* The backward from the input currents: each block's membranes are recomputed (into a [T, BLOCK] buffer that stays
 * in cache) before the reverse pass, so the forward keeps no membrane record and reads and writes one stream
 * fewer; the spikes are the recomputed u > v_th. */
#define LIF_BACKWARD(NAME, REAL, FABS)                                                                        \
    CLONES int NAME(const REAL *x, const REAL *g, REAL *gx, int64_t steps, int64_t n, REAL a, REAL v_leak,           \
             REAL v_th, REAL v_reset, int add_leak, int threads) {                                           \
        const int64_t blocks = (n + BLOCK - 1) / BLOCK;                                                      \
        const REAL keep = (REAL)1 - a;                                                                       \
        int failed = 0;                                                                                      \
        _Pragma("omp parallel num_threads(threads)")                                                         \
        {                                                                                                    \
            REAL *ub = (REAL *)malloc(sizeof(REAL) * BLOCK * (size_t)(steps > 0 ? steps : 1));              \
            if (!ub) {                                                                                       \
                _Pragma("omp atomic write") failed = 1;                                                      \
            }                                                                                                \
            _Pragma("omp for schedule(static)")                                                              \
            for (int64_t b = 0; b < blocks; ++b) {                                                           \
                if (!ub) continue;                                                                           \
                REAL v[BLOCK], r[BLOCK];                                                                     \
                const int64_t lo = b * BLOCK, m = n - lo < BLOCK ? n - lo : BLOCK;                           \
                for (int64_t i = 0; i < m; ++i) v[i] = v_leak;                                               \
                for (int64_t t = 0; t < steps; ++t) {                                                        \
                    const REAL *restrict xt = x + t * n + lo;                                                \
                    REAL *restrict ut = ub + t * BLOCK;                                                      \
                    REAL zt[BLOCK];                                                                          \
                    LIF_STEP_XT(REAL, ut[i] = uu)                                                            \
                }                                                                                            \
                for (int64_t i = 0; i < m; ++i) r[i] = 0;                                                    \
                for (int64_t t = steps - 1; t >= 0; --t) {                                                   \
                    const REAL *restrict gt = g + t * n + lo, *restrict ut = ub + t * BLOCK;                 \
                    REAL *restrict ot = gx + t * n + lo;                                                     \
                    LIF_GRAD_STEP(REAL, FABS, gt)                                                            \
                }                                                                                            \
            }                                                                                                \
            free(ub);                                                                                        \
        }                                                                                                    \
        return failed ? -1 : 0;                                                                              \
    }

LIF_FORWARD(lif_forward_f32, float)
LIF_FORWARD(lif_forward_f64, double)
LIF_BACKWARD(lif_backward_f32, float, fabsf)
LIF_BACKWARD(lif_backward_f64, double, fabs)

/* 2x2 stride-2 sum pooling of `planes` contiguous h x w planes into (h/2) x (w/2) (odd sizes drop the last row or
 * column), summed in avg_pool2d's order ((x00 + x01) + x10) + x11, so bit-identical to it. The backward gives every
 * input of a window its output's gradient (zero for a dropped row or column). */
#define SUM_POOL(NAME, NAME_BWD, REAL)                                                                        \
    CLONES void NAME(const REAL *x, REAL *y, int64_t planes, int64_t h, int64_t w, int threads) {           \
        const int64_t ho = h / 2, wo = w / 2;                                                                \
        _Pragma("omp parallel for num_threads(threads) schedule(static)")                                    \
        for (int64_t p = 0; p < planes; ++p) {                                                              \
            for (int64_t i = 0; i < ho; ++i) {                                                              \
                const REAL *restrict r0 = x + (p * h + 2 * i) * w, *restrict r1 = r0 + w;                   \
                REAL *restrict o = y + (p * ho + i) * wo;                                                    \
                for (int64_t j = 0; j < wo; ++j)                                                             \
                    o[j] = ((r0[2 * j] + r0[2 * j + 1]) + r1[2 * j]) + r1[2 * j + 1];                        \
            }                                                                                                \
        }                                                                                                    \
    }                                                                                                        \
    CLONES void NAME_BWD(const REAL *g, REAL *gx, int64_t planes, int64_t h, int64_t w, int threads) {      \
        const int64_t ho = h / 2, wo = w / 2;                                                                \
        _Pragma("omp parallel for num_threads(threads) schedule(static)")                                    \
        for (int64_t p = 0; p < planes; ++p) {                                                              \
            for (int64_t i = 0; i < ho; ++i) {                                                              \
                const REAL *restrict gi = g + (p * ho + i) * wo;                                             \
                REAL *restrict r0 = gx + (p * h + 2 * i) * w, *restrict r1 = r0 + w;                         \
                for (int64_t j = 0; j < wo; ++j) {                                                           \
                    r0[2 * j] = gi[j];                                                                       \
                    r0[2 * j + 1] = gi[j];                                                                   \
                    r1[2 * j] = gi[j];                                                                       \
                    r1[2 * j + 1] = gi[j];                                                                   \
                }                                                                                            \
                if (w & 1) r0[w - 1] = r1[w - 1] = 0;                                                        \
            }                                                                                                \
            if (h & 1)                                                                                       \
                for (int64_t j = 0; j < w; ++j) gx[(p * h + h - 1) * w + j] = 0;                             \
        }                                                                                                    \
    }

/* The LIF followed by the 2x2 sum pooling, as one op: the full-size spike tensor is never written (the forward
 * pools each plane's spikes as they are made; the backward recomputes membranes and spikes from x and spreads the
 * pooled gradient over each window). x is [steps, planes, h, w]; out is [steps, planes, h/2, w/2]. Per element the
 * same arithmetic as lif_forward / lif_backward and the pooling above, so the results are those of the two ops. */
#define LIF_POOL(NAME, NAME_BWD, REAL, FABS)                                                                   \
    CLONES int NAME(const REAL *x, REAL *out, int64_t steps, int64_t planes, int64_t h, int64_t w, REAL a,    \
                    REAL v_leak, REAL v_th, REAL v_reset, int add_leak, int threads) {                       \
        const int64_t n = h * w, ho = h / 2, wo = w / 2, no = ho * wo;                                       \
        const int64_t group = n >= BLOCK ? 1 : BLOCK / n, items = (planes + group - 1) / group;            \
        int failed = 0;                                                                                      \
        _Pragma("omp parallel num_threads(threads)")                                                         \
        {                                                                                                    \
            REAL *v = (REAL *)malloc(sizeof(REAL) * (size_t)(2 * group * n + 1));                           \
            REAL *zt = v ? v + group * n : NULL;                                                             \
            if (!v) {                                                                                        \
                _Pragma("omp atomic write") failed = 1;                                                      \
            }                                                                                                \
            _Pragma("omp for schedule(static)")                                                              \
            for (int64_t q = 0; q < items; ++q) {                                                            \
                if (!v) continue;                                                                            \
                const int64_t p0 = q * group, pk = planes - p0 < group ? planes - p0 : group, m = pk * n;    \
                for (int64_t i = 0; i < m; ++i) v[i] = v_leak;                                               \
                for (int64_t t = 0; t < steps; ++t) {                                                        \
                    const REAL *restrict xt = x + (t * planes + p0) * n;                                     \
                    LIF_STEP_XT(REAL, (void)0)                                                               \
                    for (int64_t k = 0; k < pk; ++k) {                                                       \
                        REAL *restrict ot = out + (t * planes + p0 + k) * no;                                \
                        for (int64_t i = 0; i < ho; ++i) {                                                   \
                            const REAL *r0 = zt + k * n + 2 * i * w, *r1 = r0 + w;                           \
                            for (int64_t j = 0; j < wo; ++j)                                                 \
                                ot[i * wo + j] = ((r0[2 * j] + r0[2 * j + 1]) + r1[2 * j]) + r1[2 * j + 1];  \
                        }                                                                                    \
                    }                                                                                        \
                }                                                                                            \
            }                                                                                                \
            free(v);                                                                                         \
        }                                                                                                    \
        return failed ? -1 : 0;                                                                              \
    }                                                                                                        \
    CLONES int NAME_BWD(const REAL *x, const REAL *gp, REAL *gx, int64_t steps, int64_t planes, int64_t h,    \
                        int64_t w, REAL a, REAL v_leak, REAL v_th, REAL v_reset, int add_leak, int threads) {  \
        const int64_t n = h * w, ho = h / 2, wo = w / 2, no = ho * wo;                                       \
        const int64_t group = n >= BLOCK ? 1 : BLOCK / n, items = (planes + group - 1) / group;            \
        const REAL keep = (REAL)1 - a;                                                                       \
        int failed = 0;                                                                                      \
        _Pragma("omp parallel num_threads(threads)")                                                         \
        {                                                                                                    \
            const size_t gn = (size_t)(group * n), ts = (size_t)(steps > 0 ? steps : 1);                     \
            REAL *ub = (REAL *)malloc(sizeof(REAL) * gn * (ts + 4));                                         \
            REAL *v = ub ? ub + gn * ts : NULL, *zt = v ? v + gn : NULL;                                     \
            REAL *r = v ? v + 2 * gn : NULL, *ge = v ? v + 3 * gn : NULL;                                    \
            if (!ub) {                                                                                       \
                _Pragma("omp atomic write") failed = 1;                                                      \
            }                                                                                                \
            _Pragma("omp for schedule(static)")                                                              \
            for (int64_t q = 0; q < items; ++q) {                                                            \
                if (!ub) continue;                                                                           \
                const int64_t p0 = q * group, pk = planes - p0 < group ? planes - p0 : group, m = pk * n;    \
                for (int64_t i = 0; i < m; ++i) v[i] = v_leak;                                               \
                for (int64_t t = 0; t < steps; ++t) {                                                        \
                    const REAL *restrict xt = x + (t * planes + p0) * n;                                     \
                    REAL *restrict ut = ub + t * gn;                                                         \
                    LIF_STEP_XT(REAL, ut[i] = uu)                                                            \
                }                                                                                            \
                for (int64_t i = 0; i < m; ++i) r[i] = 0;                                                    \
                for (int64_t t = steps - 1; t >= 0; --t) {                                                   \
                    const REAL *restrict ut = ub + t * gn;                                                   \
                    REAL *restrict ot = gx + (t * planes + p0) * n;                                          \
                    for (int64_t k = 0; k < pk; ++k) { /* the pooled gradient spread over its windows */     \
                        const REAL *gt = gp + (t * planes + p0 + k) * no;                                    \
                        for (int64_t i = 0; i < h; ++i) {                                                    \
                            REAL *restrict gi = ge + k * n + i * w;                                          \
                            if (i < 2 * ho) {                                                                \
                                const REAL *grow = gt + (i / 2) * wo;                                        \
                                for (int64_t j = 0; j < wo; ++j) gi[2 * j] = gi[2 * j + 1] = grow[j];        \
                                if (w & 1) gi[w - 1] = 0;                                                    \
                            } else {                                                                         \
                                for (int64_t j = 0; j < w; ++j) gi[j] = 0;                                   \
                            }                                                                                \
                        }                                                                                    \
                    }                                                                                        \
                    LIF_GRAD_STEP(REAL, FABS, ge)                                                            \
                }                                                                                            \
            }                                                                                                \
            free(ub);                                                                                        \
        }                                                                                                    \
        return failed ? -1 : 0;                                                                              \
    }

LIF_POOL(lif_sum_pool_f32, lif_sum_pool_backward_f32, float, fabsf)
LIF_POOL(lif_sum_pool_f64, lif_sum_pool_backward_f64, double, fabs)

SUM_POOL(sum_pool2x2_f32, sum_pool2x2_backward_f32, float)
SUM_POOL(sum_pool2x2_f64, sum_pool2x2_backward_f64, double)

/* The version of this file's interface: native.py refuses a library that reports another. */
int native_kernels_abi(void) { return 4; }
