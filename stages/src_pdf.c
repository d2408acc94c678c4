/* src_pdf: PDF pages -> samples.  Owns one PopplerDocument per open unit
 * (poppler documents are not shared between threads) and the PNG encoding
 * of a rendered page (cairo's writer). */
#include "src_pdf.h"

#include <cairo.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <poppler.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_buf.h"
#include "core/vc_dl.h"
#include "core/vc_mem.h"
#include "src_util.h"
#include "stage_cfg.h"

/* poppler-glib, cairo and glib, loaded when a spec has a PDF source
 * (vc_dl): cairo's and glib's functions are found through poppler-glib,
 * which depends on them. */
// clang-format off
#define PDF_FNS(X, t)                                                                              \
    X(t, poppler_document_new_from_file) X(t, poppler_document_get_n_pages)                        \
    X(t, poppler_document_get_page) X(t, poppler_page_get_size) X(t, poppler_page_render)          \
    X(t, cairo_image_surface_create) X(t, cairo_surface_status) X(t, cairo_surface_destroy)        \
    X(t, cairo_create) X(t, cairo_set_source_rgb) X(t, cairo_paint) X(t, cairo_scale)              \
    X(t, cairo_destroy) X(t, cairo_surface_write_to_png_stream) X(t, g_filename_to_uri)            \
    X(t, g_free) X(t, g_error_free) X(t, g_object_unref)
// clang-format on
static struct {
    PDF_FNS(VC_DL_MEMBER, )
} pdf_lib;
static const struct vc_dl_fn pdf_fns[] = { PDF_FNS(VC_DL_ENTRY, pdf_lib) };
static struct vc_dl_lib pdf_dl = VC_DL_LIB(VC_SONAME_POPPLER_GLIB, pdf_fns);

/* 72 points per inch: PDF's unit. */
#define PDF_POINTS_PER_INCH 72.0

struct src_pdf {
    struct source_unit *units;
    size_t n;
    double dpi;
    uint64_t first_page, last_page; /* 1-based, inclusive; last 0 = to the end */
    uint64_t max_pixels, max_side, max_entry;
};

struct pdf_cursor {
    const struct src_pdf *src;
    const struct source_unit *u;
    PopplerDocument *doc;
    int page, end, n_pages; /* pages [page, end) are left */
    char stem[200];
    struct vc_buf png;
};

static void pdf_destroy(void *state)
{
    struct src_pdf *p = state;
    if (!p)
        return;
    src_units_free(p->units, p->n);
    free(p);
}

static enum vc_status pdf_create(const cJSON *cfg, const char *where, const struct stage_ctx *ctx,
                                 void **state, struct vc_err *err)
{
    static const char *const keys[] = { SOURCE_COMMON_KEYS, "urls",      "dpi",
                                        "first_page",       "last_page", NULL };
    VC_TRY(stage_cfg_check_keys(cfg, where, keys, err));
    struct src_pdf *p = calloc(1, sizeof *p);
    if (!p)
        return vc_err_oom(err);
    p->max_pixels = ctx->limits->max_pixels;
    p->max_side = ctx->limits->max_side;
    p->max_entry = ctx->limits->max_entry_bytes;
    char **paths = NULL;
    size_t n = 0;
    enum vc_status rc = stage_cfg_double(cfg, where, "dpi", 150, 10, 1200, &p->dpi, err);
    if (rc >= 0)
        rc = stage_cfg_u64(cfg, where, "first_page", 1, 1, INT32_MAX, &p->first_page, err);
    if (rc >= 0)
        rc = stage_cfg_u64(cfg, where, "last_page", 0, 0, INT32_MAX, &p->last_page, err);
    const cJSON *urls = cJSON_GetObjectItemCaseSensitive(cfg, "urls");
    if (rc >= 0 && !urls)
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: key 'urls' is required", where);
    if (rc >= 0)
        rc = src_urls_expand(urls, where, "urls", ctx, &paths, &n, err);
    if (rc >= 0 && !(p->units = calloc(n + 1, sizeof *p->units)))
        rc = vc_err_oom(err);
    for (size_t i = 0; rc >= 0 && i < n; i++) {
        p->units[i].file = paths[i];
        paths[i] = NULL;
        p->n++;
    }
    src_paths_free(paths, n);
    if (rc < 0) {
        pdf_destroy(p);
        return rc;
    }
    *state = p;
    return VC_OK;
}

static const struct source_unit *pdf_units(void *state, size_t *n)
{
    struct src_pdf *p = state;
    *n = p->n;
    return p->units;
}

static void pdf_close(void *cursor)
{
    struct pdf_cursor *c = cursor;
    if (!c)
        return;
    if (c->doc)
        pdf_lib.g_object_unref(c->doc);
    vc_buf_free(&c->png);
    free(c);
}

static uint64_t pdf_n_samples(void *cursor)
{
    const struct pdf_cursor *c = cursor;
    return c->end > c->page ? (uint64_t)(c->end - c->page) : 0;
}

