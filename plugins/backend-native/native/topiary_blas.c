/*
 * topiary_blas: a tiny N-API addon exposing OpenBLAS's single-precision GEMM to JavaScript, and two fused kernels
 * (softmax cross-entropy rows, AdamW, RoPE with the head transpose, causal softmax, SwiGLU, RMSNorm, and their gradients) that run in one multithreaded pass (OpenMP) where tfjs-wasm takes many
 * single-threaded ones. Compiled with -ffast-math so that expf vectorises (glibc's libmvec).
 *
 * Every function takes Float32Array views (which may be views onto the tfjs wasm heap: the product is written in
 * place, no copy). Matrices are row-major. The CBLAS prototypes are declared here rather than taken from a header,
 * so only the library (libopenblas.so, Debian's libopenblas-dev) is needed to link.
 */
#include <node_api.h>
#include <stdint.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

enum { RowMajor = 101 };
enum { NoTrans = 111, Trans = 112 };
extern void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc);
extern void cblas_dgemm(int order, int transA, int transB, int m, int n, int k, double alpha, const double *a, int lda,
                        const double *b, int ldb, double beta, double *c, int ldc);
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
extern void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);
extern void openblas_set_num_threads(int n);
extern int openblas_get_num_threads(void);
extern char *openblas_get_config(void);
extern char *openblas_get_corename(void);

/* Declares argv[n] and returns with a JavaScript error unless at least n arguments came. */
#define ARGS(n, fname)                                                                      \
  size_t argc = n;                                                                          \
  napi_value argv[n];                                                                       \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));                              \
  if (argc < n) {                                                                           \
    napi_throw_error(env, "E_NATIVE", "topiary_blas." fname ": expected " #n " arguments"); \
    return NULL;                                                                            \
  }

/* Returns with a RangeError (bad sizes: nothing was read or written). */
#define RANGE_ERROR(msg)                                                \
  do {                                                                  \
    napi_throw_range_error(env, "E_NATIVE", "topiary_blas." msg);       \
    return NULL;                                                        \
  } while (0)

#define CHECK(call)                                                                     \
  do {                                                                                  \
    if ((call) != napi_ok) {                                                            \
      napi_throw_error(env, "E_NATIVE", "topiary_blas: N-API call failed: " #call);     \
      return NULL;                                                                      \
    }                                                                                   \
  } while (0)

/* The data and length of a typed array of the expected type (a JavaScript TypeError naming it otherwise). */
static int get_typed(napi_env env, napi_value v, napi_typedarray_type want, const char *message, void **data, size_t *length) {
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, length, data, &buffer, &offset) != napi_ok || type != want) {
    napi_throw_type_error(env, "E_NATIVE", message);
    return 0;
  }
  return 1;
}

static int get_f32(napi_env env, napi_value v, float **data, size_t *length) {
  return get_typed(env, v, napi_float32_array, "topiary_blas: expected a Float32Array", (void **)data, length);
}

static int get_i32(napi_env env, napi_value v, int32_t **data, size_t *length) {
  return get_typed(env, v, napi_int32_array, "topiary_blas: expected an Int32Array", (void **)data, length);
}

static int get_f64arr(napi_env env, napi_value v, double **data, size_t *length) {
  return get_typed(env, v, napi_float64_array, "topiary_blas: expected a Float64Array", (void **)data, length);
}

static int get_f64(napi_env env, napi_value v, double *out) {
  if (napi_get_value_double(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "E_NATIVE", "topiary_blas: expected a number");
    return 0;
  }
  return 1;
}

static int get_i64(napi_env env, napi_value v, int64_t *out) {
  if (napi_get_value_int64(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "E_NATIVE", "topiary_blas: expected an integer");
    return 0;
  }
  return 1;
}

/*
 * sgemmStrided(transA, transB, m, n, k, batch, A, strideA, B, strideB, C, strideC, beta)
 * For i < batch: C_i = op(A_i) · op(B_i) + beta·C_i, with A_i = A + i·strideA etc. (strides in elements; a stride of
 * 0 broadcasts). op(A) is [m, k], op(B) is [k, n], C is [m, n]. Bounds are checked against the arrays' lengths.
 */
