/* Fuzz target for stages/wds_read: any bytes as a shard in memory.  Beyond
 * "no crash, no sanitizer report" it checks the reader's contract: every
 * sample returned has a sanitised key and fields within the limits, a
 * VC_ESHARD is final, and member-name splitting stays inside the name.
 * Limits are small so a run cannot allocate much whatever the headers say. */
#include "core/vc_mem.h"
#include "stages/wds_read.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
    if (!cond)
        __builtin_trap();
}

static void check_sample(const struct sample *s, const struct wds_read_limits *lim)
{
    require(s->key && s->orig_key && s->key[0]);
    for (const char *p = s->key; *p; p++)
        require((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                *p == '_' || *p == '-');
    require(s->n_fields <= lim->max_fields);
    for (size_t i = 0; i < s->n_fields; i++) {
        require(s->fields[i].size <= lim->max_entry_bytes);
        require(s->fields[i].name[0] != '\0');
        for (size_t j = 0; j < i; j++)
            require(strcmp(s->fields[i].name, s->fields[j].name) != 0);
    }
}

static void fuzz_split(const uint8_t *data, size_t size)
{
    char name[256];
    size_t n = size < sizeof name - 1 ? size : sizeof name - 1;
    memcpy(name, data, n);
    name[n] = '\0';
    struct wds_member_name m;
    if (wds_member_split(name, &m)) {
        size_t len = strlen(name);
        require(m.key >= name && m.key + m.key_len < name + len);
        require(m.ext == m.key + m.key_len + 1 && m.ext[-1] == '.' && m.ext[0] != '\0');
        require(!strchr(m.ext, '/'));
    }
    (void)wds_member_unsafe(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_split(data, size);
    struct wds_read_limits lim = { .max_entry_bytes = 1 << 20, .max_fields = 16 };
    struct arena *arena = arena_new((size_t)4 << 20);
    struct wds_reader *r = NULL;
    struct vc_err err;
    if (arena && wds_reader_open_mem(data, size, "fuzz", &lim, &r, &err) == VC_OK) {
        uint64_t last_index = 0;
        /* A tar of n bytes holds fewer than n / 512 members. */
        for (size_t i = 0; i <= size / 512 + 1; i++) {
            struct sample s;
            sample_init(&s, arena);
            enum vc_status st = wds_reader_next(r, &s, &err);
            if (st == VC_OK || st == VC_ESAMPLE) {
                require(i == 0 || s.src_index == last_index + 1);
                last_index = s.src_index;
            }
            if (st == VC_OK)
                check_sample(&s, &lim);
            sample_fini(&s);
            arena_reset(arena);
            if (st == VC_ESHARD) {
                sample_init(&s, arena);
                require(wds_reader_next(r, &s, &err) == VC_ESHARD);
                break;
            }
            require(st == VC_OK || st == VC_ESAMPLE || st == VC_EOF);
            if (st == VC_EOF)
                break;
        }
        wds_reader_close(r);
    }
    arena_free(arena);
    return 0;
}
