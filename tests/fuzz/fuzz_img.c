/* Fuzz target for core/img: any bytes through probe, decode (RGB and RGBA,
 * with and without orientation) and a small resize.  Beyond "no crash, no
 * sanitizer report" it checks the contract: a decode succeeds only where
 * the probe does, within the limits, with the probed size (axes swapped for
 * EXIF orientations 5..8) and the promised channel count.  Limits are small
 * so no input can make a run allocate much. */
#include "core/img.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
    if (!cond)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct img_limits lim = { 1u << 20, 2048 };
    struct img_info info;
    struct vc_err err;
    enum vc_status probed = img_probe(data, size, &lim, &info, &err);
    require(probed == VC_OK || probed == VC_ESAMPLE);
    if (probed == VC_OK) {
        require(info.format == img_sniff(data, size));
        require(info.width >= 1 && info.width <= 2048 && info.height >= 1 && info.height <= 2048 &&
                (uint64_t)info.width * info.height <= lim.max_pixels);
        require(info.orientation >= 1 && info.orientation <= 8);
    }
    static const unsigned flag_sets[] = { 0, IMG_DECODE_RGBA | IMG_DECODE_NO_ORIENT };
    for (size_t k = 0; k < sizeof flag_sets / sizeof flag_sets[0]; k++) {
        unsigned flags = flag_sets[k];
        struct img im;
        enum vc_status rc = img_decode(data, size, &lim, flags, &im, &err);
        if (rc != VC_OK) {
            require(rc == VC_ESAMPLE && im.pixels == NULL);
            continue;
        }
        require(probed == VC_OK);
        bool swap = !(flags & IMG_DECODE_NO_ORIENT) && info.orientation >= 5;
        require(im.w == (swap ? info.height : info.width));
        require(im.h == (swap ? info.width : info.height));
        require(im.ch == ((flags & IMG_DECODE_RGBA) ? 4 : 3));
        /* Touch every byte so ASan sees the whole buffer was allocated. */
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)im.w * im.h * im.ch; i++)
            sum += im.pixels[i];
        (void)sum;
        struct img small;
        if (img_resize(&im, IMG_RESIZE_BORDER, 17, &small, &err) == VC_OK) {
            require(small.w == 17 && small.h == 17 && small.ch == im.ch);
            img_release(&small);
        }
        img_release(&im);
    }
    return 0;
}
