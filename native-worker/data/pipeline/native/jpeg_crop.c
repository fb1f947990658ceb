// cnx-jpeg: one training/eval sample from a JPEG in one synchronous call. libjpeg-turbo decodes only the
// rows and columns the crop needs (DCT-scaled by M/8 when the crop is much larger than the output), a
// separable bicubic resample reproduces PIL's Image.resize(BICUBIC), which torchvision uses, and the
// result lands flipped and normalized in the caller's batch. Plain C on node_api.h only, so the same
// binary loads in Node and in Electron, on the main thread and in worker threads.
#include <math.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <node_api.h>

// PIL's fixed-point weights for 8-bit images: 32 bits less 8 for the pixel and 2 for the sum.
#define PRECISION_BITS 22
#define HALF (1 << (PRECISION_BITS - 1))
// Pixels decoded beyond what the filter reads: at a crop edge libjpeg's fancy chroma upsampling
// replicates the edge instead of reading the neighbour, so keep such edges out of the filter's reach.
#define MARGIN 2

enum { DONE, NOT_HANDLED, FAILED };

// Filter taps of one axis for a window of outputs: first input index, tap count, and fixed-point
// weights, `taps` slots per output (an even number, zero past count), each weight stored 4 times over so
// that one vector multiply weighs a whole RGBX pixel.
typedef struct {
  int *start;
  int *count;
  int32_t *weight;
  int taps;
} Axis;

typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
} ErrorManager;

typedef struct {
  // Request: region (left, top, width, height) of the full-size image, resized to out_w x out_h, of
  // which the side x side window at (win_left, win_top) is kept, mirrored when flip.
  const uint8_t *data;
  size_t length;
  double left, top, width, height;
  int out_w, out_h, win_left, win_top, side, flip;
  double max_pixels;
  float *out_f32;   // normalized CHW, or
  uint8_t *out_u8;  // RGB HWC
  float mean[3], std[3];
  // State, here rather than in decode()'s frame so that it survives longjmp intact.
  struct jpeg_decompress_struct cinfo;
  ErrorManager err;
  int created;
  Axis ax, ay;
  uint8_t *rows, *tmp;
  int32_t *acc;
  JSAMPROW *rowptr;
  int scale;  // M of the M/8 DCT scaling used, returned to the caller
  char message[JMSG_LENGTH_MAX + 128];
} Job;

static void error_exit(j_common_ptr c) { longjmp(((ErrorManager *)c->err)->jump, 1); }

// Warnings (corrupt entropy data, premature end of file) are tolerated, as sharp's failOn: 'none' does;
// libjpeg would otherwise print them to stderr.
static void emit_message(j_common_ptr c, int level) {
  (void)c;
  (void)level;
}

