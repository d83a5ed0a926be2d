/*
 * topiary_blas: a tiny N-API addon exposing OpenBLAS's single-precision GEMM to JavaScript.
 *
 * Every function takes Float32Array views (which may be views onto the tfjs wasm heap: the product is written in
 * place, no copy). Matrices are row-major. The CBLAS prototypes are declared here rather than taken from a header,
 * so only the library (libopenblas.so, Debian's libopenblas-dev) is needed to link.
 */
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>

enum { RowMajor = 101 };
enum { NoTrans = 111, Trans = 112 };
extern void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc);
extern void openblas_set_num_threads(int n);
extern int openblas_get_num_threads(void);
extern char *openblas_get_config(void);
extern char *openblas_get_corename(void);

#define CHECK(call)                                                                     \
  do {                                                                                  \
    if ((call) != napi_ok) {                                                            \
      napi_throw_error(env, "E_NATIVE", "topiary_blas: N-API call failed: " #call);     \
      return NULL;                                                                      \
    }                                                                                   \
  } while (0)

static int get_f32(napi_env env, napi_value v, float **data, size_t *length) {
  napi_typedarray_type type;
  void *raw;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, length, &raw, &buffer, &offset) != napi_ok || type != napi_float32_array) {
    napi_throw_type_error(env, "E_NATIVE", "topiary_blas: expected a Float32Array");
    return 0;
  }
  *data = (float *)raw;
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
  if (m < 0 || n < 0 || k < 0 || batch < 0 || sa < 0 || sb < 0 || sc < 0 || m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) {
    napi_throw_range_error(env, "E_NATIVE", "topiary_blas.sgemmStrided: negative or too large size");
    return NULL;
  }
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

static napi_value set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t n;
  if (argc < 1 || !get_i64(env, argv[0], &n)) return NULL;
  if (n >= 1) openblas_set_num_threads((int)n);
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
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_default, NULL},
      {"info", NULL, blas_info, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