static napi_value sgemm_strided(napi_env env, napi_callback_info info) {
  size_t argc = 13;
  napi_value argv[13];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 12) {
    napi_throw_error(env, "E_NATIVE", "topiary_blas.sgemmStrided: expected 12 or 13 arguments");
    return NULL;
  }
  bool ta, tb;
  CHECK(napi_get_value_bool(env, argv[0], &ta));
  CHECK(napi_get_value_bool(env, argv[1], &tb));
  int64_t m, n, k, batch, sa, sb, sc;
  if (!get_i64(env, argv[2], &m) || !get_i64(env, argv[3], &n) || !get_i64(env, argv[4], &k) || !get_i64(env, argv[5], &batch)) return NULL;
  float *a, *b, *c;
  size_t la, lb, lc;
  if (!get_f32(env, argv[6], &a, &la) || !get_i64(env, argv[7], &sa)) return NULL;
  if (!get_f32(env, argv[8], &b, &lb) || !get_i64(env, argv[9], &sb)) return NULL;
  if (!get_f32(env, argv[10], &c, &lc) || !get_i64(env, argv[11], &sc)) return NULL;
  double beta = 0;
  if (argc > 12) CHECK(napi_get_value_double(env, argv[12], &beta));
  if (m < 0 || n < 0 || k < 0 || batch < 0 || sa < 0 || sb < 0 || sc < 0 || m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) RANGE_ERROR("sgemmStrided: negative or too large size");
  if (batch > 0 && m > 0 && n > 0) {
    if ((size_t)((batch - 1) * sa + m * k) > la || (size_t)((batch - 1) * sb + k * n) > lb || (size_t)((batch - 1) * sc + m * n) > lc) {
      napi_throw_range_error(env, "E_NATIVE", "topiary_blas.sgemmStrided: a matrix runs past the end of its array");
      return NULL;
    }
    int lda = ta ? (int)m : (int)k;
    int ldb = tb ? (int)k : (int)n;
    for (int64_t i = 0; i < batch; i++) {
      cblas_sgemm(RowMajor, ta ? Trans : NoTrans, tb ? Trans : NoTrans, (int)m, (int)n, (int)k, 1.0f, a + i * sa, lda,
                  b + i * sb, ldb, (float)beta, c + i * sc, (int)n);
    }
  }
  return NULL;
}

/*
 * The shared step of every row softmax here: with m = max_j k·z_j, writes e_j = exp(k·z_j − m) to out (when out is
 * not NULL) and returns Σ_j e_j; *max gets m. n ≥ 1.
 */
static float row_exp(const float *z, int64_t n, float k, float *out, float *max) {
  float mx = z[0] * k;
  for (int64_t j = 1; j < n; j++) mx = z[j] * k > mx ? z[j] * k : mx;
  float sum = 0.0f;
  if (out) {
    for (int64_t j = 0; j < n; j++) {
      out[j] = expf(z[j] * k - mx);
      sum += out[j];
    }
  } else {
    for (int64_t j = 0; j < n; j++) sum += expf(z[j] * k - mx);
  }
  *max = mx;
  return sum;
}

/*
 * softmaxXent(z, n, vocab, targets, loss, grad | null, scale)
 * For each row i of z [n, vocab]: loss[i] = logsumexp(z_i) − z_i[t_i]; when grad is given,
 * grad_i = (softmax(z_i) − onehot(t_i)) · scale. Rows run in parallel; a target outside [0, vocab) is an error.
 */
static napi_value softmax_xent(napi_env env, napi_callback_info info) {
  ARGS(7, "softmaxXent");
  float *z, *loss, *grad = NULL;
  int32_t *t;
  size_t lz, lt, ll, lg = 0;
  int64_t n, vocab;
  double scale;
  napi_valuetype gradType;
  if (!get_f32(env, argv[0], &z, &lz) || !get_i64(env, argv[1], &n) || !get_i64(env, argv[2], &vocab)) return NULL;
  if (!get_i32(env, argv[3], &t, &lt) || !get_f32(env, argv[4], &loss, &ll)) return NULL;
  CHECK(napi_typeof(env, argv[5], &gradType));
  if (gradType != napi_null && gradType != napi_undefined && !get_f32(env, argv[5], &grad, &lg)) return NULL;
  if (!get_f64(env, argv[6], &scale)) return NULL;
  if (n < 0 || vocab < 1 || lz < (size_t)(n * vocab) || lt < (size_t)n || ll < (size_t)n || (grad && lg < (size_t)(n * vocab))) RANGE_ERROR("softmaxXent: an array is shorter than n × vocab / n");
  for (int64_t i = 0; i < n; i++) {
    if (t[i] < 0 || t[i] >= vocab) {
      napi_throw_range_error(env, "E_NATIVE", "topiary_blas.softmaxXent: a target id is outside the vocabulary");
      return NULL;
    }
  }
  const float s = (float)scale;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float *zi = z + i * vocab;
    float *gi = grad ? grad + i * vocab : NULL;
    float mx;
    const float sum = row_exp(zi, vocab, 1.0f, gi, &mx);
    if (gi) {
      const float k = s / sum;
      for (int64_t j = 0; j < vocab; j++) gi[j] *= k;
      gi[t[i]] -= s;
    }
    loss[i] = logf(sum) + mx - zi[t[i]];
  }
  return NULL;
}

