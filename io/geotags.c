/* GeoTIFF and GDAL tags: teaching libtiff their types (one process-wide tag extender), copying
 * the tags that carry meaning from an input to an output, and GDAL's NoData value. Works on
 * tags of the handles it is given; never touches pixels or libtiff's global error handlers. */
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_base.h"
#include "io_internal.h"

enum {
    TAG_MODEL_PIXEL_SCALE = 33550,
    TAG_MODEL_TIEPOINT = 33922,
    TAG_MODEL_TRANSFORMATION = 34264,
    TAG_GEO_KEY_DIRECTORY = 34735,
    TAG_GEO_DOUBLE_PARAMS = 34736,
    TAG_GEO_ASCII_PARAMS = 34737,
    TAG_GDAL_METADATA = 42112,
    TAG_GDAL_NODATA = 42113,
};

/* Arrays take a uint32_t count (TIFF_VARIABLE2), as libtiff's anonymous fields for unknown
 * tags do, so a tag reads the same way whether or not it was registered. */
#define ARRAY_FIELD(tag, type, name)                                                               \
    {                                                                                              \
        (tag), TIFF_VARIABLE2, TIFF_VARIABLE2, (type), FIELD_CUSTOM, 1, 1, (name)                  \
    }
#define ASCII_FIELD(tag, name)                                                                     \
    {                                                                                              \
        (tag), TIFF_VARIABLE, TIFF_VARIABLE, TIFF_ASCII, FIELD_CUSTOM, 1, 0, (name)                \
    }

static const TIFFFieldInfo geo_fields[] = {
    ARRAY_FIELD(TAG_MODEL_PIXEL_SCALE, TIFF_DOUBLE, "ModelPixelScaleTag"),
    ARRAY_FIELD(TAG_MODEL_TIEPOINT, TIFF_DOUBLE, "ModelTiepointTag"),
    ARRAY_FIELD(TAG_MODEL_TRANSFORMATION, TIFF_DOUBLE, "ModelTransformationTag"),
    ARRAY_FIELD(TAG_GEO_KEY_DIRECTORY, TIFF_SHORT, "GeoKeyDirectoryTag"),
    ARRAY_FIELD(TAG_GEO_DOUBLE_PARAMS, TIFF_DOUBLE, "GeoDoubleParamsTag"),
    ASCII_FIELD(TAG_GEO_ASCII_PARAMS, "GeoASCIIParamsTag"),
    ASCII_FIELD(TAG_GDAL_METADATA, "GDALMetadata"),
    ASCII_FIELD(TAG_GDAL_NODATA, "GDALNoDataValue"),
};

/* Copied by cm__tags_copy with their values as libtiff holds them (arrays, bytes or strings);
 * resolution and orientation are copied apart. */
static const uint32_t copied_tags[] = {
    TAG_MODEL_PIXEL_SCALE, TAG_MODEL_TIEPOINT,    TAG_MODEL_TRANSFORMATION,
    TAG_GEO_KEY_DIRECTORY, TAG_GEO_DOUBLE_PARAMS, TAG_GEO_ASCII_PARAMS,
    TAG_GDAL_METADATA,     TAG_GDAL_NODATA,       TIFFTAG_ICCPROFILE,
    TIFFTAG_DOCUMENTNAME,  TIFFTAG_MAKE,          TIFFTAG_MODEL,
    TIFFTAG_ARTIST,        TIFFTAG_COPYRIGHT,     TIFFTAG_DATETIME,
};

/* ---- registration ---------------------------------------------------------------------- */

static TIFFExtendProc parent_extender; /* written once, under pthread_once */

static void extend(TIFF *tif)
{
    /* Tags libtiff already knows for this handle are skipped by the merge. A failure (out of
     * memory) is reported through the handle's error handler, and the tags stay unknown. */
    (void)TIFFMergeFieldInfo(tif, geo_fields, sizeof geo_fields / sizeof geo_fields[0]);
    if (parent_extender) parent_extender(tif);
}

static void install_extender(void)
{
    parent_extender = TIFFSetTagExtender(extend);
}

void cm__tags_register(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install_extender);
}

/* ---- reading and writing one tag -------------------------------------------------------- */

/* The value of tag in tif's current directory as libtiff holds it: *count elements of *type at
 * *data (owned by tif). For ASCII tags *data is a NUL-terminated string and *count its size
 * with the NUL. 1 when present, 0 when absent or unknown to tif. */
static int get_value(TIFF *tif, uint32_t tag, TIFFDataType *type, uint32_t *count, void **data)
{
    const TIFFField *f = TIFFFindField(tif, tag, TIFF_ANY);
    if (!f) return 0;
    *type = TIFFFieldDataType(f);
    if (TIFFFieldPassCount(f)) {
        if (TIFFFieldReadCount(f) == TIFF_VARIABLE2) {
            if (!TIFFGetField(tif, tag, count, data)) return 0;
        } else {
            uint16_t count16;
            if (!TIFFGetField(tif, tag, &count16, data)) return 0;
            *count = count16;
        }
        /* An ASCII tag read before cm__tags_register (an anonymous field) comes with a count;
         * one without its NUL cannot be used as a string. */
        if (TIFFFieldDataType(f) == TIFF_ASCII && (!*count || !memchr(*data, 0, *count))) return 0;
        return 1;
    }
    if (TIFFFieldDataType(f) != TIFF_ASCII) return 0; /* none of ours */
    char *text;
    if (!TIFFGetField(tif, tag, &text) || !text) return 0;
    *data = text;
    *count = (uint32_t)strlen(text) + 1;
    return 1;
}

