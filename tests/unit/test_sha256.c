/* Unit tests of core/sha256: the FIPS 180-4 example vectors, the padding
 * boundaries (digests of those lengths from Python's hashlib), and that
 * streaming in odd chunk sizes gives the one-shot digest. */
#include "vc_test.h"

#include "core/sha256.h"

#include <stdlib.h>

static void check_hex(const void *data, size_t size, const char *want)
{
    char hex[65];
    sha256_hex(data, size, hex);
    CHECK_STR(hex, want);
}

TEST(fips_vectors)
{
    check_hex("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_hex("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_hex(m448, strlen(m448),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(million_a)
{
    /* Streamed in 1000-byte pieces, as the standard's example suggests. */
    char piece[1000];
    memset(piece, 'a', sizeof piece);
    struct sha256 c;
    uint8_t digest[32];
    char hex[65];
    sha256_init(&c);
    for (int i = 0; i < 1000; i++)
        sha256_update(&c, piece, sizeof piece);
    sha256_final(&c, digest);
    sha256_digest_to_hex(digest, hex);
    CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Bytes (7i + 3) mod 256; expected digests from hashlib.sha256. */
TEST(padding_boundaries)
{
    static const struct {
        size_t n;
        const char *hex;
    } cases[] = {
        { 55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b" },
        { 56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27" },
        { 63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055" },
        { 64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241" },
        { 65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e" },
        { 119, "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e" },
        { 1000, "1e9bc38cbf860b9ec31918b065f9b52476c549a782e0e7990bed8ce3868d2371" },
    };
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        check_hex(buf, cases[k].n, cases[k].hex);
}

TEST(streaming_matches_one_shot)
{
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    static const size_t chunks[] = { 1, 3, 63, 64, 65, 127 };
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        struct sha256 c;
        uint8_t digest[32];
        char hex[65];
        sha256_init(&c);
        sha256_update(&c, NULL, 0);
        for (size_t off = 0; off < sizeof buf; off += chunks[k]) {
            size_t n = sizeof buf - off < chunks[k] ? sizeof buf - off : chunks[k];
            sha256_update(&c, buf + off, n);
        }
        sha256_final(&c, digest);
        sha256_digest_to_hex(digest, hex);
        CHECK_STR(hex, "1e9bc38cbf860b9ec31918b065f9b52476c549a782e0e7990bed8ce3868d2371");
    }
}

/* The accelerated block function (where the CPU has one) against the
 * portable reference, over lengths around every block boundary. */
TEST(fast_path_matches_portable)
{
    static uint8_t buf[4099];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    for (size_t n = 0; n < sizeof buf; n += (n < 300 ? 1 : 61)) {
        char fast[65], slow[65];
        sha256_force_portable(0);
        sha256_hex(buf, n, fast);
        sha256_force_portable(1);
        sha256_hex(buf, n, slow);
        sha256_force_portable(0);
        CHECK_STR(fast, slow);
    }
}

#define TESTS(X)                                                                                   \
    X(fips_vectors)                                                                                \
    X(million_a) X(padding_boundaries) X(streaming_matches_one_shot) X(fast_path_matches_portable)
TEST_MAIN(TESTS)