static enum vc_status pdf_open(void *state, const struct source_unit *u, void **cursor,
                               struct vc_err *err)
{
    VC_TRY(vc_dl_load(&pdf_dl, err));
    const struct src_pdf *p = state;
    struct pdf_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return vc_err_oom(err);
    c->src = p;
    c->u = u;
    vc_buf_init(&c->png, (size_t)p->max_entry);
    const char *base = strrchr(u->file, '/');
    base = base ? base + 1 : u->file;
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    char name[sizeof c->stem]; /* the stem alone: sanitising may not cut it short */
    snprintf(name, sizeof name, "%.*s", (int)len, base);
    sample_key_sanitize(name, c->stem, sizeof c->stem);
    char *abs = realpath(u->file, NULL);
    GError *gerr = NULL;
    char *uri = abs ? pdf_lib.g_filename_to_uri(abs, NULL, &gerr) : NULL;
    free(abs);
    if (uri)
        c->doc = pdf_lib.poppler_document_new_from_file(uri, NULL, &gerr);
    pdf_lib.g_free(uri);
    if (!c->doc) {
        vc_err_set(err, VC_ESHARD, VC_REASON_corrupt_archive, "%s: not a readable PDF: %s", u->file,
                   gerr ? gerr->message : "cannot open");
        if (gerr)
            pdf_lib.g_error_free(gerr);
        pdf_close(c);
        return VC_ESHARD;
    }
    c->n_pages = pdf_lib.poppler_document_get_n_pages(c->doc);
    c->page = (int)p->first_page - 1;
    c->end = p->last_page && p->last_page < (uint64_t)c->n_pages ? (int)p->last_page : c->n_pages;
    *cursor = c;
    return VC_OK;
}

static cairo_status_t png_sink(void *closure, const unsigned char *data, unsigned int length)
{
    return vc_buf_append(closure, data, length) < 0 ? CAIRO_STATUS_WRITE_ERROR
                                                    : CAIRO_STATUS_SUCCESS;
}

/* Renders page c->page into c->png. */
static enum vc_status render(struct pdf_cursor *c, PopplerPage *page, double w_pt, double h_pt,
                             struct vc_err *err)
{
    const double scale = c->src->dpi / PDF_POINTS_PER_INCH;
    /* Multiplied before dividing: 792 pt at 150 dpi is 1650 px exactly,
     * where 792 * (150 / 72) rounds to 1650.0000000000002 and ceil would
     * add a blank row. */
    const double w = ceil(w_pt * c->src->dpi / PDF_POINTS_PER_INCH);
    const double h = ceil(h_pt * c->src->dpi / PDF_POINTS_PER_INCH);
    if (!(w >= 1 && h >= 1) || w > (double)c->src->max_side || h > (double)c->src->max_side ||
        w * h > (double)c->src->max_pixels)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_image_too_large,
                          "page %d of %.0fx%.0f pt at %g dpi exceeds the limits (side %llu, "
                          "%llu pixels)",
                          c->page + 1, w_pt, h_pt, c->src->dpi,
                          (unsigned long long)c->src->max_side,
                          (unsigned long long)c->src->max_pixels);
    cairo_surface_t *surf = pdf_lib.cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)w, (int)h);
    if (pdf_lib.cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS) {
        pdf_lib.cairo_surface_destroy(surf);
        return vc_err_oom(err);
    }
    cairo_t *cr = pdf_lib.cairo_create(surf);
    pdf_lib.cairo_set_source_rgb(cr, 1, 1, 1);
    pdf_lib.cairo_paint(cr);
    pdf_lib.cairo_scale(cr, scale, scale);
    pdf_lib.poppler_page_render(page, cr);
    pdf_lib.cairo_destroy(cr);
    c->png.len = 0;
    cairo_status_t st = pdf_lib.cairo_surface_write_to_png_stream(surf, png_sink, &c->png);
    pdf_lib.cairo_surface_destroy(surf);
    if (st != CAIRO_STATUS_SUCCESS)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_entry_too_large,
                          "page %d: the PNG exceeds %zu bytes", c->page + 1, c->png.max);
    return VC_OK;
}

static enum vc_status pdf_next(void *cursor, struct sample *s, struct vc_err *err)
{
    struct pdf_cursor *c = cursor;
    if (c->page >= c->end)
        return VC_EOF;
    char key[224];
    snprintf(key, sizeof key, "%s_p%04d", c->stem, c->page + 1);
    s->orig_key = arena_strdup(s->arena, key);
    s->src_index = (uint64_t)c->page;
    PopplerPage *page = pdf_lib.poppler_document_get_page(c->doc, c->page);
    double w_pt = 0, h_pt = 0;
    enum vc_status rc = VC_OK;
    if (!page)
        rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error, "page %d cannot be read",
                        c->page + 1);
    else
        pdf_lib.poppler_page_get_size(page, &w_pt, &h_pt);
    if (rc >= 0)
        rc = render(c, page, w_pt, h_pt, err);
    if (page)
        pdf_lib.g_object_unref(page);
    if (rc >= 0)
        rc = sample_add_field(s, "png", c->png.data, c->png.len, err);
    if (rc >= 0) {
        const char *base = strrchr(c->u->file, '/');
        cJSON *js = cJSON_CreateObject();
        char *text = NULL;
        if (js && cJSON_AddStringToObject(js, "pdf", base ? base + 1 : c->u->file) &&
            cJSON_AddNumberToObject(js, "page", c->page + 1) &&
            cJSON_AddNumberToObject(js, "pages", c->n_pages) &&
            cJSON_AddNumberToObject(js, "dpi", c->src->dpi) &&
            cJSON_AddNumberToObject(js, "width_pt", w_pt) &&
            cJSON_AddNumberToObject(js, "height_pt", h_pt))
            text = cJSON_PrintUnformatted(js);
        cJSON_Delete(js);
        rc = text ? sample_add_field(s, "json", text, strlen(text), err) : vc_err_oom(err);
        free(text);
    }
    c->page++;
    return rc;
}

const struct source_ops src_pdf_ops = {
    .name = "pdf",
    .create = pdf_create,
    .units = pdf_units,
    .open = pdf_open,
    .next = pdf_next,
    .close = pdf_close,
    .n_samples = pdf_n_samples,
    .destroy = pdf_destroy,
};