/*
 * adamw(param, grad, m, v, paramOut, mOut, vOut, lr, beta1, beta2, eps, decay, gradScale, bc1, bc2)
 *   g = gradScale·grad;  m' = β₁m + (1−β₁)g;  v' = β₂v + (1−β₂)g²
 *   param' = param·(1 − decay) − lr · (m'/bc1) / (√(v'/bc2) + eps)
 * All seven arrays have the same length; outputs may not alias inputs other than their own.
 */
static napi_value adamw(napi_env env, napi_callback_info info) {
  ARGS(15, "adamw");
  float *arr[7];
  size_t len[7];
  for (int i = 0; i < 7; i++)
    if (!get_f32(env, argv[i], &arr[i], &len[i])) return NULL;
  for (int i = 1; i < 7; i++) {
    if (len[i] != len[0]) {
      napi_throw_range_error(env, "E_NATIVE", "topiary_blas.adamw: arrays of different lengths");
      return NULL;
    }
  }
  double h[8];
  for (int i = 0; i < 8; i++)
    if (!get_f64(env, argv[7 + i], &h[i])) return NULL;
  const float lr = (float)h[0], b1 = (float)h[1], b2 = (float)h[2], eps = (float)h[3], keep = (float)(1.0 - h[4]),
              gs = (float)h[5], ibc1 = (float)(1.0 / h[6]), ibc2 = (float)(1.0 / h[7]);
  const float *p = arr[0], *g = arr[1], *m = arr[2], *v = arr[3];
  float *po = arr[4], *mo = arr[5], *vo = arr[6];
  const int64_t size = (int64_t)len[0];
#pragma omp parallel for schedule(static) if (size > 65536)
  for (int64_t i = 0; i < size; i++) {
    const float gi = gs * g[i];
    const float mi = b1 * m[i] + (1.0f - b1) * gi;
    const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    mo[i] = mi;
    vo[i] = vi;
    po[i] = p[i] * keep - lr * (mi * ibc1) / (sqrtf(vi * ibc2) + eps);
  }
  return NULL;
}

/*
 * ropeHeads(x, out, batch, seq, heads, headDim, cos, sin, backward)
 * Forward: x is [batch·seq, heads·headDim] (a linear layer's output); out [batch, heads, seq, headDim] is
 *   out = x·cos + rot(x)·sin per head, rot([x₁, x₂]) = [−x₂, x₁] (rotate-half RoPE), with the head transpose.
 * Backward (the transpose of that map): x is [batch, heads, seq, headDim], out [batch·seq, heads·headDim] is
 *   out = x·cos + rotᵀ(x·sin), rotᵀ([z₁, z₂]) = [z₂, −z₁].
 * cos, sin: [seq, headDim].
 */