// PIL's bicubic kernel, a = -0.5.
static double bicubic(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// PIL's precompute_coeffs + normalize_coeffs_8bpc for outputs first..first+n-1 of an axis where
// [in0, in1) of an input of in_size pixels maps onto out_size outputs. The support widens with the
// downscale factor (antialiasing) and taps are clamped to the input, as PIL does.
static int axis_init(Axis *a, double in0, double in1, int in_size, int out_size, int first, int n) {
  double scale = (in1 - in0) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  double support = 2.0 * filterscale;
  double ss = 1.0 / filterscale;
  a->taps = (int)ceil(support) * 2 + 2;  // PIL's 2 * ceil(support) + 1, made even for tap pairs
  a->start = malloc(n * sizeof(int));
  a->count = malloc(n * sizeof(int));
  a->weight = calloc((size_t)n * a->taps * 4, sizeof(int32_t));
  double *k = malloc(a->taps * sizeof(double));
  if (!a->start || !a->count || !a->weight || !k) {
    free(k);
    return 0;
  }
  for (int i = 0; i < n; i++) {
    double center = in0 + (first + i + 0.5) * scale;
    int lo = (int)(center - support + 0.5);
    int hi = (int)(center + support + 0.5);
    if (lo < 0) lo = 0;
    if (hi > in_size) hi = in_size;
    double sum = 0.0;
    for (int t = 0; t < hi - lo; t++) sum += k[t] = bicubic((t + lo - center + 0.5) * ss);
    for (int t = 0; t < hi - lo; t++) {
      double w = sum != 0.0 ? k[t] / sum : k[t];
      int32_t fixed = (int32_t)(w < 0 ? -0.5 + w * (1 << PRECISION_BITS) : 0.5 + w * (1 << PRECISION_BITS));
      for (int c = 0; c < 4; c++) a->weight[(i * a->taps + t) * 4 + c] = fixed;
    }
    a->start[i] = lo;
    a->count[i] = hi - lo;
  }
  free(k);
  return 1;
}

static void axis_free(Axis *a) {
  free(a->start);
  free(a->count);
  free(a->weight);
}

static inline uint8_t clip8(int32_t v) {
  v >>= PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

// The two resampling loops work on RGBX pixels in int32 lanes (vector extensions in the horizontal one,
// the auto-vectorizer in the vertical one). Built twice where GCC can dispatch on the CPU, so AVX2
// machines get 8-lane integer multiplies.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define VECTORIZE __attribute__((target_clones("avx2", "default")))
#else
#define VECTORIZE
#endif

// Int32 lanes for one and two RGBX pixels (GCC/clang vector extensions; scalar code elsewhere).
typedef int32_t v4i32 __attribute__((vector_size(16)));
typedef int32_t v8i32 __attribute__((vector_size(32)));
typedef uint8_t v16u8 __attribute__((vector_size(16)));
typedef uint8_t v4u8 __attribute__((vector_size(4)));

// Stores the low byte of each lane: one byte shuffle where the compiler has it (5% of the whole call
// faster than four extracts), else plain stores.
static inline void store_bytes(v4i32 v, uint8_t *dst) {
#if (defined(__clang__) || __GNUC__ >= 12) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  v4u8 bytes = __builtin_shufflevector((v16u8)v, (v16u8)v, 0, 4, 8, 12);
  memcpy(dst, &bytes, 4);
#else
  for (int c = 0; c < 4; c++) dst[c] = (uint8_t)v[c];
#endif
}

// One row: RGBX pixels from src (the axis' input index 0 at pixel `origin`) to `side` RGBX pixels.
// Every output runs all `taps` (zero weights past its count): a fixed trip count the branch predictor
// gets right, unlike PIL's varying one; the caller leaves room to read those weightless pixels.
VECTORIZE static void horizontal(const Axis *a, const uint8_t *src, int origin, uint8_t *dst, int side) {
  const int taps = a->taps;
  for (int x = 0; x < side; x++) {
    const v8i32 *k = (const v8i32 *)(a->weight + (size_t)x * taps * 4);
    const uint8_t *p = src + (size_t)(origin + a->start[x]) * 4;
    v8i32 acc = {HALF, HALF, HALF, HALF};
    for (int t = 0; t < taps; t += 2, p += 8, k++) acc += (v8i32){p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]} * *k;
    v4i32 v = ((v4i32){acc[0], acc[1], acc[2], acc[3]} + (v4i32){acc[4], acc[5], acc[6], acc[7]}) >> PRECISION_BITS;
    v &= ~(v >> 31);                    // negatives to 0
    v = (v | ((255 - v) >> 31)) & 255;  // above 255 to 255
    store_bytes(v, dst + x * 4);
  }
}

// One output row: the weighted sum of n rows `stride` apart, len bytes each, rounded into dst.
VECTORIZE static void vertical(const uint8_t *rows, size_t stride, int n, const int32_t *k, int32_t *acc, uint8_t *dst, int len) {
  for (int i = 0; i < len; i++) acc[i] = HALF;
  for (int t = 0; t < n; t++, rows += stride)
    for (int i = 0; i < len; i++) acc[i] += rows[i] * k[t * 4];
  for (int i = 0; i < len; i++) {
    int32_t v = acc[i] >> PRECISION_BITS;
    dst[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
}

static int fail(Job *j, const char *what) {
  snprintf(j->message, sizeof j->message, "%s", what);
  return FAILED;
}

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

static int decode(Job *j) {
  struct jpeg_decompress_struct *ci = &j->cinfo;
  ci->err = jpeg_std_error(&j->err.pub);
  j->err.pub.error_exit = error_exit;
  j->err.pub.emit_message = emit_message;
  if (setjmp(j->err.jump)) {
    // 12-bit data is beyond this build of libjpeg: not damaged, just unusual, so let sharp try.
    if (j->err.pub.msg_code == JERR_BAD_PRECISION) return NOT_HANDLED;
    char msg[JMSG_LENGTH_MAX];
    j->err.pub.format_message((j_common_ptr)ci, msg);
    snprintf(j->message, sizeof j->message, "JPEG decoding failed: %s", msg);
    return FAILED;
  }
  j->created = 1;
  jpeg_create_decompress(ci);
  jpeg_mem_src(ci, j->data, (unsigned long)j->length);
  jpeg_read_header(ci, TRUE);
  int gray = ci->jpeg_color_space == JCS_GRAYSCALE && ci->num_components == 1;
  int rgb = (ci->jpeg_color_space == JCS_YCbCr || ci->jpeg_color_space == JCS_RGB) && ci->num_components == 3;
  if (!gray && !rgb) return NOT_HANDLED;  // CMYK, YCCK and the like: sharp converts those with ICC profiles
  double W = ci->image_width, H = ci->image_height;
  if (W * H > j->max_pixels) {
    snprintf(j->message, sizeof j->message, "image is %.0fx%.0f pixels, over the limit of %.0f (a decompression bomb?)", W, H, j->max_pixels);
    return FAILED;
  }
  if (j->left < 0 || j->top < 0 || j->width <= 0 || j->height <= 0 || j->left + j->width > W || j->top + j->height > H) return fail(j, "crop box outside the image");
  if (j->win_left < 0 || j->win_top < 0 || j->win_left + j->side > j->out_w || j->win_top + j->side > j->out_h) return fail(j, "output window outside the resized image");

  // DCT scaling: the smallest M/8 at which the region still spans twice the output in both directions.
  // Larger crops decode cheaper, and the bicubic pass still does at least a 2x antialiased reduction,
  // which keeps the result near PIL's full-size resize (down to 1x, an 8 -> 7 DCT shrink alone shifts
  // detailed images by a level on average and over ten at edges).
  int m = 8;
  while (m > 1 && j->width * (m - 1) / 8.0 >= 2.0 * j->out_w && j->height * (m - 1) / 8.0 >= 2.0 * j->out_h) m--;
  j->scale = m;
  ci->scale_num = m;
  ci->scale_denom = 8;
  ci->out_color_space = JCS_EXT_RGBX;  // 4-byte pixels for the vectorized resampling
  jpeg_start_decompress(ci);
  int ow = (int)ci->output_width, oh = (int)ci->output_height;

  // The region in scaled pixels (an M x M block covers what its 8 x 8 block did): its edges may fall
  // inside a pixel, so the filter sees the enclosing pixels and the exact edges as sub-pixel offsets.
  double s = m / 8.0;
  int cx = (int)floor(j->left * s), cy = (int)floor(j->top * s);
  int cw = imin((int)ceil((j->left + j->width) * s), ow) - cx;
  int ch = imin((int)ceil((j->top + j->height) * s), oh) - cy;
  if (!axis_init(&j->ax, j->left * s - cx, (j->left + j->width) * s - cx, cw, j->out_w, j->win_left, j->side) ||
      !axis_init(&j->ay, j->top * s - cy, (j->top + j->height) * s - cy, ch, j->out_h, j->win_top, j->side))
    return fail(j, "out of memory");

  // What the filter reads, in scaled image pixels.
  int x0 = ow, x1 = 0, y0 = oh, y1 = 0;
  for (int i = 0; i < j->side; i++) {
    x0 = imin(x0, cx + j->ax.start[i]);
    x1 = imax(x1, cx + j->ax.start[i] + j->ax.count[i]);
    y0 = imin(y0, cy + j->ay.start[i]);
    y1 = imax(y1, cy + j->ay.start[i] + j->ay.count[i]);
  }
  // Decode those columns (libjpeg widens the left edge to an iMCU boundary) and rows, plus margins.
  JDIMENSION xoff = (JDIMENSION)imax(0, x0 - MARGIN), xw = (JDIMENSION)(imin(ow, x1 + MARGIN) - (int)xoff);
  if (xw < (JDIMENSION)ow) jpeg_crop_scanline(ci, &xoff, &xw);
  int first = imax(0, y0 - MARGIN), last = imin(oh, y1 + MARGIN);
  if (first > 0) jpeg_skip_scanlines(ci, (JDIMENSION)first);
  size_t stride = (size_t)xw * 4;
  j->rows = malloc(stride * (last - first) + (size_t)j->ax.taps * 4);  // + the weightless taps' pixels
  j->rowptr = malloc(sizeof(JSAMPROW) * (last - first));
  j->tmp = malloc((size_t)j->side * 4 * (y1 - y0 + 1));
  j->acc = malloc(sizeof(int32_t) * 4 * j->side);
  if (!j->rows || !j->rowptr || !j->tmp || !j->acc) return fail(j, "out of memory");
  for (int r = 0; r < last - first; r++) j->rowptr[r] = j->rows + r * stride;
  while ((int)ci->output_scanline < last) {
    // Rows below the crop are never decoded: the caller's jpeg_destroy_decompress drops the rest.
    if (!jpeg_read_scanlines(ci, j->rowptr + (ci->output_scanline - first), (JDIMENSION)(last - (int)ci->output_scanline))) return fail(j, "JPEG decoding stalled");
  }

  // Horizontal pass into 8-bit rows, rounded there as PIL does between its two passes.
  int side = j->side;
  for (int y = y0; y < y1; y++) horizontal(&j->ax, j->rows + (y - first) * stride, cx - (int)xoff, j->tmp + (size_t)(y - y0) * side * 4, side);

  // Vertical pass, then out to the destination. Float output uses torch's float32 arithmetic,
  // (v / 255 - mean) / std, so it matches ToTensor + Normalize bit for bit.
  float lut[3][256];
  for (int c = 0; c < 3; c++)
    for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - j->mean[c]) / j->std[c];
  size_t plane = (size_t)side * side;
  uint8_t *line = j->tmp + (size_t)(y1 - y0) * side * 4;  // one output row, after the horizontal rows
  for (int y = 0; y < side; y++) {
    vertical(j->tmp + (size_t)(cy + j->ay.start[y] - y0) * side * 4, (size_t)side * 4, j->ay.count[y], j->ay.weight + (size_t)y * j->ay.taps * 4, j->acc, line,
             side * 4);
    for (int x = 0; x < side; x++) {
      const uint8_t *v = line + x * 4;
      size_t at = (size_t)y * side + (j->flip ? side - 1 - x : x);
      if (j->out_f32) {
        j->out_f32[at] = lut[0][v[0]];
        j->out_f32[plane + at] = lut[1][v[1]];
        j->out_f32[2 * plane + at] = lut[2][v[2]];
      } else {
        memcpy(j->out_u8 + at * 3, v, 3);
      }
    }
  }
  return DONE;
}

static void cleanup(Job *j) {
  if (j->created) jpeg_destroy_decompress(&j->cinfo);
  axis_free(&j->ax);
  axis_free(&j->ay);
  free(j->rows);
  free(j->rowptr);
  free(j->tmp);
  free(j->acc);
}

// ---- JavaScript binding ----

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static int get_number(napi_env env, napi_value obj, const char *name, double *out) {
  napi_value v;
  return napi_get_named_property(env, obj, name, &v) == napi_ok && napi_get_value_double(env, v, out) == napi_ok;
}

static int get_int(napi_env env, napi_value obj, const char *name, int *out) {
  double d;
  if (!get_number(env, obj, name, &d) || d != floor(d) || d < 0 || d > 1 << 30) return 0;
  *out = (int)d;
  return 1;
}

// Three numbers of a JS array property (mean or std).
static int get_triple(napi_env env, napi_value obj, const char *name, float out[3]) {
  napi_value arr, v;
  double d;
  if (napi_get_named_property(env, obj, name, &arr) != napi_ok) return 0;
  for (uint32_t i = 0; i < 3; i++) {
    if (napi_get_element(env, arr, i, &v) != napi_ok || napi_get_value_double(env, v, &d) != napi_ok) return 0;
    out[i] = (float)d;
  }
  return 1;
}

// cropResize(jpeg: Uint8Array, spec, out: Float32Array | Uint8Array, offset: number): number
// spec: { left, top, width, height, outWidth, outHeight, windowLeft, windowTop, size, flip, mean, std,
// maxPixels }. Writes size x size normalized CHW floats (Float32Array) or RGB bytes (Uint8Array) at
// out[offset..] and returns M of the M/8 DCT scaling it decoded at; returns 0, writing nothing, for JPEGs
// it leaves to sharp (CMYK, 12-bit); throws for damaged ones.
static napi_value crop_resize(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) return throw_type(env, "cropResize(jpeg, spec, out, offset)");
  Job *j = calloc(1, sizeof(Job));
  if (!j) return throw_type(env, "out of memory");
  napi_typedarray_type type;
  size_t length, out_length;
  void *data, *out;
  napi_value ab;
  size_t byte_offset;
  double flip = 0, offset;
  napi_value spec = argv[1], flag;
  int ok = napi_get_typedarray_info(env, argv[0], &type, &length, &data, &ab, &byte_offset) == napi_ok && type == napi_uint8_array;
  j->data = data;
  j->length = length;
  ok = ok && get_number(env, spec, "left", &j->left) && get_number(env, spec, "top", &j->top) && get_number(env, spec, "width", &j->width) &&
       get_number(env, spec, "height", &j->height) && get_int(env, spec, "outWidth", &j->out_w) && get_int(env, spec, "outHeight", &j->out_h) &&
       get_int(env, spec, "windowLeft", &j->win_left) && get_int(env, spec, "windowTop", &j->win_top) && get_int(env, spec, "size", &j->side) &&
       j->side > 0 && get_number(env, spec, "maxPixels", &j->max_pixels) && get_triple(env, spec, "mean", j->mean) && get_triple(env, spec, "std", j->std);
  ok = ok && napi_get_named_property(env, spec, "flip", &flag) == napi_ok && napi_coerce_to_number(env, flag, &flag) == napi_ok &&
       napi_get_value_double(env, flag, &flip) == napi_ok;
  j->flip = flip != 0;
  if (!ok) {
    free(j);
    return throw_type(env, "cropResize: jpeg must be a Uint8Array and spec needs left, top, width, height, outWidth, outHeight, windowLeft, windowTop, size, flip, mean, std, maxPixels");
  }
  size_t need = (size_t)3 * j->side * j->side;
  ok = napi_get_typedarray_info(env, argv[2], &type, &out_length, &out, &ab, &byte_offset) == napi_ok && (type == napi_float32_array || type == napi_uint8_array) &&
       napi_get_value_double(env, argv[3], &offset) == napi_ok && offset >= 0 && offset == floor(offset) && offset + need <= out_length;
  if (!ok) {
    free(j);
    return throw_type(env, "cropResize: out must be a Float32Array or Uint8Array with room for 3 * size * size values at offset");
  }
  if (type == napi_float32_array) j->out_f32 = (float *)out + (size_t)offset;
  else j->out_u8 = (uint8_t *)out + (size_t)offset;

  int status = decode(j);
  cleanup(j);
  napi_value result = NULL;
  if (status == FAILED) napi_throw_error(env, NULL, j->message);
  else napi_create_int32(env, status == DONE ? j->scale : 0, &result);
  free(j);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "cropResize", NAPI_AUTO_LENGTH, crop_resize, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "cropResize", fn) != napi_ok) return NULL;
  return exports;
}
