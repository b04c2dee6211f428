/* Unit tests for verify: the control plane's trusted issuers, with real
 * RSA keys and tokens signed here. The demo issuer's keys accept any of
 * the caller's audiences; an external issuer (JWKS file) only its own
 * audience and its own keys; an issuer nobody trusts is refused, also
 * when its token is signed with a trusted key. */
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <time.h>

#include "check.h"
#include "file.h"
#include "jwt.h"
#include "verify.h"

static int tests_run;
static EVP_PKEY *demo_key, *ext_key, *stranger_key;
static char demo_kid[17], ext_kid[17], stranger_kid[17];
static jwt_keyset demo_ks;
static char jwks_path[256];

#define DEMO "https://hub.test/adfs"
#define EXT "https://login.example.test/t/v2.0"
#define EXT_AUD "https://management.example.test/"

static char *mint(EVP_PKEY *key, const char *kid, const char *iss, const char *aud, long long exp_in)
{
    static char tok[4096];
    char payload[1024];
    long long now = (long long)time(NULL);
    snprintf(payload, sizeof payload,
             "{\"iss\":\"%s\",\"aud\":\"%s\",\"exp\":%lld,\"nbf\":%lld,\"iat\":%lld,\"oid\":\"o-1\",\"sub\":"
             "\"o-1\"}",
             iss, aud, now + exp_in, now - 5, now - 5);
    CHECK(jwt_sign_rs256(key, kid, payload, tok, sizeof tok) > 0);
    return tok;
}

static int check(const verify_t *v, const char *tok, const char *const *auds, jwt_claims *c)
{
    char err[JWT_ERRLEN];
    memset(c, 0, sizeof *c);
    int rc = verify_token(v, tok, strlen(tok), auds, c, err);
    jwt_claims_free(c);
    return rc;
}

static void setup(void)
{
    CHECK((demo_key = EVP_RSA_gen(2048)) && (ext_key = EVP_RSA_gen(2048)) &&
          (stranger_key = EVP_RSA_gen(2048)));
    CHECK_EQ(jwt_kid_rsa(demo_key, demo_kid), 0);
    CHECK_EQ(jwt_kid_rsa(ext_key, ext_kid), 0);
    CHECK_EQ(jwt_kid_rsa(stranger_key, stranger_kid), 0);
    char jwk[2048], jwks[2200], err[FILE_ERRLEN];
    CHECK(jwt_jwk_rsa(demo_key, demo_kid, jwk, sizeof jwk) > 0);
    snprintf(jwks, sizeof jwks, "{\"keys\":[%s]}", jwk);
    char jerr[JWT_ERRLEN];
    CHECK_EQ(jwt_keyset_parse(jwks, strlen(jwks), &demo_ks, jerr), 1);
    CHECK(jwt_jwk_rsa(ext_key, ext_kid, jwk, sizeof jwk) > 0);
    snprintf(jwks, sizeof jwks, "{\"keys\":[%s]}", jwk);
    snprintf(jwks_path, sizeof jwks_path, "/tmp/ck-test-verify-%d.json", (int)getpid());
    CHECK_EQ(file_write_atomic(jwks_path, jwks, strlen(jwks), 0600, 0, err), 0);
}

