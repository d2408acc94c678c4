/* img_jpeg: the JPEG codec.  The probe is a hand-written marker scan (SOFn
 * for the size, the first EXIF APP1 for orientation) that reads headers
 * only and bounds-checks every offset; decode and encode go through
 * TurboJPEG, whose error strings become struct vc_err.
 *
 * Decoding may be DCT-scaled (img_decode_reduced): libjpeg-turbo then
 * skips most of the inverse DCT but still decodes every entropy-coded
 * byte, so a reduced decode checks the whole file.
 *
 * Never trusts a length field: every segment is checked against the buffer
 * before it is read.  The scan stops at the first SOS, so its cost is
 * bounded by the header size, not the image size. */
#include "img_int.h"

#include "vc_mem.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

static bool jpeg_sniff(const uint8_t *data, size_t size)
{
    return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

/* Orientation from a TIFF structure (the EXIF payload after "Exif\0\0");
 * 1 when absent or malformed, as Pillow's exif_transpose does nothing then. */
static uint8_t jpeg_exif_orientation(const uint8_t *p, size_t n)
{
    if (n < 8)
        return 1;
    bool le;
    if (p[0] == 'I' && p[1] == 'I')
        le = true;
    else if (p[0] == 'M' && p[1] == 'M')
        le = false;
    else
        return 1;
    uint32_t (*rd16)(const uint8_t *) = le ? img_le16 : img_be16;
    uint32_t (*rd32)(const uint8_t *) = le ? img_le32 : img_be32;
    if (rd16(p + 2) != 42)
        return 1;
    uint32_t ifd = rd32(p + 4);
    if (ifd > n - 2)
        return 1;
    uint32_t count = rd16(p + ifd);
    for (uint32_t i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)12 * i;
        if (e + 12 > n)
            break;
        if (rd16(p + e) != 0x0112)
            continue;
        uint32_t type = rd16(p + e + 2), v;
        if (type == 3) /* SHORT, the type the standard prescribes */
            v = rd16(p + e + 8);
        else if (type == 4) /* LONG, written by some tools */
            v = rd32(p + e + 8);
        else
            return 1;
        return v >= 1 && v <= 8 ? (uint8_t)v : 1;
    }
    return 1;
}

/* SOF0..SOF15 minus DHT (C4), JPG (C8) and DAC (CC). */
static bool jpeg_is_sof(uint8_t m)
{
    return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

static enum vc_status jpeg_probe(const uint8_t *data, size_t size, struct img_info *out,
                                 struct vc_err *err)
{
    bool have_sof = false, have_exif = false;
    memset(out, 0, sizeof *out);
    out->format = IMG_FORMAT_JPEG;
    out->orientation = 1;
    size_t pos = 2;
    for (;;) {
        if (pos >= size)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_truncated, "jpeg: header ends early");
        if (data[pos] != 0xFF)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error,
                              "jpeg: no marker at offset %zu", pos);
        while (pos < size && data[pos] == 0xFF) /* fill bytes */
            pos++;
        if (pos >= size)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_truncated, "jpeg: header ends early");
        uint8_t m = data[pos++];
        if (m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) /* no length field */
            continue;
        if (m == 0x00 || m == 0xD9)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error,
                              "jpeg: marker 0x%02X before any image", m);
        if (size - pos < 2)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_truncated, "jpeg: header ends early");
        size_t len = img_be16(data + pos);
        if (len < 2)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error, "jpeg: segment length %zu",
                              len);
        if (size - pos < len)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_truncated,
                              "jpeg: segment 0x%02X ends past the file", m);
        const uint8_t *seg = data + pos + 2;
        size_t seg_len = len - 2;
        if (m == 0xDA) {
            if (!have_sof)
                return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error,
                                  "jpeg: scan before frame header");
            return VC_OK;
        }
        if (m == 0xE1 && !have_exif && seg_len >= 6 && memcmp(seg, "Exif\0\0", 6) == 0) {
            /* The first EXIF block wins, as in Pillow. */
            have_exif = true;
            out->orientation = jpeg_exif_orientation(seg + 6, seg_len - 6);
        }
        if (jpeg_is_sof(m) && !have_sof) {
            if (seg_len < 6)
                return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error,
                                  "jpeg: short frame header");
            /* Baseline, extended and progressive, Huffman or arithmetic:
             * what libjpeg-turbo 2.1 decodes.  Lossless and hierarchical
             * frames it cannot. */
            if (m == 0xC3 || m == 0xC5 || m == 0xC6 || m == 0xC7 || m >= 0xCB)
                return vc_err_set(err, VC_ESAMPLE, VC_REASON_unsupported_format,
                                  "jpeg: unsupported frame type SOF%d", m - 0xC0);
            if (seg[0] != 8)
                return vc_err_set(err, VC_ESAMPLE, VC_REASON_unsupported_format,
                                  "jpeg: %d-bit samples", seg[0]);
            out->height = img_be16(seg + 1);
            out->width = img_be16(seg + 3);
            uint8_t n_comp = seg[5];
            if (out->width == 0 || out->height == 0)
                return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error,
                                  "jpeg: empty frame %ux%u", out->width, out->height);
            if (n_comp != 1 && n_comp != 3 && n_comp != 4)
                return vc_err_set(err, VC_ESAMPLE, VC_REASON_unsupported_format,
                                  "jpeg: %d components", n_comp);
            out->channels = n_comp; /* 4 is CMYK: no alpha in JPEG */
            have_sof = true;
        }
        pos += len;
    }
}

