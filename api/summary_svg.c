/* The elbow of a run as a picture: plain SVG 1.1 text of the mean squared error against k, one
 * marker per k in increasing k, and each k's palette as a row of swatches whose widths are the
 * colours' shares of the pixels. No script and no external resource: a browser shows it as it
 * is. Everything it says comes from the summary's figures; it computes none of its own. */
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

/* The layout, in user units (pixels at 100 %): the chart's frame, the margin between it and the
 * first and last k, and the table of palettes on its right, a row per k. */
enum {
    PLOT_X0 = 90,
    PLOT_X1 = 530,
    PLOT_Y0 = 70,
    PLOT_Y1 = 390,
    PLOT_PAD = 20,
    ROW_LABEL_X = 640, /* where "k = 10" ends */
    SWATCH_X = 650,
    SWATCH_W = 300, /* a whole row: all the pixels that took part */
    SWATCH_H = 18,
    ROW_H = 24,
    FIG_W = 980,
};

static const char curve_colour[] = "#2a6fb0";

/* The length of the valid UTF-8 sequence at s (1 to 4 bytes), or 0 where there is none: XML
 * takes no overlong form and no surrogate. Stops at a NUL, which is never a continuation. */
static int utf8_len(const unsigned char *s)
{
    unsigned char lo = 0x80, hi = 0xBF;
    int n;
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        n = 2;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3;
        lo = s[0] == 0xE0 ? 0xA0 : lo;
        hi = s[0] == 0xED ? 0x9F : hi;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4;
        lo = s[0] == 0xF0 ? 0x90 : lo;
        hi = s[0] == 0xF4 ? 0x8F : hi;
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return n;
}

/* s as XML text or attribute value: markup characters escaped, and what XML cannot hold (a file
 * name is any bytes: control characters, bytes that are not UTF-8) as U+FFFD. */
static void put_escaped(FILE *f, const char *s)
{
    for (const unsigned char *c = (const unsigned char *)s; *c;) {
        int n = utf8_len(c);
        if (n == 0 || *c < 0x20 || *c == 0x7F) {
            fputs("\xEF\xBF\xBD", f);
            c++;
            continue;
        }
        switch (n == 1 ? *c : 0) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default: fwrite(c, 1, (size_t)n, f); break;
        }
        c += n;
    }
}

