/* img_png: the PNG codec over libpng's classic API.  The probe reads IHDR
 * and walks chunk headers up to the first IDAT (for tRNS) without
 * inflating anything; decode checks every chunk CRC, reads the zlib stream
 * to its end, and expands every PNG flavour (palette, gray,
 * 1..16 bits, tRNS, Adam7) to 8-bit RGB or RGBA; encode writes level-6
 * zlib with no time chunk, so equal pixels give equal bytes.
 *
 * libpng reports errors by longjmp: each setjmp lives in a function whose
 * changing state sits behind a pointer argument, never in its own locals,
 * and no libpng error ever reaches stderr or exit(). */
#include "img_int.h"

#include "vc_mem.h"

#include <png.h>
#include <zlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t png_signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n' };

static bool png_sniff(const uint8_t *data, size_t size)
{
    return size >= 8 && memcmp(data, png_signature, 8) == 0;
}

static bool png_depth_ok(unsigned ctype, unsigned depth)
{
    switch (ctype) {
    case 0:
        return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
    case 3:
        return depth == 1 || depth == 2 || depth == 4 || depth == 8;
    case 2:
    case 4:
    case 6:
        return depth == 8 || depth == 16;
    default:
        return false;
    }
}

/* Colour-key transparency applies to palette and gray images only: a
 * truecolour PNG stays RGB, because transformers' convert_to_rgb returns an
 * RGB image untouched (SPEC 4.1) and Pillow keeps the key in info only. */
static bool png_trns_applies(unsigned ctype)
{
    return ctype == 0 || ctype == 3;
}

static enum vc_status png_probe(const uint8_t *data, size_t size, struct img_info *out,
                                struct vc_err *err)
{
    memset(out, 0, sizeof *out);
    out->format = IMG_FORMAT_PNG;
    out->orientation = 1;
    if (size < 33) /* signature, IHDR length/type/13 bytes/CRC */
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_truncated, "png: %zu-byte file", size);
    if (img_be32(data + 8) != 13 || memcmp(data + 12, "IHDR", 4) != 0)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error, "png: no IHDR first");
    const uint8_t *ihdr = data + 16;
    uint32_t w = img_be32(ihdr), h = img_be32(ihdr + 4);
    unsigned depth = ihdr[8], ctype = ihdr[9];
    if (w == 0 || h == 0 || w > 0x7FFFFFFFu || h > 0x7FFFFFFFu)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error, "png: size %ux%u", w, h);
    if (!png_depth_ok(ctype, depth))
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error,
                          "png: colour type %u with %u bits", ctype, depth);
    if (ihdr[10] != 0 || ihdr[11] != 0 || ihdr[12] > 1)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error,
                          "png: unknown compression, filter or interlace method");
    static const uint8_t channels[7] = { 1, 0, 3, 3, 2, 0, 4 };
    out->width = w;
    out->height = h;
    out->channels = channels[ctype];
    out->has_alpha = ctype == 4 || ctype == 6;
    /* tRNS must precede IDAT; chunk headers are walked, never inflated. */
    size_t pos = 33;
    for (;;) {
        if (size - pos < 8)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_truncated, "png: no image data");
        uint32_t len = img_be32(data + pos);
        const uint8_t *type = data + pos + 4;
        if (memcmp(type, "IDAT", 4) == 0)
            return VC_OK;
        if (memcmp(type, "IEND", 4) == 0)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error, "png: no image data");
        if (memcmp(type, "tRNS", 4) == 0 && png_trns_applies(ctype))
            out->has_alpha = true;
        if (len > 0x7FFFFFFFu || size - pos - 8 < (size_t)len + 4)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_truncated, "png: chunk past the end");
        pos += 12 + (size_t)len;
    }
}

/* Every chunk's CRC, up to IEND or the end of the file, which must fall
 * on a chunk boundary.  libpng checks a chunk's CRC only once it has
 * finished with the chunk, so the last IDAT of a picture it stops reading
 * after the last row would go unchecked, and ancillary chunks only warn. */
static enum vc_status png_check_crcs(const uint8_t *data, size_t size, struct vc_err *err)
{
    size_t pos = 8;
    while (pos < size) {
        if (size - pos < 12)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_truncated, "png: chunk cut at %zu", pos);
        uint32_t len = img_be32(data + pos);
        if (len > 0x7FFFFFFFu || size - pos - 12 < len)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_truncated,
                              "png: chunk at %zu ends past the file", pos);
        uLong crc = crc32(0L, data + pos + 4, (uInt)len + 4);
        if (crc != img_be32(data + pos + 8 + len))
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error,
                              "png: CRC mismatch in chunk '%.4s' at offset %zu",
                              (const char *)data + pos + 4, pos);
        if (memcmp(data + pos + 4, "IEND", 4) == 0)
            break;
        pos += 12 + (size_t)len;
    }
    return VC_OK;
}

/* State that outlives a longjmp: reached through a pointer, so none of it
 * is an automatic variable of the function that called setjmp. */
