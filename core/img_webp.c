/* img_webp: the WebP codec over libwebp.  The probe is WebPGetFeatures,
 * which parses the RIFF, VP8X, VP8 and VP8L headers without decoding; the
 * decoder writes straight into our pixel buffer; encode is lossy at the
 * given quality with libwebp's default (single-threaded, deterministic)
 * settings.  Animated WebP is refused: a sample is one picture. */
#include "img_int.h"

#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>
#include <webp/encode.h>

static bool webp_sniff(const uint8_t *data, size_t size)
{
    return size >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0;
}

static enum vc_status webp_status_err(VP8StatusCode st, struct vc_err *err)
{
    if (st == VP8_STATUS_NOT_ENOUGH_DATA)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_truncated, "webp: file ends early");
    if (st == VP8_STATUS_OUT_OF_MEMORY)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "webp: out of memory");
    if (st == VP8_STATUS_UNSUPPORTED_FEATURE)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_unsupported_format,
                          "webp: unsupported feature");
    return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error, "webp: bad bitstream (status %d)",
                      (int)st);
}

static enum vc_status webp_probe(const uint8_t *data, size_t size, struct img_info *out,
                                 struct vc_err *err)
{
    memset(out, 0, sizeof *out);
    out->format = IMG_FORMAT_WEBP;
    out->orientation = 1;
    WebPBitstreamFeatures f;
    VP8StatusCode st = WebPGetFeatures(data, size, &f);
    if (st != VP8_STATUS_OK)
        return webp_status_err(st, err);
    if (f.has_animation)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_unsupported_format, "webp: animated");
    if (f.width <= 0 || f.height <= 0)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error, "webp: size %dx%d", f.width,
                          f.height);
    out->width = (uint32_t)f.width;
    out->height = (uint32_t)f.height;
    out->has_alpha = f.has_alpha != 0;
    out->channels = out->has_alpha ? 4 : 3;
    return VC_OK;
}

static enum vc_status webp_decode(const uint8_t *data, size_t size, const struct img_info *info,
                                  uint32_t min_side, struct img *out, struct vc_err *err)
{
    memset(out, 0, sizeof *out);
    WebPDecoderConfig cfg;
    if (!WebPInitDecoderConfig(&cfg))
        return vc_err_set(err, VC_EFATAL, VC_REASON_decode_error, "webp: library ABI mismatch");
    uint8_t ch = info->has_alpha ? 4 : 3;
    /* libwebp's scaler works on the rows as they come out of the decoder,
     * so the full-size picture is never held. */
    uint32_t k = img_reduce_factor(info->width, info->height, min_side);
    uint32_t w = (info->width + k - 1) / k, h = (info->height + k - 1) / k;
    enum vc_status rc = img_alloc(out, w, h, ch, err);
    if (rc < 0)
        return rc;
    if (k > 1) {
        cfg.options.use_scaling = 1;
        cfg.options.scaled_width = (int)w;
        cfg.options.scaled_height = (int)h;
    }
    cfg.output.colorspace = ch == 4 ? MODE_RGBA : MODE_RGB;
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = out->pixels;
    cfg.output.u.RGBA.stride = (int)(w * ch);
    cfg.output.u.RGBA.size = (size_t)w * h * ch;
    VP8StatusCode st = WebPDecode(data, size, &cfg);
    if (st == VP8_STATUS_OK &&
        ((uint32_t)cfg.output.width != w || (uint32_t)cfg.output.height != h))
        st = VP8_STATUS_BITSTREAM_ERROR;
    WebPFreeDecBuffer(&cfg.output); /* external memory: frees nothing of ours */
    if (st != VP8_STATUS_OK) {
        img_release(out);
        return webp_status_err(st, err);
    }
    return VC_OK;
}

static enum vc_status webp_encode(const struct img *im, int quality, uint8_t **out,
                                  size_t *out_size, struct vc_err *err)
{
    *out = NULL;
    *out_size = 0;
    uint8_t *buf = NULL;
    int stride = (int)(im->w * im->ch);
    size_t n =
        im->ch == 4
            ? WebPEncodeRGBA(im->pixels, (int)im->w, (int)im->h, stride, (float)quality, &buf)
            : WebPEncodeRGB(im->pixels, (int)im->w, (int)im->h, stride, (float)quality, &buf);
    if (n == 0) {
        WebPFree(buf);
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_encode_error,
                          "webp: cannot encode %ux%u (the format stops at 16383)", im->w, im->h);
    }
    /* Handed out as a malloc block so every codec's output is free()d alike. */
    *out = malloc(n);
    if (!*out) {
        WebPFree(buf);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "webp: %zu bytes", n);
    }
    memcpy(*out, buf, n);
    *out_size = n;
    WebPFree(buf);
    return VC_OK;
}

const struct img_codec_ops img_webp_codec = {
    .format = IMG_FORMAT_WEBP,
    .ext = "webp",
    .sniff = webp_sniff,
    .probe = webp_probe,
    .decode = webp_decode,
    .encode = webp_encode,
};