/* Records why tag could not be set (reason may be msg->text itself) and returns CM_EIO. */
static int set_failed(uint32_t tag, const char *name, const char *reason, cm__tiff_msg_t *msg)
{
    char why[sizeof msg->text];
    snprintf(why, sizeof why, "%s", reason[0] ? reason : "refused by libtiff");
    if (name)
        snprintf(msg->text, sizeof msg->text, "cannot set tag %.40s (%u): %.180s", name,
                 (unsigned)tag, why);
    else
        snprintf(msg->text, sizeof msg->text, "cannot set tag %u: %.180s", (unsigned)tag, why);
    return CM_EIO;
}

/* Sets tag on out to count elements of the given type at data (for ASCII, a string). */
static int set_value(TIFF *out, uint32_t tag, TIFFDataType type, uint32_t count, const void *data,
                     cm__tiff_msg_t *msg)
{
    const TIFFField *f = TIFFFindField(out, tag, TIFF_ANY);
    if (!f)
        return set_failed(tag, NULL, "unknown to libtiff (cm__tags_register must precede TIFFOpen)",
                          msg);
    const char *name = TIFFFieldName(f);
    if (TIFFFieldDataType(f) != type) {
        char why[64];
        snprintf(why, sizeof why, "the input has type %d, %d expected", (int)type,
                 (int)TIFFFieldDataType(f));
        return set_failed(tag, name, why, msg);
    }
    msg->text[0] = '\0';
    int ok;
    if (TIFFFieldPassCount(f)) {
        if (TIFFFieldWriteCount(f) == TIFF_VARIABLE2)
            ok = TIFFSetField(out, tag, count, data);
        else
            ok = count <= UINT16_MAX && TIFFSetField(out, tag, (int)count, data);
    } else if (type == TIFF_ASCII) {
        ok = TIFFSetField(out, tag, (const char *)data);
    } else {
        return set_failed(tag, name, "not an array or a string", msg);
    }
    if (!ok) return set_failed(tag, name, msg->text, msg);
    return 0;
}

/* ---- copying ---------------------------------------------------------------------------- */

int cm__tags_copy(TIFF *in, TIFF *out, cm__tiff_msg_t *msg)
{
    for (size_t i = 0; i < sizeof copied_tags / sizeof copied_tags[0]; i++) {
        uint32_t tag = copied_tags[i], count;
        TIFFDataType type;
        void *data;
        if (!get_value(in, tag, &type, &count, &data)) continue;
        int rc = set_value(out, tag, type, count, data, msg);
        if (rc < 0) return rc;
    }

    float xres, yres;
    uint16_t unit, orientation;
    msg->text[0] = '\0';
    if (TIFFGetField(in, TIFFTAG_XRESOLUTION, &xres) &&
        !TIFFSetField(out, TIFFTAG_XRESOLUTION, (double)xres))
        return set_failed(TIFFTAG_XRESOLUTION, "XResolution", msg->text, msg);
    if (TIFFGetField(in, TIFFTAG_YRESOLUTION, &yres) &&
        !TIFFSetField(out, TIFFTAG_YRESOLUTION, (double)yres))
        return set_failed(TIFFTAG_YRESOLUTION, "YResolution", msg->text, msg);
    if (TIFFGetField(in, TIFFTAG_RESOLUTIONUNIT, &unit) &&
        !TIFFSetField(out, TIFFTAG_RESOLUTIONUNIT, unit))
        return set_failed(TIFFTAG_RESOLUTIONUNIT, "ResolutionUnit", msg->text, msg);
    if (TIFFGetField(in, TIFFTAG_ORIENTATION, &orientation) &&
        !TIFFSetField(out, TIFFTAG_ORIENTATION, orientation))
        return set_failed(TIFFTAG_ORIENTATION, "Orientation", msg->text, msg);
    return 0;
}

/* ---- NoData ----------------------------------------------------------------------------- */

/* GDAL reads and writes numbers in the C locale whatever the process's locale; so do we. */
int cm__tags_nodata(TIFF *in, double *value)
{
    uint32_t count;
    TIFFDataType type;
    void *data;
    if (!get_value(in, TAG_GDAL_NODATA, &type, &count, &data) || type != TIFF_ASCII) return 0;
    const char *text = data;
    locale_t c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (!c_locale) return 0;
    char *end;
    double v = strtod_l(text, &end, c_locale);
    freelocale(c_locale);
    if (end == text) return 0;
    while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r') end++;
    if (*end) return 0;
    *value = v;
    return 1;
}

int cm__tags_set_nodata(TIFF *out, double value, cm__tiff_msg_t *msg)
{
    char text[40];
    if (isnan(value)) {
        snprintf(text, sizeof text, "nan");
    } else if (isinf(value)) {
        snprintf(text, sizeof text, value > 0 ? "inf" : "-inf");
    } else {
        locale_t c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        if (!c_locale) {
            snprintf(msg->text, sizeof msg->text, "cannot set GDAL_NODATA: out of memory");
            return CM_EIO;
        }
        locale_t previous = uselocale(c_locale);
        snprintf(text, sizeof text, "%.17g", value);
        uselocale(previous);
        freelocale(c_locale);
    }
    return set_value(out, TAG_GDAL_NODATA, TIFF_ASCII, (uint32_t)strlen(text) + 1, text, msg);
}