struct png_job {
    const uint8_t *data;
    size_t size, pos;
    bool truncated;
    uint8_t *buf; /* encode: output, owned until handed to the caller */
    size_t buf_cap;
    uint8_t **rows;
    uint8_t *row;  /* reduced decode: one source row */
    uint64_t *acc; /* reduced decode: one output row of block sums */
    bool rows_done;
    bool idat_warning;
    char msg[200];
};

static void png_on_error(png_structp png, png_const_charp msg)
{
    struct png_job *job = png_get_error_ptr(png);
    snprintf(job->msg, sizeof job->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings (sRGB profiles, odd text chunks) do not fail a decode, except
 * those about the image data: libpng reports a broken zlib stream found
 * after the last row ("IDAT: incorrect data check", "IDAT: Extra
 * compressed data") as a benign error, that is a warning, yet the file is
 * corrupt. */
static void png_on_warning(png_structp png, png_const_charp msg)
{
    struct png_job *job = png_get_error_ptr(png);
    if (!job->idat_warning && strncmp(msg, "IDAT", 4) == 0) {
        job->idat_warning = true;
        snprintf(job->msg, sizeof job->msg, "%s", msg);
    }
}

static void png_read_mem(png_structp png, png_bytep dst, size_t n)
{
    struct png_job *job = png_get_io_ptr(png);
    if (n > job->size - job->pos) {
        job->truncated = true;
        png_error(png, "file ends early");
    }
    memcpy(dst, job->data + job->pos, n);
    job->pos += n;
}

/* Non-interlaced rows streamed one at a time into k x k block averages:
 * memory is one source row and one row of sums, whatever the height. */
static void png_read_reduced(png_structp png, struct png_job *job, uint32_t w, uint32_t h,
                             uint32_t k, struct img *out)
{
    size_t ch = out->ch, ow = out->w;
    for (uint32_t y = 0; y < h; y++) {
        png_read_row(png, job->row, NULL);
        for (uint32_t x = 0; x < w; x++)
            for (size_t c = 0; c < ch; c++)
                job->acc[(size_t)(x / k) * ch + c] += job->row[(size_t)x * ch + c];
        if ((y + 1) % k != 0 && y + 1 != h)
            continue;
        uint32_t ny = y % k + 1;
        uint8_t *dst = out->pixels + (size_t)(y / k) * ow * ch;
        for (size_t ox = 0; ox < ow; ox++) {
            uint32_t nx = w - (uint32_t)ox * k < k ? w - (uint32_t)ox * k : k;
            uint64_t n = (uint64_t)nx * ny;
            for (size_t c = 0; c < ch; c++) {
                dst[ox * ch + c] = (uint8_t)((job->acc[ox * ch + c] + n / 2) / n);
                job->acc[ox * ch + c] = 0;
            }
        }
    }
}

static enum vc_status png_decode_run(png_structp png, png_infop pinfo, struct png_job *job,
                                     const struct img_info *info, uint32_t min_side,
                                     struct img *out, struct vc_err *err)
{
    if (setjmp(png_jmpbuf(png))) {
        /* Without IEND the pixels are complete: Pillow accepts such a
         * file, and png_check_crcs has seen every chunk end whole. */
        if (job->rows_done && job->truncated && !job->idat_warning)
            return VC_OK;
        return vc_err_set(err, VC_ESAMPLE,
                          job->truncated ? VC_REASON_truncated : VC_REASON_decode_error, "png: %s",
                          job->msg);
    }
    png_set_read_fn(png, job, png_read_mem);
    png_read_info(png, pinfo);
    png_uint_32 w, h;
    int depth, ctype;
    png_get_IHDR(png, pinfo, &w, &h, &depth, &ctype, NULL, NULL, NULL);
    if (w != info->width || h != info->height)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error,
                          "png: header says %ux%u, libpng reads %ux%u", info->width, info->height,
                          (unsigned)w, (unsigned)h);
    /* Pillow keeps the high byte of 16-bit samples for RGB(A) and LA; so
     * does strip_16 (16-bit gray, which Pillow clips as mode I, follows the
     * same rule here instead). */
    if (depth == 16)
        png_set_strip_16(png);
    if (ctype == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    bool trns = png_trns_applies((unsigned)ctype) && png_get_valid(png, pinfo, PNG_INFO_tRNS);
    if (trns)
        png_set_tRNS_to_alpha(png);
    else if (info->has_alpha && !(ctype & PNG_COLOR_MASK_ALPHA))
        png_set_add_alpha(png, 0xFF, PNG_FILLER_AFTER); /* a tRNS libpng discarded as invalid */
    if (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, pinfo);
    uint8_t ch = png_get_channels(png, pinfo);
    if (ch != (info->has_alpha ? 4 : 3) || png_get_bit_depth(png, pinfo) != 8 ||
        png_get_rowbytes(png, pinfo) != (size_t)w * ch)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error,
                          "png: unexpected layout after expansion (%u channels)", ch);
    uint32_t k = img_reduce_factor(w, h, min_side);
    bool interlaced = png_get_interlace_type(png, pinfo) != PNG_INTERLACE_NONE;
    if (k > 1 && !interlaced) {
        enum vc_status rc = img_alloc(out, (w + k - 1) / k, (h + k - 1) / k, ch, err);
        if (rc < 0)
            return rc;
        job->row = vc_malloc_array(w, ch);
        job->acc = calloc((size_t)out->w * ch, sizeof *job->acc);
        if (!job->row || !job->acc)
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "png: %u-pixel row",
                              (unsigned)w);
        png_read_reduced(png, job, w, h, k, out);
    } else {
        enum vc_status rc = img_alloc(out, w, h, ch, err);
        if (rc < 0)
            return rc;
        job->rows = vc_malloc_array(h, sizeof *job->rows);
        if (!job->rows)
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "png: %u row pointers",
                              (unsigned)h);
        for (png_uint_32 y = 0; y < h; y++)
            job->rows[y] = out->pixels + (size_t)y * w * ch;
        png_read_image(png, job->rows);
    }
    /* The end of the zlib stream and the chunks after the last row are
     * read too: "too much image data" or a broken stream there is a
     * corrupt file, even though the rows came out whole. */
    job->rows_done = true;
    png_read_end(png, NULL);
    if (job->idat_warning)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error, "png: %s", job->msg);
    return VC_OK;
}