static void issuers(void)
{
    verify_t *v = verify_new();
    CHECK(v);
    char err[256];
    CHECK_EQ(verify_trust_keys(v, DEMO, &demo_ks), 0);
    CHECK_EQ(verify_trust_jwks_file(v, EXT, EXT_AUD, jwks_path, err), 0);
    const char *const auds[] = {"https://hub.test/", "https://hub.test", NULL};
    jwt_claims c;
    /* The demo issuer: any of the caller's audiences. */
    CHECK_EQ(check(v, mint(demo_key, demo_kid, DEMO, "https://hub.test", 600), auds, &c), JWT_OK);
    CHECK_EQ(check(v, mint(demo_key, demo_kid, DEMO, "https://hub.test/", 600), auds, &c), JWT_OK);
    CHECK_EQ(check(v, mint(demo_key, demo_kid, DEMO, "api://other", 600), auds, &c), JWT_ERR_AUDIENCE);
    CHECK_EQ(check(v, mint(demo_key, demo_kid, DEMO, "https://hub.test/", -600), auds, &c), JWT_ERR_EXPIRED);
    /* The external issuer: its audience, not the caller's list. */
    CHECK_EQ(check(v, mint(ext_key, ext_kid, EXT, EXT_AUD, 600), auds, &c), JWT_OK);
    CHECK_EQ(check(v, mint(ext_key, ext_kid, EXT, "https://hub.test/", 600), auds, &c), JWT_ERR_AUDIENCE);
    /* Keys are per issuer: the demo key cannot speak for the external
     * issuer, nor a stranger's for anyone. */
    CHECK(check(v, mint(demo_key, demo_kid, EXT, EXT_AUD, 600), auds, &c) != JWT_OK);
    CHECK(check(v, mint(stranger_key, stranger_kid, DEMO, "https://hub.test/", 600), auds, &c) != JWT_OK);
    /* An issuer nobody trusts, even signed with a trusted key. */
    CHECK(check(v, mint(demo_key, demo_kid, "https://evil.test", "https://hub.test/", 600), auds, &c) !=
          JWT_OK);
    CHECK(check(v, "not.a.token", auds, &c) != JWT_OK);
    verify_free(v);
}

static void without_the_demo_issuer(void)
{
    verify_t *v = verify_new();
    char err[256];
    CHECK_EQ(verify_trust_jwks_file(v, EXT, EXT_AUD, jwks_path, err), 0);
    const char *const auds[] = {"https://hub.test/", NULL};
    jwt_claims c;
    CHECK(check(v, mint(demo_key, demo_kid, DEMO, "https://hub.test/", 600), auds, &c) != JWT_OK);
    CHECK_EQ(check(v, mint(ext_key, ext_kid, EXT, EXT_AUD, 600), auds, &c), JWT_OK);
    verify_free(v);
    /* Nothing trusted: nothing passes. */
    v = verify_new();
    CHECK(check(v, mint(ext_key, ext_kid, EXT, EXT_AUD, 600), auds, &c) != JWT_OK);
    verify_free(v);
}

static void bad_trust(void)
{
    verify_t *v = verify_new();
    char err[256];
    CHECK_EQ(verify_trust_jwks_file(v, EXT, EXT_AUD, "/nonexistent/jwks.json", err), -1);
    CHECK(strstr(err, "/nonexistent/jwks.json") != NULL);
    char empty[300], ferr[FILE_ERRLEN];
    snprintf(empty, sizeof empty, "%s.empty", jwks_path);
    CHECK_EQ(file_write_atomic(empty, "{\"keys\":[]}", 11, 0600, 0, ferr), 0);
    CHECK_EQ(verify_trust_jwks_file(v, EXT, EXT_AUD, empty, err), -1);
    CHECK(strstr(err, "no usable") != NULL);
    CHECK_EQ(verify_trust_jwks_file(v, EXT, "", jwks_path, err),
             -1); /* an external issuer needs its audience */
    /* Trusting an issuer again replaces its keys (a rotated JWKS). */
    CHECK_EQ(verify_trust_jwks_file(v, EXT, EXT_AUD, jwks_path, err), 0);
    CHECK_EQ(verify_trust_jwks_file(v, EXT, EXT_AUD, jwks_path, err), 0);
    for (int i = 0; i < VERIFY_ISSUERS_MAX - 1; i++) {
        char iss[64];
        snprintf(iss, sizeof iss, "https://i%d.test", i);
        CHECK_EQ(verify_trust_keys(v, iss, &demo_ks), 0);
    }
    CHECK_EQ(verify_trust_keys(v, "https://one-too-many.test", &demo_ks), -1);
    verify_free(v);
    unlink(empty);
}

int main(void)
{
    setup();
    TEST(issuers);
    TEST(without_the_demo_issuer);
    TEST(bad_trust);
    unlink(jwks_path);
    jwt_keyset_free(&demo_ks);
    EVP_PKEY_free(demo_key);
    EVP_PKEY_free(ext_key);
    EVP_PKEY_free(stranger_key);
    TEST_MAIN_END();
}