static napi_value rope_heads(napi_env env, napi_callback_info info) {
  ARGS(9, "ropeHeads");
  float *x, *out, *cs, *sn;
  size_t lx, lo, lc, ls;
  int64_t B, T, H, D;
  bool backward;
  if (!get_f32(env, argv[0], &x, &lx) || !get_f32(env, argv[1], &out, &lo)) return NULL;
  if (!get_i64(env, argv[2], &B) || !get_i64(env, argv[3], &T) || !get_i64(env, argv[4], &H) || !get_i64(env, argv[5], &D)) return NULL;
  if (!get_f32(env, argv[6], &cs, &lc) || !get_f32(env, argv[7], &sn, &ls)) return NULL;
  CHECK(napi_get_value_bool(env, argv[8], &backward));
  const int64_t total = B * T * H * D;
  if (B < 0 || T < 0 || H < 0 || D < 2 || D % 2 || lx < (size_t)total || lo < (size_t)total || lc < (size_t)(T * D) || ls < (size_t)(T * D)) RANGE_ERROR("ropeHeads: bad sizes");
  const int64_t half = D / 2;
#pragma omp parallel for collapse(2) schedule(static) if (total > 65536)
  for (int64_t b = 0; b < B; b++) {
    for (int64_t h = 0; h < H; h++) {
      for (int64_t t = 0; t < T; t++) {
        const float *c = cs + t * D, *s = sn + t * D;
        const int64_t flat = ((b * T + t) * H + h) * D; /* [b, t, h, :] */
        const int64_t byHead = ((b * H + h) * T + t) * D; /* [b, h, t, :] */
        if (!backward) {
          const float *xi = x + flat;
          float *o = out + byHead;
          for (int64_t i = 0; i < half; i++) o[i] = xi[i] * c[i] - xi[i + half] * s[i];
          for (int64_t i = half; i < D; i++) o[i] = xi[i] * c[i] + xi[i - half] * s[i];
        } else {
          const float *d = x + byHead;
          float *o = out + flat;
          for (int64_t i = 0; i < half; i++) o[i] = d[i] * c[i] + d[i + half] * s[i + half];
          for (int64_t i = half; i < D; i++) o[i] = d[i] * c[i] - d[i - half] * s[i - half];
        }
      }
    }
  }
  return NULL;
}

/*
 * causalSoftmax(scores, probs, items, rows, cols, seq, scale)
 * probs = softmax(scale·scores + mask) over the last axis of [items, rows, cols], where query row r sits at
 * position r mod seq (rows may stack several query heads of one kv group) and reads keys 0..position.
 */
static napi_value causal_softmax(napi_env env, napi_callback_info info) {
  ARGS(7, "causalSoftmax");
  float *sc, *pr;
  size_t l1, l2;
  int64_t items, rows, cols, seq;
  double scale;
  if (!get_f32(env, argv[0], &sc, &l1) || !get_f32(env, argv[1], &pr, &l2)) return NULL;
  if (!get_i64(env, argv[2], &items) || !get_i64(env, argv[3], &rows) || !get_i64(env, argv[4], &cols) || !get_i64(env, argv[5], &seq)) return NULL;
  if (!get_f64(env, argv[6], &scale)) return NULL;
  const int64_t nrows = items * rows;
  if (items < 0 || rows < 0 || cols < 1 || seq < 1 || l1 < (size_t)(nrows * cols) || l2 < (size_t)(nrows * cols)) RANGE_ERROR("causalSoftmax: bad sizes");
  const float k = (float)scale;
#pragma omp parallel for schedule(static) if (nrows * cols > 65536)
  for (int64_t r = 0; r < nrows; r++) {
    const int64_t pos = (r % rows) % seq;
    const int64_t n = pos + 1 < cols ? pos + 1 : cols;
    float *p = pr + r * cols;
    float mx;
    const float inv = 1.0f / row_exp(sc + r * cols, n, k, p, &mx);
    for (int64_t j = 0; j < n; j++) p[j] *= inv;
    for (int64_t j = n; j < cols; j++) p[j] = 0.0f;
  }
  return NULL;
}

/*
 * softmaxGrad(probs, dProbs, out, rowCount, cols, scale)
 * out = P·(dP − Σ_j dP·P)·scale per row: the gradient of the scores of a softmax (times the scores' scale).
 */