/* A step of about n ticks over range: 1, 2 or 5 times a power of ten. */
static double nice_step(double range, int n)
{
    double raw = range / n, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* What the error is measured in: the units of the features the distances were taken in. */
static const char *error_units(const cm_model_t *m)
{
    if (m->mean) return "standard deviations²";
    if (m->colorspace == CM_COLORSPACE_LAB) return "CIELAB units²";
    return "sample levels²";
}

/* The chart's scales: k from k_lo to k_hi (one k: the middle), the error from 0 to mse_top. */
typedef struct chart {
    int k_lo, k_hi;
    double mse_top, mse_step;
} chart_t;

static double x_of(const chart_t *c, int k)
{
    if (c->k_hi == c->k_lo) return (PLOT_X0 + PLOT_X1) / 2.0;
    return PLOT_X0 + PLOT_PAD +
           (double)(k - c->k_lo) / (c->k_hi - c->k_lo) * (PLOT_X1 - PLOT_X0 - 2 * PLOT_PAD);
}

static double y_of(const chart_t *c, double mse)
{
    return PLOT_Y1 - mse / c->mse_top * (PLOT_Y1 - PLOT_Y0);
}

/* The axes: the error from 0 in rounded steps, with grid lines; k in whole steps. */
static void put_axes(FILE *f, const chart_t *c, const cm_model_t *m)
{
    /* Labels of more than 6 digits (16-bit samples) count in millions or more, so that they
     * stay within the margin. */
    int e = c->mse_top >= 1e6 ? 3 * (int)floor(log10(c->mse_top) / 3) : 0;
    double unit = pow(10.0, e), label_step = c->mse_step / unit;
    int decimals = label_step >= 1 ? 0 : (int)ceil(-log10(label_step) - 1e-9);
    fputs("<g class=\"y-axis\" font-size=\"12\" text-anchor=\"end\">\n", f);
    for (int i = 0; i * c->mse_step <= c->mse_top * (1 + 1e-9); i++) {
        double y = y_of(c, i * c->mse_step);
        fprintf(f,
                "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#e2e2e2\"/>"
                "<text x=\"%d\" y=\"%.2f\">%.*f</text>\n",
                PLOT_X0, y, PLOT_X1, y, PLOT_X0 - 8, y + 4, decimals, i * label_step);
    }
    char in_units[32] = "";
    if (e == 6 || e == 9)
        snprintf(in_units, sizeof in_units, ", in %s", e == 6 ? "millions" : "billions");
    else if (e > 0)
        snprintf(in_units, sizeof in_units, ", in units of 1e%d", e);
    fprintf(f,
            "<text transform=\"translate(26 %d) rotate(-90)\" text-anchor=\"middle\" "
            "font-size=\"13\">mean squared error per pixel (%s%s)</text>\n</g>\n",
            (PLOT_Y0 + PLOT_Y1) / 2, error_units(m), in_units);
    fputs("<g class=\"x-axis\" font-size=\"12\" text-anchor=\"middle\">\n", f);
    int step = 1;
    if (c->k_hi > c->k_lo) step = (int)fmax(1.0, round(nice_step(c->k_hi - c->k_lo, 6)));
    for (int k = (c->k_lo + step - 1) / step * step; k <= c->k_hi; k += step) {
        double x = x_of(c, k);
        fprintf(f,
                "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#333333\"/>"
                "<text x=\"%.2f\" y=\"%d\">%d</text>\n",
                x, PLOT_Y1, x, PLOT_Y1 + 5, x, PLOT_Y1 + 19, k);
    }
    fprintf(f,
            "<text x=\"%d\" y=\"%d\" font-size=\"13\">k, the number of colours</text>\n</g>\n"
            "<path d=\"M %d %d V %d H %d\" fill=\"none\" stroke=\"#333333\"/>\n",
            (PLOT_X0 + PLOT_X1) / 2, PLOT_Y1 + 42, PLOT_X0, PLOT_Y0, PLOT_Y1, PLOT_X1);
}

/* The curve through the k in increasing order, then a marker per k with its figures. */
static void put_curve(FILE *f, const chart_t *c, const cm__summary_t *s, const int *order)
{
    fprintf(f, "<polyline class=\"curve\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
            curve_colour);
    for (int i = 0; i < s->n; i++) {
        const cm__summary_k_t *sk = &s->ks[order[i]];
        fprintf(f, "%s%.2f,%.2f", i ? " " : "", x_of(c, sk->k), y_of(c, sk->mse));
    }
    fputs("\"/>\n", f);
    for (int i = 0; i < s->n; i++) {
        const cm__summary_k_t *sk = &s->ks[order[i]];
        fprintf(f,
                "<circle class=\"point\" data-k=\"%d\" cx=\"%.2f\" cy=\"%.2f\" r=\"5\" "
                "fill=\"%s\" stroke=\"#ffffff\" stroke-width=\"1.5\">"
                "<title>k = %d: mean squared error %.2f</title></circle>\n",
                sk->k, x_of(c, sk->k), y_of(c, sk->mse), curve_colour, sk->k, sk->mse);
    }
}

/* Row `row` of the table: "k = N", then a swatch per colour that took pixels (the palette's
 * order and 8-bit colours, cm_palette_make), its width its share of SWATCH_W, and a frame
 * that bounds colours as light as the page. False when out of memory. */
static bool put_palette(FILE *f, const cm__summary_k_t *sk, cm_stype_t t, int row)
{
    cm_palette_t *p = NULL;
    bool ok = cm_palette_make(sk->out->fitted, t, &p, NULL) == 0;
    double y = PLOT_Y0 + row * ROW_H;
    fprintf(f,
            "<g class=\"palette\" data-k=\"%d\">\n<text x=\"%d\" y=\"%.2f\" "
            "text-anchor=\"end\">k = %d</text>\n",
            sk->k, ROW_LABEL_X, y + SWATCH_H - 5, sk->k);
    double before = 0;
    for (int i = 0; ok && i < p->k && p->colors[i].count > 0; i++) {
        const cm_palette_color_t *c = &p->colors[i];
        fprintf(
            f,
            "<rect class=\"swatch\" x=\"%.3f\" y=\"%.2f\" width=\"%.3f\" height=\"%d\" "
            "fill=\"#%02x%02x%02x\"><title>#%02x%02x%02x: %.2f %% of the pixels</title></rect>\n",
            SWATCH_X + SWATCH_W * before, y, SWATCH_W * c->share, SWATCH_H, c->rgb[0], c->rgb[1],
            c->rgb[2], c->rgb[0], c->rgb[1], c->rgb[2], 100 * c->share);
        before += c->share;
    }
    fprintf(f,
            "<rect class=\"frame\" x=\"%d\" y=\"%.2f\" width=\"%d\" height=\"%d\" fill=\"none\" "
            "stroke=\"#999999\" stroke-width=\"0.5\"/>\n</g>\n",
            SWATCH_X, y, SWATCH_W, SWATCH_H);
    cm_palette_free(p);
    return ok;
}

/* The whole picture; false when out of memory. */
static bool put_svg(FILE *f, const cm__summary_t *s, const int *order)
{
    const cm_model_t *m0 = s->ks[0].out->fitted;
    /* The colours of more than 3 bands, or of 2, are no colours a screen shows. */
    bool palettes = m0->d == 1 || m0->d == 3;
    chart_t c = {.k_lo = s->ks[order[0]].k, .k_hi = s->ks[order[s->n - 1]].k};
    double mse_max = 0;
    for (int i = 0; i < s->n; i++) mse_max = fmax(mse_max, s->ks[i].mse);
    c.mse_step = mse_max > 0 ? nice_step(mse_max, 5) : 0.2;
    c.mse_top = mse_max > 0 ? ceil(mse_max / c.mse_step - 1e-9) * c.mse_step : 1.0;
    int width = palettes ? FIG_W : PLOT_X1 + 30;
    int height = PLOT_Y1 + 60;
    if (palettes && PLOT_Y0 + s->n * ROW_H + 20 > height) height = PLOT_Y0 + s->n * ROW_H + 20;
    const char *slash = strrchr(s->in_path, '/'), *name = slash ? slash + 1 : s->in_path;

    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Helvetica, Arial, "
            "sans-serif\" font-size=\"13\" fill=\"#222222\">\n<title>",
            width, height, width, height);
    put_escaped(f, name);
    fputs(": mean squared error against k</title>\n<desc>", f);
    put_escaped(f, s->in_path);
    fprintf(f,
            " recoloured with %d values of k by chunkmeans %s: the mean squared error of each k, "
            "and its colours with their shares of the pixels.</desc>\n"
            "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n"
            "<text class=\"title\" x=\"%d\" y=\"30\" font-size=\"17\" font-weight=\"bold\">",
            s->n, cm_version(), width, height, PLOT_X0);
    put_escaped(f, name);
    fprintf(f,
            ": mean squared error against k</text>\n<text x=\"%d\" y=\"50\" fill=\"#555555\">"
            "%lld x %lld pixels, seed %llu, colour space %s</text>\n",
            PLOT_X0, (long long)s->rep->width, (long long)s->rep->height,
            (unsigned long long)s->p->seed, cm_colorspace_name(m0->colorspace));
    put_axes(f, &c, m0);
    put_curve(f, &c, s, order);
    bool ok = true;
    if (palettes) {
        fprintf(f,
                "<g class=\"palettes\">\n<text x=\"%d\" y=\"%d\" fill=\"#555555\">colours "
                "of each k, by share of pixels</text>\n",
                SWATCH_X, PLOT_Y0 - 8);
        for (int i = 0; ok && i < s->n; i++)
            ok = put_palette(f, &s->ks[order[i]], s->rep->meta.stype, i);
        fputs("</g>\n", f);
    }
    fputs("</svg>\n", f);
    return ok;
}

int cm__summary_svg(const cm__summary_t *s, const char *path, char **text, size_t *len,
                    cm_ctx_t *ctx)
{
    *text = NULL;
    *len = 0;
    int *order = malloc((size_t)s->n * sizeof *order);
    /* Numbers in the C locale: a caller's locale could write 3,5 where SVG needs 3.5. */
    locale_t c_numbers = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    FILE *f = order && c_numbers ? open_memstream(text, len) : NULL;
    bool ok = f;
    if (ok) {
        for (int i = 0; i < s->n; i++) { /* increasing k; of equal k, in the run's order */
            int j = i;
            for (; j > 0 && s->ks[order[j - 1]].k > s->ks[i].k; j--) order[j] = order[j - 1];
            order[j] = i;
        }
        locale_t caller = uselocale(c_numbers);
        ok = put_svg(f, s, order) && !ferror(f);
        uselocale(caller);
    }
    if (f && fclose(f) != 0) ok = false;
    if (c_numbers) freelocale(c_numbers);
    free(order);
    if (!ok) {
        free(*text);
        *text = NULL;
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", path);
    }
    return 0;
}
