/* Unit tests for enc (base64, percent-encoding, hex). */
#include "check.h"
#include "enc.h"

static int tests_run;

static void b64_roundtrip(void)
{
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char enc[32];
        uint8_t dec[32];
        CHECK_EQ(enc_b64_encode((const uint8_t *)in[i], strlen(in[i]), enc, sizeof enc),
                 (long)strlen(out[i]));
        CHECK_STR(enc, out[i]);
        long n = enc_b64_decode(enc, strlen(enc), dec, sizeof dec);
        CHECK_EQ(n, (long)strlen(in[i]));
        CHECK(memcmp(dec, in[i], (size_t)n) == 0);
    }
}

static void b64_rejects(void)
{
    uint8_t d[16];
    CHECK_EQ(enc_b64_decode("Zm9", 3, d, sizeof d), -1);      /* not a multiple of 4 */
    CHECK_EQ(enc_b64_decode("Zm 9v", 5, d, sizeof d), -1);    /* whitespace */
    CHECK_EQ(enc_b64_decode("Z===", 4, d, sizeof d), -1);     /* too much padding */
    CHECK_EQ(enc_b64_decode("Zg==Zg==", 8, d, sizeof d), -1); /* padding in the middle */
    CHECK_EQ(enc_b64_decode("Zm9vYmFy", 8, d, 5), -1);        /* output too small */
    char small[4];
    CHECK_EQ(enc_b64_encode((const uint8_t *)"abc", 3, small, sizeof small), -1);
}

static void pct(void)
{
    char out[64];
    CHECK_EQ(enc_pct_encode("http://a.b/c d~", 15, out, sizeof out), 25);
    CHECK_STR(out, "http%3A%2F%2Fa.b%2Fc%20d~");
    CHECK_EQ(enc_pct_decode("a%2Fb%2fc+", 10, out, sizeof out), 6);
    CHECK_STR(out, "a/b/c+");
    CHECK_EQ(enc_pct_decode("abc%", 4, out, sizeof out), -1);
    CHECK_EQ(enc_pct_decode("abc%4", 5, out, sizeof out), -1);
    CHECK_EQ(enc_pct_decode("%zz", 3, out, sizeof out), -1);
    CHECK_EQ(enc_pct_decode("abcdef", 6, out, 6), -1); /* no room for NUL */
    /* A truncated escape at the very end of readable memory. */
    size_t ml;
    uint8_t *g = guarded("ab%4", 4, &ml);
    CHECK_EQ(enc_pct_decode((const char *)g, 4, out, sizeof out), -1);
    guarded_free(g, 4, ml);
}

static void hex_and_random(void)
{
    char out[16];
    CHECK_EQ(enc_hex((const uint8_t *)"\x01\xab", 2, out, sizeof out), 4);
    CHECK_STR(out, "01ab");
    uint8_t a[16] = {0}, b[16] = {0};
    CHECK_EQ(enc_random(a, sizeof a), 0);
    CHECK_EQ(enc_random(b, sizeof b), 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
    char u1[37], u2[37];
    CHECK_EQ(enc_uuid4(u1), 0);
    CHECK_EQ(enc_uuid4(u2), 0);
    CHECK_EQ(strlen(u1), 36);
    CHECK(u1[8] == '-' && u1[13] == '-' && u1[18] == '-' && u1[23] == '-');
    CHECK(u1[14] == '4');
    CHECK(strchr("89ab", u1[19]) != NULL);
    CHECK(strcmp(u1, u2) != 0);
}

int main(void)
{
    TEST(b64_roundtrip);
    TEST(b64_rejects);
    TEST(pct);
    TEST(hex_and_random);
    TEST_MAIN_END();
}