static napi_value softmax_grad(napi_env env, napi_callback_info info) {
  ARGS(6, "softmaxGrad");
  float *p, *dp, *out;
  size_t l1, l2, l3;
  int64_t nrows, cols;
  double scale;
  if (!get_f32(env, argv[0], &p, &l1) || !get_f32(env, argv[1], &dp, &l2) || !get_f32(env, argv[2], &out, &l3)) return NULL;
  if (!get_i64(env, argv[3], &nrows) || !get_i64(env, argv[4], &cols) || !get_f64(env, argv[5], &scale)) return NULL;
  if (nrows < 0 || cols < 1 || l1 < (size_t)(nrows * cols) || l2 < (size_t)(nrows * cols) || l3 < (size_t)(nrows * cols)) RANGE_ERROR("softmaxGrad: bad sizes");
  const float k = (float)scale;
#pragma omp parallel for schedule(static) if (nrows * cols > 65536)
  for (int64_t r = 0; r < nrows; r++) {
    const float *pi = p + r * cols, *di = dp + r * cols;
    float *o = out + r * cols;
    float dot = 0.0f;
    for (int64_t j = 0; j < cols; j++) dot += pi[j] * di[j];
    for (int64_t j = 0; j < cols; j++) o[j] = pi[j] * (di[j] - dot) * k;
  }
  return NULL;
}

/*
 * swiglu(gate, up, m, n): m = g·σ(g)·u element-wise (SwiGLU's product, before the down projection).
 * swigluGrad(gate, up, dm, dGate, dUp, n): with s = σ(g):  dUp = dm·g·s,  dGate = dm·u·s·(1 + g·(1 − s)).
 */
static napi_value swiglu(napi_env env, napi_callback_info info) {
  ARGS(4, "swiglu");
  float *g, *u, *m;
  size_t l1, l2, l3;
  int64_t n;
  if (!get_f32(env, argv[0], &g, &l1) || !get_f32(env, argv[1], &u, &l2) || !get_f32(env, argv[2], &m, &l3) || !get_i64(env, argv[3], &n)) return NULL;
  if (n < 0 || l1 < (size_t)n || l2 < (size_t)n || l3 < (size_t)n) RANGE_ERROR("swiglu: bad sizes");
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) m[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
  return NULL;
}

static napi_value swiglu_grad(napi_env env, napi_callback_info info) {
  ARGS(6, "swigluGrad");
  float *g, *u, *dm, *dg, *du;
  size_t l1, l2, l3, l4, l5;
  int64_t n;
  if (!get_f32(env, argv[0], &g, &l1) || !get_f32(env, argv[1], &u, &l2) || !get_f32(env, argv[2], &dm, &l3) ||
      !get_f32(env, argv[3], &dg, &l4) || !get_f32(env, argv[4], &du, &l5) || !get_i64(env, argv[5], &n)) return NULL;
  if (n < 0 || l1 < (size_t)n || l2 < (size_t)n || l3 < (size_t)n || l4 < (size_t)n || l5 < (size_t)n) RANGE_ERROR("swigluGrad: bad sizes");
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    const float s = 1.0f / (1.0f + expf(-g[i]));
    du[i] = dm[i] * g[i] * s;
    dg[i] = dm[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
  }
  return NULL;
}

/*
 * rmsNorm(x, w, out, r, rows, d, eps, activeDim): r_i = (Σ_j x_ij² / activeDim + eps)^(−½), out = x·r·w.
 * rmsNormGrad(dh, x, r, w, residual | null, dx, dw, rows, d, activeDim): with n = x·r, dn = dh·w,
 *   dx = r·(dn − n·Σ_j(dn·n)/activeDim) (+ residual),  dw = Σ_rows dh·n.
 */
static napi_value rms_norm(napi_env env, napi_callback_info info) {
  ARGS(8, "rmsNorm");
  float *x, *w, *out, *r;
  size_t lx, lw, lo, lr;
  int64_t rows, d;
  double eps, active;
  if (!get_f32(env, argv[0], &x, &lx) || !get_f32(env, argv[1], &w, &lw) || !get_f32(env, argv[2], &out, &lo) || !get_f32(env, argv[3], &r, &lr) ||
      !get_i64(env, argv[4], &rows) || !get_i64(env, argv[5], &d) || !get_f64(env, argv[6], &eps) || !get_f64(env, argv[7], &active)) return NULL;
  if (rows < 0 || d < 1 || lx < (size_t)(rows * d) || lo < (size_t)(rows * d) || lw < (size_t)d || lr < (size_t)rows || active <= 0) RANGE_ERROR("rmsNorm: bad sizes");
  const float inv = (float)(1.0 / active), e = (float)eps;
#pragma omp parallel for schedule(static) if (rows * d > 65536)
  for (int64_t i = 0; i < rows; i++) {
    const float *xi = x + i * d;
    float *o = out + i * d;
    float ss = 0.0f;
    for (int64_t j = 0; j < d; j++) ss += xi[j] * xi[j];
    const float ri = 1.0f / sqrtf(ss * inv + e);
    r[i] = ri;
    for (int64_t j = 0; j < d; j++) o[j] = xi[j] * ri * w[j];
  }
  return NULL;
}