/* Whether the entropy-coded data after the first SOS reaches an EOI
 * marker.  TurboJPEG keeps only the text of the first warning, so a
 * truncated file cannot be told from a benign warning by the message; the
 * file structure can. */
static bool jpeg_has_eoi(const uint8_t *data, size_t size)
{
    size_t pos = 2;
    bool in_scan = false;
    while (pos + 1 < size) {
        const uint8_t *ff = memchr(data + pos, 0xFF, size - pos - 1);
        if (!ff)
            return false;
        pos = (size_t)(ff - data) + 1;
        uint8_t m = data[pos];
        if (m == 0xFF) /* fill byte: the marker is further on */
            continue;
        pos++;
        if (m == 0x00 || (m >= 0xD0 && m <= 0xD7) || m == 0x01 || m == 0xD8)
            continue; /* stuffed byte, restart marker: no length */
        if (m == 0xD9)
            return in_scan;
        if (size - pos < 2)
            return false;
        size_t len = img_be16(data + pos);
        if (len < 2)
            return false;
        /* Entropy data may sit after a SOS header; it is skipped byte by
         * byte by the memchr above, segments are skipped by length. */
        if (m == 0xDA)
            in_scan = true;
        pos += len;
    }
    return false;
}

/* Pillow reads 4-component JPEGs as Adobe-inverted CMYK ("CMYK;I") and
 * converts with cmyk2rgb: R = nk - nk * C / 255 (rounded), nk = 255 - K. */
static void jpeg_cmyk_to_rgb(const uint8_t *cmyk, uint8_t *rgb, size_t n_px)
{
    for (size_t i = 0; i < n_px; i++) {
        uint32_t nk = cmyk[4 * i + 3];
        for (int c = 0; c < 3; c++) {
            uint32_t t = (255u - cmyk[4 * i + c]) * nk + 128;
            uint32_t v = nk - (((t >> 8) + t) >> 8);
            rgb[3 * i + c] = (uint8_t)v;
        }
    }
}

/* The one libjpeg-turbo warning after which the picture is still whole:
 * bytes between the last scan and EOI, which some cameras pad with.  Any
 * other warning (a scan cut short, a bad Huffman code, a resync) means
 * libjpeg filled pixels it never read.  TurboJPEG keeps only the first
 * warning, and nothing can follow EOI, so this one cannot hide another. */
static bool jpeg_warning_benign(const char *msg)
{
    return strstr(msg, "extraneous bytes before marker 0xd9") != NULL;
}