static enum vc_status png_decode(const uint8_t *data, size_t size, const struct img_info *info,
                                 uint32_t min_side, struct img *out, struct vc_err *err)
{
    memset(out, 0, sizeof *out);
    VC_TRY(png_check_crcs(data, size, err));
    struct png_job job = { .data = data, .size = size };
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, png_on_error, png_on_warning);
    png_infop pinfo = png ? png_create_info_struct(png) : NULL;
    if (!pinfo) {
        png_destroy_read_struct(&png, NULL, NULL);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "png: no reader");
    }
    enum vc_status rc = png_decode_run(png, pinfo, &job, info, min_side, out, err);
    png_destroy_read_struct(&png, &pinfo, NULL);
    free(job.rows);
    free(job.row);
    free(job.acc);
    uint32_t k = img_reduce_factor(info->width, info->height, min_side);
    if (rc == VC_OK && k > 1 && out->w == info->width) { /* interlaced: reduce afterwards */
        struct img small;
        rc = img_box_reduce(out, k, &small, err);
        img_release(out);
        if (rc == VC_OK)
            *out = small;
    }
    if (rc < 0)
        img_release(out);
    return rc;
}

static void png_write_mem(png_structp png, png_bytep src, size_t n)
{
    struct png_job *job = png_get_io_ptr(png);
    if (n > job->buf_cap - job->pos) {
        size_t cap = job->buf_cap ? job->buf_cap : 4096;
        while (cap - job->pos < n)
            if (!vc_mul_ok(cap, 2, &cap))
                png_error(png, "output too large");
        uint8_t *grown = realloc(job->buf, cap);
        if (!grown)
            png_error(png, "out of memory");
        job->buf = grown;
        job->buf_cap = cap;
    }
    memcpy(job->buf + job->pos, src, n);
    job->pos += n;
}

static void png_flush_mem(png_structp png)
{
    (void)png; /* memory needs no flush */
}

static enum vc_status png_encode_run(png_structp png, png_infop pinfo, struct png_job *job,
                                     const struct img *im, struct vc_err *err)
{
    if (setjmp(png_jmpbuf(png)))
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_encode_error, "png: %s", job->msg);
    png_set_write_fn(png, job, png_write_mem, png_flush_mem);
    png_set_compression_level(png, 6);
    png_set_IHDR(png, pinfo, im->w, im->h, 8,
                 im->ch == 4 ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, pinfo);
    for (uint32_t y = 0; y < im->h; y++)
        png_write_row(png, im->pixels + (size_t)y * im->w * im->ch);
    png_write_end(png, NULL);
    return VC_OK;
}

static enum vc_status png_encode(const struct img *im, int quality, uint8_t **out, size_t *out_size,
                                 struct vc_err *err)
{
    (void)quality; /* lossless: the compression level is fixed at 6 */
    *out = NULL;
    *out_size = 0;
    struct png_job job = { 0 };
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, &job, png_on_error, png_on_warning);
    png_infop pinfo = png ? png_create_info_struct(png) : NULL;
    if (!pinfo) {
        png_destroy_write_struct(&png, NULL);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "png: no writer");
    }
    enum vc_status rc = png_encode_run(png, pinfo, &job, im, err);
    png_destroy_write_struct(&png, &pinfo);
    if (rc < 0) {
        free(job.buf);
        return rc;
    }
    *out = job.buf;
    *out_size = job.pos;
    return VC_OK;
}

const struct img_codec_ops img_png_codec = {
    .format = IMG_FORMAT_PNG,
    .ext = "png",
    .sniff = png_sniff,
    .probe = png_probe,
    .decode = png_decode,
    .encode = png_encode,
};