static napi_value rms_norm_grad(napi_env env, napi_callback_info info) {
  ARGS(10, "rmsNormGrad");
  float *dh, *x, *r, *w, *res = NULL, *dx, *dw;
  size_t l1, l2, l3, l4, l5 = 0, l6, l7;
  int64_t rows, d;
  double active;
  napi_valuetype resType;
  if (!get_f32(env, argv[0], &dh, &l1) || !get_f32(env, argv[1], &x, &l2) || !get_f32(env, argv[2], &r, &l3) || !get_f32(env, argv[3], &w, &l4)) return NULL;
  CHECK(napi_typeof(env, argv[4], &resType));
  if (resType != napi_null && resType != napi_undefined && !get_f32(env, argv[4], &res, &l5)) return NULL;
  if (!get_f32(env, argv[5], &dx, &l6) || !get_f32(env, argv[6], &dw, &l7) || !get_i64(env, argv[7], &rows) || !get_i64(env, argv[8], &d) || !get_f64(env, argv[9], &active)) return NULL;
  const size_t nd = (size_t)(rows * d);
  if (rows < 0 || d < 1 || l1 < nd || l2 < nd || l3 < (size_t)rows || l4 < (size_t)d || (res && l5 < nd) || l6 < nd || l7 < (size_t)d || active <= 0) RANGE_ERROR("rmsNormGrad: bad sizes");
  const float inv = (float)(1.0 / active);
  int failed = 0;
  for (int64_t j = 0; j < d; j++) dw[j] = 0.0f;
#pragma omp parallel if (rows * d > 65536)
  {
    float *acc = (float *)calloc((size_t)d, sizeof(float));
    if (!acc) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
      const float *dhi = dh + i * d, *xi = x + i * d;
      const float ri = r[i];
      float dot = 0.0f;
      for (int64_t j = 0; j < d; j++) {
        const float nj = xi[j] * ri;
        dot += dhi[j] * w[j] * nj;
        if (acc) acc[j] += dhi[j] * nj;
      }
      const float k = dot * inv;
      float *o = dx + i * d;
      for (int64_t j = 0; j < d; j++) o[j] = ri * (dhi[j] * w[j] - xi[j] * ri * k) + (res ? res[i * d + j] : 0.0f);
    }
#pragma omp critical
    {
      if (acc)
        for (int64_t j = 0; j < d; j++) dw[j] += acc[j];
    }
    free(acc);
  }
  if (failed) {
    napi_throw_error(env, "E_NATIVE", "topiary_blas.rmsNormGrad: out of memory");
    return NULL;
  }
  return NULL;
}

/*
 * choleskyInverse(a, n, upper) → 0, or k > 0 when the leading minor of order k is not positive definite.
 * a: a symmetric positive definite [n, n] float64 matrix, overwritten with A⁻¹ (LAPACK dpotrf + dpotri; row-major
 * and column-major are the same for a symmetric matrix), or — with upper — with the upper-triangular U, A⁻¹ = UᵀU
 * (dpotrf of A⁻¹: its column-major lower factor L, read row-major, is Lᵀ = U). The other triangle is zeroed.
 */
static napi_value cholesky_inverse(napi_env env, napi_callback_info info) {
  ARGS(3, "choleskyInverse");
  double *a;
  size_t la;
  int64_t n64;
  bool upper;
  if (!get_f64arr(env, argv[0], &a, &la) || !get_i64(env, argv[1], &n64)) return NULL;
  CHECK(napi_get_value_bool(env, argv[2], &upper));
  if (n64 < 1 || n64 > INT32_MAX || la < (size_t)(n64 * n64)) RANGE_ERROR("choleskyInverse: bad sizes");
  const int n = (int)n64;
  const char lower = 'L';
  int status = 0;
  napi_value out;
  dpotrf_(&lower, &n, a, &n, &status);
  if (status == 0) dpotri_(&lower, &n, a, &n, &status);
  if (status == 0) {
    for (int r = 0; r < n; r++)
      for (int c = 0; c < r; c++) a[(size_t)r * n + c] = a[(size_t)c * n + r];
    if (upper) {
      dpotrf_(&lower, &n, a, &n, &status);
      for (int r = 0; r < n; r++)
        for (int c = 0; c < r; c++) a[(size_t)r * n + c] = 0.0;
    }
  }
  CHECK(napi_create_int32(env, status, &out));
  return out;
}

