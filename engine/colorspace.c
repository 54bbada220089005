/* sRGB (D65, the sRGB transfer curve) to CIELAB and back, for the Lab features of colour
 * images, and the colour differences (ΔE76, CIEDE2000) that measure them. Knows samples and
 * colours only: which bands are colours is pixels.c's business. */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "engine_internal.h"

/* The D65 white of the sRGB primaries, and the sRGB matrices (IEC 61966-2-1, as tabulated by
 * Bruce Lindbloom): linear RGB to XYZ and back. */
static const double WHITE[3] = {0.95047, 1.0, 1.08883};
static const double TO_XYZ[3][3] = {{0.4124564, 0.3575761, 0.1804375},
                                    {0.2126729, 0.7151522, 0.0721750},
                                    {0.0193339, 0.1191920, 0.9503041}};
static const double FROM_XYZ[3][3] = {{3.2404542, -1.5371385, -0.4985314},
                                      {-0.9692660, 1.8760108, 0.0415560},
                                      {0.0556434, -0.2040259, 1.0572252}};

/* The CIE's f(t) and its inverse; both linear below the knee, which also extends them to
 * negative values (colours outside the sRGB gamut), so every colour converts both ways. */
static const double DELTA = 6.0 / 29.0;

/* The cube root of t > 0, three times as fast as cbrt(): a guess from the bits of t (its
 * exponent divided by 3), then two Halley steps, which leave a relative error below 1e-14
 * (the features are floats: 6e-8). Plain arithmetic, so the same on every machine. */
static double cube_root(double t)
{
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = bits / 3 + 0x2A9F7893782DA1CEULL;
    double y;
    memcpy(&y, &bits, sizeof y);
    for (int i = 0; i < 2; i++) {
        double y3 = y * y * y;
        y = y * (y3 + 2 * t) / (2 * y3 + t);
    }
    return y;
}

static double lab_f(double t)
{
    return t > DELTA * DELTA * DELTA ? cube_root(t) : t / (3 * DELTA * DELTA) + 4.0 / 29.0;
}

static double lab_finv(double f)
{
    return f > DELTA ? f * f * f : 3 * DELTA * DELTA * (f - 4.0 / 29.0);
}

/* The sRGB transfer curve, encoded 0..1 to linear and back; linear below the knee, so
 * negative values convert too. */
static double srgb_decode(double c)
{
    return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
}

static double srgb_encode(double l)
{
    return l <= 0.0031308 ? l * 12.92 : 1.055 * pow(l, 1 / 2.4) - 0.055;
}

static double color_max(cm_stype_t t)
{
    switch (t) {
    case CM_U8: return UINT8_MAX;
    case CM_U16: return UINT16_MAX;
    case CM_I16: return INT16_MAX;
    case CM_F32: return 1.0;
    }
    return 1.0;
}

static void linear_to_lab(const double lin[3], double lab[3]);

void cm__srgb_to_lab(cm_stype_t t, const double rgb[3], double lab[3])
{
    double max = color_max(t), lin[3];
    for (int c = 0; c < 3; c++) lin[c] = srgb_decode(rgb[c] / max);
    linear_to_lab(lin, lab);
}

void cm__lab_to_srgb(cm_stype_t t, const double lab[3], double rgb[3])
{
    double fy = (lab[0] + 16) / 116, xyz[3];
    xyz[0] = WHITE[0] * lab_finv(fy + lab[1] / 500);
    xyz[1] = WHITE[1] * lab_finv(fy);
    xyz[2] = WHITE[2] * lab_finv(fy - lab[2] / 200);
    double max = color_max(t);
    for (int r = 0; r < 3; r++)
        rgb[r] = max * srgb_encode(FROM_XYZ[r][0] * xyz[0] + FROM_XYZ[r][1] * xyz[1] +
                                   FROM_XYZ[r][2] * xyz[2]);
}

/* The transfer curve of every 8- and 16-bit sample, made once: the features of a pixel then
 * cost table lookups instead of three pow(). The tables hold what srgb_decode gives, so the
 * features are the same as without them, to the bit. */
static double decode_u8[UINT8_MAX + 1], decode_u16[UINT16_MAX + 1];
static pthread_once_t decode_once = PTHREAD_ONCE_INIT;

static void decode_tables(void)
{
    for (int v = 0; v <= UINT8_MAX; v++) decode_u8[v] = srgb_decode(v / color_max(CM_U8));
    for (int v = 0; v <= UINT16_MAX; v++) decode_u16[v] = srgb_decode(v / color_max(CM_U16));
}

static void linear_to_lab(const double lin[3], double lab[3])
{
    double f[3];
    for (int r = 0; r < 3; r++)
        f[r] = lab_f((TO_XYZ[r][0] * lin[0] + TO_XYZ[r][1] * lin[1] + TO_XYZ[r][2] * lin[2]) /
                     WHITE[r]);
    lab[0] = 116 * f[1] - 16;
    lab[1] = 500 * (f[0] - f[1]);
    lab[2] = 200 * (f[1] - f[2]);
}

void cm__lab_features(cm_stype_t t, float *x)
{
    double lin[3], lab[3];
    if (t == CM_U8 || t == CM_U16) {
        pthread_once(&decode_once, decode_tables);
        const double *table = t == CM_U8 ? decode_u8 : decode_u16;
        for (int c = 0; c < 3; c++) lin[c] = table[(int)x[c]]; /* whole samples in range */
    } else {
        for (int c = 0; c < 3; c++) lin[c] = srgb_decode(x[c] / color_max(t));
    }
    linear_to_lab(lin, lab);
    for (int c = 0; c < 3; c++) x[c] = (float)lab[c];
}