/* The smallest TurboJPEG scaling factor (<= 1) that keeps both sides at
 * least min_side; 1/1 when min_side is 0. */
static tjscalingfactor jpeg_pick_scale(int w, int h, uint32_t min_side)
{
    tjscalingfactor best = { 1, 1 };
    int n = 0;
    const tjscalingfactor *f = min_side ? tjGetScalingFactors(&n) : NULL;
    for (int i = 0; f && i < n; i++) {
        if (f[i].num > f[i].denom || f[i].num * best.denom >= best.num * f[i].denom)
            continue;
        if ((uint32_t)TJSCALED(w, f[i]) >= min_side && (uint32_t)TJSCALED(h, f[i]) >= min_side)
            best = f[i];
    }
    return best;
}

/* A decompressor with the header read and checked against the probe's
 * size; *cs is the colour space.  On failure nothing is left to free. */
static enum vc_status jpeg_begin(const uint8_t *data, size_t size, const struct img_info *info,
                                 tjhandle *tj_out, int *cs, struct vc_err *err)
{
    *tj_out = NULL;
    if (size > (size_t)ULONG_MAX)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_image_too_large, "jpeg: file too large");
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "jpeg: %s",
                          tjGetErrorStr2(NULL));
    int w, h, subsamp;
    enum vc_status rc = VC_OK;
    if (tjDecompressHeader3(tj, data, (unsigned long)size, &w, &h, &subsamp, cs) != 0)
        rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error, "jpeg: %s", tjGetErrorStr2(tj));
    else if ((uint32_t)w != info->width || (uint32_t)h != info->height)
        rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error,
                        "jpeg: header says %ux%u, decoder reads %dx%d", info->width, info->height,
                        w, h);
    if (rc != VC_OK) {
        tjDestroy(tj);
        return rc;
    }
    *tj_out = tj;
    return VC_OK;
}

/* tjDecompress2 into dst (w x h of pixel format pf, a TurboJPEG scaled
 * size).  Any error or warning fails, except the benign padding warning:
 * libjpeg fills what it could not read with grey and only warns. */
static enum vc_status jpeg_run(tjhandle tj, const uint8_t *data, size_t size, uint8_t *dst, int w,
                               int h, int pf, struct vc_err *err)
{
    if (tjDecompress2(tj, data, (unsigned long)size, dst, w, 0, h, pf, 0) == 0)
        return VC_OK;
    const char *msg = tjGetErrorStr2(tj);
    if (tjGetErrorCode(tj) == TJERR_WARNING && jpeg_warning_benign(msg))
        return VC_OK;
    /* Without EOI the data ran out; "premature end" is a scan cut short
     * and closed by a marker, often an EOI glued on. */
    bool truncated = !jpeg_has_eoi(data, size) || strstr(msg, "premature end");
    return vc_err_set(err, VC_ESAMPLE, truncated ? VC_REASON_truncated : VC_REASON_decode_error,
                      "jpeg: %s", msg);
}

static enum vc_status jpeg_decode(const uint8_t *data, size_t size, const struct img_info *info,
                                  uint32_t min_side, struct img *out, struct vc_err *err)
{
    memset(out, 0, sizeof *out);
    tjhandle tj;
    int cs, w = (int)info->width, h = (int)info->height;
    VC_TRY(jpeg_begin(data, size, info, &tj, &cs, err));
    uint8_t *cmyk = NULL;
    tjscalingfactor sf = jpeg_pick_scale(w, h, min_side);
    int sw = TJSCALED(w, sf), sh = TJSCALED(h, sf);
    enum vc_status rc = img_alloc(out, (uint32_t)sw, (uint32_t)sh, 3, err);
    if (rc < 0)
        goto done;
    bool is_cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    uint8_t *dst = out->pixels;
    if (is_cmyk) {
        cmyk = vc_malloc_array((size_t)sw * (size_t)sh, 4);
        if (!cmyk) {
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "jpeg: %dx%d CMYK", sw, sh);
            goto done;
        }
        dst = cmyk;
    }
    rc = jpeg_run(tj, data, size, dst, sw, sh, is_cmyk ? TJPF_CMYK : TJPF_RGB, err);
    if (rc == VC_OK && is_cmyk)
        jpeg_cmyk_to_rgb(cmyk, out->pixels, (size_t)sw * (size_t)sh);