/*
 * subtractProduct64(m, n, k, A, lda, B, ldb, C, ldc): C −= A·B on float64 row-major blocks (views starting at each
 * block, row strides lda/ldb/ldc), by cblas_dgemm. Bounds are checked against the arrays' lengths.
 */
static napi_value subtract_product64(napi_env env, napi_callback_info info) {
  ARGS(9, "subtractProduct64");
  int64_t m, n, k, lda, ldb, ldc;
  double *a, *b, *c;
  size_t la, lb, lc;
  if (!get_i64(env, argv[0], &m) || !get_i64(env, argv[1], &n) || !get_i64(env, argv[2], &k)) return NULL;
  if (!get_f64arr(env, argv[3], &a, &la) || !get_i64(env, argv[4], &lda) || !get_f64arr(env, argv[5], &b, &lb) || !get_i64(env, argv[6], &ldb) ||
      !get_f64arr(env, argv[7], &c, &lc) || !get_i64(env, argv[8], &ldc)) return NULL;
  if (m < 0 || n < 0 || k < 0 || m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || lda < k || ldb < n || ldc < n || lda > INT32_MAX || ldb > INT32_MAX || ldc > INT32_MAX)
    RANGE_ERROR("subtractProduct64: bad sizes or strides");
  if (m == 0 || n == 0 || k == 0) return NULL;
  if ((size_t)((m - 1) * lda + k) > la || (size_t)((k - 1) * ldb + n) > lb || (size_t)((m - 1) * ldc + n) > lc)
    RANGE_ERROR("subtractProduct64: a block runs past the end of its array");
  cblas_dgemm(RowMajor, NoTrans, NoTrans, (int)m, (int)n, (int)k, -1.0, a, (int)lda, b, (int)ldb, 1.0, c, (int)ldc);
  return NULL;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  ARGS(1, "setThreads");
  int64_t n;
  if (!get_i64(env, argv[0], &n)) return NULL;
  if (n >= 1) {
    openblas_set_num_threads((int)n);
    omp_set_num_threads((int)n);
  }
  return NULL;
}

static napi_value blas_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out, v;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_string_utf8(env, openblas_get_config(), NAPI_AUTO_LENGTH, &v));
  CHECK(napi_set_named_property(env, out, "config", v));
  CHECK(napi_create_string_utf8(env, openblas_get_corename(), NAPI_AUTO_LENGTH, &v));
  CHECK(napi_set_named_property(env, out, "corename", v));
  CHECK(napi_create_int32(env, openblas_get_num_threads(), &v));
  CHECK(napi_set_named_property(env, out, "threads", v));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sgemmStrided", NULL, sgemm_strided, NULL, NULL, NULL, napi_default, NULL},
      {"softmaxXent", NULL, softmax_xent, NULL, NULL, NULL, napi_default, NULL},
      {"adamw", NULL, adamw, NULL, NULL, NULL, napi_default, NULL},
      {"ropeHeads", NULL, rope_heads, NULL, NULL, NULL, napi_default, NULL},
      {"causalSoftmax", NULL, causal_softmax, NULL, NULL, NULL, napi_default, NULL},
      {"softmaxGrad", NULL, softmax_grad, NULL, NULL, NULL, napi_default, NULL},
      {"swiglu", NULL, swiglu, NULL, NULL, NULL, napi_default, NULL},
      {"swigluGrad", NULL, swiglu_grad, NULL, NULL, NULL, napi_default, NULL},
      {"rmsNorm", NULL, rms_norm, NULL, NULL, NULL, napi_default, NULL},
      {"rmsNormGrad", NULL, rms_norm_grad, NULL, NULL, NULL, napi_default, NULL},
      {"subtractProduct64", NULL, subtract_product64, NULL, NULL, NULL, napi_default, NULL},
      {"choleskyInverse", NULL, cholesky_inverse, NULL, NULL, NULL, napi_default, NULL},
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_default, NULL},
      {"info", NULL, blas_info, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
