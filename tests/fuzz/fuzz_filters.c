/* Fuzz target for filters/: any bytes as a document text node (paragraph
 * filters), as a whole document and as a caption, and as an image, through
 * a chain with every filter on (language id on paragraphs too).  Beyond "no
 * crash, no sanitizer report" it checks the contract: the kept text is no
 * longer than the input, and a rejection always names its filter.  The
 * image size filters are tight so no input makes a decode allocate much. */
#include "filters/filter.h"
#include "filters/filter_chain.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
    if (!cond)
        __builtin_trap();
}

static struct filter_chain *chain(void)
{
    static struct filter_chain *c;
    if (!c) {
        cJSON *j = cJSON_Parse("[{\"name\": \"img_pixels\", \"max\": 1048576},"
                               " {\"name\": \"img_width\", \"max\": 2048},"
                               " {\"name\": \"img_height\", \"max\": 2048},"
                               " {\"name\": \"img_grayscale\", \"enabled\": true},"
                               " {\"name\": \"img_bytes\", \"enabled\": true},"
                               " {\"name\": \"par_lang\", \"enabled\": true}]");
        struct vc_err err;
        require(filter_chain_new(j, true, &c, &err) == VC_OK);
        cJSON_Delete(j);
    }
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct filter_scratch *s = filter_scratch_new();
    require(s != NULL);
    struct vc_err err;
    struct filter_verdict v;
    struct filter_report rep;
    filter_report_clear(&rep);
    const char *text = (const char *)data, *out;
    size_t out_len, removed;
    require(filter_chain_paragraphs(chain(), s, text, size, &out, &out_len, &removed, &rep, &err) ==
            VC_OK);
    require(out_len <= size);
    enum vc_status rc = filter_chain_document(chain(), s, text, size, size % 40, &v, &rep, &err);
    require(rc == VC_OK || (rc == VC_REJECT && v.by != NULL));
    rc = filter_chain_caption(chain(), s, text, size, &v, &rep, &err);
    require(rc == VC_OK || (rc == VC_REJECT && v.by != NULL));
    struct filter_image img = { data, size, size % 2 ? "https://example.org/x.png" : NULL };
    rc = filter_chain_image(chain(), s, &img, &v, &rep, &err);
    require(rc == VC_OK || rc == VC_ESAMPLE || (rc == VC_REJECT && v.by != NULL));
    filter_scratch_free(s);
    return 0;
}