done:
    free(cmyk);
    tjDestroy(tj);
    if (rc < 0)
        img_release(out);
    return rc;
}

enum vc_status img_jpeg_decode_luma(const uint8_t *data, size_t size, const struct img_info *info,
                                    uint32_t min_side, struct img *out, struct vc_err *err)
{
    memset(out, 0, sizeof *out);
    tjhandle tj;
    int cs, w = (int)info->width, h = (int)info->height, n_sf = 0;
    VC_TRY(jpeg_begin(data, size, info, &tj, &cs, err));
    if (cs == TJCS_CMYK || cs == TJCS_YCCK) {
        tjDestroy(tj);
        return VC_EOF;
    }
    /* The factors come largest first (2/1 .. 1/8): keep the smallest that
     * still covers min_side, never enlarging. */
    tjscalingfactor *sf = tjGetScalingFactors(&n_sf), best = { 1, 1 };
    for (int i = 0; sf && i < n_sf; i++) {
        if (sf[i].num > sf[i].denom)
            continue;
        int sw = TJSCALED(w, sf[i]), sh = TJSCALED(h, sf[i]);
        if ((uint32_t)sw >= min_side && (uint32_t)sh >= min_side &&
            (uint64_t)sf[i].num * best.denom < (uint64_t)best.num * sf[i].denom)
            best = sf[i];
    }
    int sw = TJSCALED(w, best), sh = TJSCALED(h, best);
    enum vc_status rc = img_alloc(out, (uint32_t)sw, (uint32_t)sh, 1, err);
    if (rc == VC_OK)
        rc = jpeg_run(tj, data, size, out->pixels, sw, sh, TJPF_GRAY, err);
    tjDestroy(tj);
    if (rc < 0)
        img_release(out);
    return rc;
}

static enum vc_status jpeg_encode(const struct img *im, int quality, uint8_t **out,
                                  size_t *out_size, struct vc_err *err)
{
    *out = NULL;
    *out_size = 0;
    /* JPEG has no alpha: flatten over white the way decode does. */
    struct img flat = { 0 };
    const uint8_t *src = im->pixels;
    if (im->ch == 4) {
        enum vc_status rc = img_alloc(&flat, im->w, im->h, 3, err);
        if (rc < 0)
            return rc;
        img_flatten_white(im->pixels, flat.pixels, (size_t)im->w * im->h);
        src = flat.pixels;
    }
    enum vc_status rc = VC_OK;
    tjhandle tj = tjInitCompress();
    unsigned char *buf = NULL;
    unsigned long n = 0;
    if (!tj) {
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "jpeg: %s", tjGetErrorStr2(NULL));
        goto done;
    }
    /* 4:2:0 is what cv2.imencode (img2dataset) and Pillow write by default. */
    if (tjCompress2(tj, src, (int)im->w, 0, (int)im->h, TJPF_RGB, &buf, &n, TJSAMP_420, quality,
                    0) != 0) {
        rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_encode_error, "jpeg: %s", tjGetErrorStr2(tj));
        goto done;
    }
    *out = malloc(n);
    if (!*out) {
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "jpeg: %lu bytes", n);
        goto done;
    }
    memcpy(*out, buf, n);
    *out_size = n;
done:
    tjFree(buf);
    if (tj)
        tjDestroy(tj);
    img_release(&flat);
    return rc;
}

const struct img_codec_ops img_jpeg_codec = {
    .format = IMG_FORMAT_JPEG,
    .ext = "jpg",
    .sniff = jpeg_sniff,
    .probe = jpeg_probe,
    .decode = jpeg_decode,
    .encode = jpeg_encode,
};