int cm__colorspace_check(const cm_grid_t *g, cm_colorspace_t cs, cm_ctx_t *ctx)
{
    if (cs == CM_COLORSPACE_RGB) return 0;
    CM_FAIL_IF(ctx, cs != CM_COLORSPACE_LAB, CM_EUSAGE, "unknown colour space %d", (int)cs);
    if (cm_grid_features(g) != 3 || g->stype == CM_I16)
        return cm_fail_about(ctx, CM_EUSAGE, (cm_about_t){CM_SETTING_COLORSPACE, cs, 0},
                             CM_NAMED("colour space lab") " needs an RGB image: 3 colour bands "
                                                          "(and an optional alpha) of uint8, "
                                                          "uint16 or float32 samples, not %d of %s",
                             cm_grid_features(g), cm_stype_name(g->stype));
    return 0;
}

const char *cm_colorspace_name(cm_colorspace_t cs)
{
    return cs == CM_COLORSPACE_LAB ? "lab" : "rgb";
}

/* ---- colour differences ---- */

static const double PI = 3.14159265358979323846;

static double deg(double r)
{
    return r * (180.0 / PI);
}

static double rad(double d)
{
    return d * (PI / 180.0);
}

/* CIEDE2000 (Sharma, Wu and Dalal, 2005), with kL = kC = kH = 1. */
static double ciede2000(const double *x, const double *y)
{
    double c1 = hypot(x[1], x[2]), c2 = hypot(y[1], y[2]), cbar = (c1 + c2) / 2;
    double c7 = pow(cbar, 7), g = 0.5 * (1 - sqrt(c7 / (c7 + pow(25.0, 7))));
    double a1 = (1 + g) * x[1], a2 = (1 + g) * y[1];
    double cp1 = hypot(a1, x[2]), cp2 = hypot(a2, y[2]);
    double hp1 = cp1 == 0 ? 0 : deg(atan2(x[2], a1)), hp2 = cp2 == 0 ? 0 : deg(atan2(y[2], a2));
    if (hp1 < 0) hp1 += 360;
    if (hp2 < 0) hp2 += 360;
    double dl = y[0] - x[0], dc = cp2 - cp1, dh = 0;
    if (cp1 * cp2 != 0) {
        dh = hp2 - hp1;
        if (dh > 180) dh -= 360;
        if (dh < -180) dh += 360;
    }
    double dH = 2 * sqrt(cp1 * cp2) * sin(rad(dh / 2));
    double lbar = (x[0] + y[0]) / 2, cpbar = (cp1 + cp2) / 2, hbar = hp1 + hp2;
    if (cp1 * cp2 != 0) {
        if (fabs(hp1 - hp2) <= 180)
            hbar /= 2;
        else
            hbar = hbar < 360 ? (hbar + 360) / 2 : (hbar - 360) / 2;
    }
    double t = 1 - 0.17 * cos(rad(hbar - 30)) + 0.24 * cos(rad(2 * hbar)) +
               0.32 * cos(rad(3 * hbar + 6)) - 0.20 * cos(rad(4 * hbar - 63));
    double dtheta = 30 * exp(-pow((hbar - 275) / 25, 2));
    double cp7 = pow(cpbar, 7), rc = 2 * sqrt(cp7 / (cp7 + pow(25.0, 7)));
    double l50 = (lbar - 50) * (lbar - 50);
    double sl = 1 + 0.015 * l50 / sqrt(20 + l50), sc = 1 + 0.045 * cpbar,
           sh = 1 + 0.015 * cpbar * t;
    double rt = -sin(rad(2 * dtheta)) * rc;
    double ql = dl / sl, qc = dc / sc, qh = dH / sh;
    return sqrt(ql * ql + qc * qc + qh * qh + rt * qc * qh);
}

double cm__delta_e(cm__delta_e_t formula, const double lab1[3], const double lab2[3])
{
    if (formula == CM__DE2000) return ciede2000(lab1, lab2);
    double s = 0;
    for (int c = 0; c < 3; c++) s += (lab1[c] - lab2[c]) * (lab1[c] - lab2[c]);
    return sqrt(s);
}

static double sample_at(cm_stype_t t, const void *buf, int64_t i)
{
    switch (t) {
    case CM_U8: return ((const uint8_t *)buf)[i];
    case CM_U16: return ((const uint16_t *)buf)[i];
    case CM_I16: return ((const int16_t *)buf)[i];
    case CM_F32: return ((const float *)buf)[i];
    }
    return NAN;
}

double cm__mean_delta_e(cm__delta_e_t formula, cm_stype_t t, const void *a, const void *b,
                        int64_t n_px, int bands, int alpha_band)
{
    int band[3], d = 0;
    for (int j = 0; j < bands && d < 3; j++)
        if (j != alpha_band) band[d++] = j;
    if (d < 3) return NAN;
    double sum = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < n_px; i++) {
        if (alpha_band >= 0 && sample_at(t, a, i * bands + alpha_band) == 0) continue;
        double ca[3], cb[3], la[3], lb[3];
        for (int c = 0; c < 3; c++) {
            ca[c] = sample_at(t, a, i * bands + band[c]);
            cb[c] = sample_at(t, b, i * bands + band[c]);
        }
        cm__srgb_to_lab(t, ca, la);
        cm__srgb_to_lab(t, cb, lb);
        double de = cm__delta_e(formula, la, lb);
        if (!isfinite(de)) continue;
        sum += de;
        n++;
    }
    return n ? sum / (double)n : NAN;
}
