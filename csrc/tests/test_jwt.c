/* Unit tests for jwt: real RSA-2048 and P-256 keys, tokens signed here,
 * every refusal the agent relies on. */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <time.h>

#include "check.h"
#include "enc.h"
#include "jwt.h"

static int tests_run;
static EVP_PKEY *rsa, *ec, *rsa_other;
static jwt_keyset ks;
static int64_t now;

static void b64u(const uint8_t *p, size_t n, char *out, size_t cap)
{
    CHECK(enc_b64url_encode(p, n, out, cap) >= 0);
}

static void bn_b64u(EVP_PKEY *k, const char *param, char *out, size_t cap, int pad_to)
{
    BIGNUM *bn = NULL;
    CHECK(EVP_PKEY_get_bn_param(k, param, &bn) == 1);
    uint8_t buf[512];
    int n = pad_to ? BN_bn2binpad(bn, buf, pad_to) : BN_bn2bin(bn, buf);
    BN_free(bn);
    b64u(buf, (size_t)n, out, cap);
}

static char *make_jwks(void)
{
    static char json[4096];
    char n[512], e[16], x[64], y[64];
    bn_b64u(rsa, OSSL_PKEY_PARAM_RSA_N, n, sizeof n, 0);
    bn_b64u(rsa, OSSL_PKEY_PARAM_RSA_E, e, sizeof e, 0);
    bn_b64u(ec, OSSL_PKEY_PARAM_EC_PUB_X, x, sizeof x, 32);
    bn_b64u(ec, OSSL_PKEY_PARAM_EC_PUB_Y, y, sizeof y, 32);
    snprintf(json, sizeof json,
             "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"r1\",\"n\":\"%s\",\"e\":\"%s\"},"
             "{\"kty\":\"EC\",\"kid\":\"e1\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"},"
             "{\"kty\":\"oct\",\"kid\":\"h1\",\"k\":\"c2VjcmV0\"},"
             "{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}",
             n, e, x, y, x, x /* y := x: not on the curve, must be skipped */);
    return json;
}

/* Signs header.payload with key as `alg`; returns a malloc'd token. */
static char *sign(const char *alg, const char *kid, const char *payload, EVP_PKEY *key)
{
    char hdr[256], h64[512], p64[4096], s64[1024];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\"%s%s%s}", alg, kid ? ",\"kid\":\"" : "",
             kid ? kid : "", kid ? "\"" : "");
    b64u((const uint8_t *)hdr, strlen(hdr), h64, sizeof h64);
    b64u((const uint8_t *)payload, strlen(payload), p64, sizeof p64);
    char *signing = malloc(8192);
    snprintf(signing, 8192, "%s.%s", h64, p64);
    uint8_t sig[512];
    size_t sl = sizeof sig;
    if (strcmp(alg, "none") == 0) {
        sl = 0;
    } else if (strcmp(alg, "HS256") == 0) {
        /* The classic confusion attack: HMAC keyed with public material. */
        unsigned int hl = 32;
        HMAC(EVP_sha256(), "r1", 2, (const uint8_t *)signing, strlen(signing), sig, &hl);
        sl = hl;
    } else {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        CHECK(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1);
        CHECK(EVP_DigestSign(md, sig, &sl, (const uint8_t *)signing, strlen(signing)) == 1);
        EVP_MD_CTX_free(md);
        if (strcmp(alg, "ES256") == 0) { /* DER -> r||s */
            const uint8_t *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sl);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
            ECDSA_SIG_free(es);
            sl = 64;
        }
    }
    b64u(sig, sl, s64, sizeof s64);
    strcat(signing, ".");
    strcat(signing, s64);
    return signing;
}

static char payload[2048];
static const char *claims(int64_t exp, int64_t nbf, const char *aud, const char *extra)
{
    snprintf(
        payload, sizeof payload,
        "{\"iss\":\"https://issuer.test/t1/v2.0\",\"aud\":%s,\"exp\":%lld,\"nbf\":%lld,\"iat\":%lld,"
        "\"oid\":\"0000-oid\",\"sub\":\"subject\",\"tid\":\"t1\",\"preferred_username\":\"ann@example\"%s}",
        aud, (long long)exp, (long long)nbf, (long long)nbf, extra ? extra : "");
    return payload;
}

static int verify(const char *tok, jwt_claims *c)
{
    char err[JWT_ERRLEN];
    jwt_expect w = {"https://issuer.test/t1/v2.0", "api://agent", now, 60};
    int rc = jwt_verify(tok, strlen(tok), &ks, &w, c, err);
    return rc;
}

static void setup(void)
{
    now = (int64_t)time(NULL);
    rsa = EVP_RSA_gen(2048);
    rsa_other = EVP_RSA_gen(2048);
    ec = EVP_EC_gen("P-256");
    CHECK(rsa && ec && rsa_other);
    char err[JWT_ERRLEN];
    const char *j = make_jwks();
    CHECK_EQ(jwt_keyset_parse(j, strlen(j), &ks, err), 2); /* oct and off-curve keys skipped */
}

static void valid_tokens(void)
{
    jwt_claims c;
    char *t = sign("RS256", "r1",
                   claims(now + 600, now - 10, "\"api://agent\"", ",\"groups\":[\"g1\",\"g2\"]"), rsa);
    CHECK_EQ(verify(t, &c), JWT_OK);
    CHECK_STR(c.oid, "0000-oid");
    CHECK_STR(c.name, "ann@example");
    CHECK_EQ(c.ngroups, 2);
    CHECK_STR(c.groups[1], "g2");
    CHECK(!c.groups_overage);
    jwt_claims_free(&c);
    free(t);
    t = sign("ES256", "e1",
             claims(now + 600, now, "[\"other\",\"api://agent\"]", ",\"_claim_names\":{\"groups\":\"src1\"}"),
             ec);
    CHECK_EQ(verify(t, &c), JWT_OK);
    CHECK(c.groups_overage);
    jwt_claims_free(&c);
    free(t);
    char iss[128];
    t = sign("RS256", "r1", claims(now + 600, now, "\"x\"", NULL), rsa);
    CHECK_EQ(jwt_peek_issuer(t, strlen(t), iss, sizeof iss), 0);
    CHECK_STR(iss, "https://issuer.test/t1/v2.0");
    free(t);
}

static void refusals(void)
{
    jwt_claims c;
    struct {
        char *tok;
        int want;
    } cases[] = {
        {sign("RS256", "r1",            claims(now + 600, now, "\"api://other\"", NULL), rsa), JWT_ERR_AUDIENCE},
        {sign("RS256",         "r1",       claims(now - 120, now - 600, "\"api://agent\"", NULL), rsa), JWT_ERR_EXPIRED},
        {sign("RS256",        "r1",       claims(now + 900, now + 600, "\"api://agent\"", NULL), rsa),
         JWT_ERR_NOT_YET_VALID},
        {sign("RS256", "r9",    claims(now + 600, now, "\"api://agent\"", NULL), rsa), JWT_ERR_UNKNOWN_KEY},
        {sign("RS256",   "r1", claims(now + 600, now, "\"api://agent\"", NULL), rsa_other), JWT_ERR_SIGNATURE},
        {sign("none",        "r1",        claims(now + 600, now, "\"api://agent\"", NULL), NULL), JWT_ERR_ALG},
        {sign("HS256", "r1",     claims(now + 600, now, "\"api://agent\"", NULL), NULL), JWT_ERR_ALG},
        {sign("ES256",   "r1", claims(now + 600, now, "\"api://agent\"", NULL), ec), JWT_ERR_UNKNOWN_KEY},
        {strdup("a.b"),        JWT_ERR_MALFORMED        },
        {strdup("eyJhbGciOiJSUzI1NiJ9.e30."), JWT_ERR_UNKNOWN_KEY           }, /* no kid, several keys */
        {strdup("eyJhbGciOiJSUzI1NiIsImtpZCI6InIxIn0.e30."),         JWT_ERR_SIGNATURE      },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = verify(cases[i].tok, &c);
        if (rc != cases[i].want)
            fprintf(stderr, "case %zu: %s\n", i, jwt_strerror(rc));
        CHECK_EQ(rc, cases[i].want);
        jwt_claims_free(&c);
        free(cases[i].tok);
    }
    /* Within the skew, still fine. */
    char *t = sign("RS256", "r1", claims(now - 30, now - 600, "\"api://agent\"", NULL), rsa);
    CHECK_EQ(verify(t, &c), JWT_OK);
    jwt_claims_free(&c);
    /* Tampered payload: flip a payload character, the signature fails. */
    char *dot = strchr(t, '.');
    dot[5] = dot[5] == 'A' ? 'B' : 'A';
    CHECK(verify(t, &c) != JWT_OK);
    jwt_claims_free(&c);
    free(t);
}

/* The claims ident.c reads to tell apps from users, and the refusal of
 * an identity claim too long to copy whole. */
static void identity_claims(void)
{
    jwt_claims c;
    char *t =
        sign("RS256", "r1",
             claims(now + 600, now, "\"api://agent\"",
                    ",\"upn\":\"ann@contoso.example\",\"idtyp\":\"user\",\"scp\":\"user_impersonation\","
                    "\"azp\":\"client-v2\""),
             rsa);
    CHECK_EQ(verify(t, &c), JWT_OK);
    CHECK_STR(c.upn, "ann@contoso.example");
    CHECK_STR(c.name, "ann@example"); /* preferred_username still names the caller in logs */
    CHECK_STR(c.idtyp, "user");
    CHECK_STR(c.appid, "client-v2");
    CHECK(c.has_scp);
    jwt_claims_free(&c);
    free(t);
    t = sign("RS256", "r1",
             claims(now + 600, now, "\"api://agent\"", ",\"appid\":\"client-v1\",\"roles\":[\"r\"]"), rsa);
    CHECK_EQ(verify(t, &c), JWT_OK);
    CHECK_STR(c.upn, "");
    CHECK_STR(c.idtyp, "");
    CHECK_STR(c.appid, "client-v1");
    CHECK(!c.has_scp);
    jwt_claims_free(&c);
    free(t);
    char extra[400];
    snprintf(extra, sizeof extra, ",\"upn\":\"%0300d@contoso.example\"", 0);
    t = sign("RS256", "r1", claims(now + 600, now, "\"api://agent\"", extra), rsa);
    CHECK_EQ(verify(t, &c), JWT_ERR_MALFORMED);
    jwt_claims_free(&c);
    free(t);
}

static void b64url(void)
{
    uint8_t out[16];
    CHECK_EQ(enc_b64url_decode("-_8", 3, out, sizeof out), 2);
    CHECK_EQ(out[0], 0xfb);
    CHECK_EQ(out[1], 0xff);
    CHECK_EQ(enc_b64url_decode("+/8", 3, out, sizeof out), -1); /* standard alphabet refused */
    CHECK_EQ(enc_b64url_decode("A", 1, out, sizeof out), -1);
    CHECK_EQ(enc_b64url_decode("AB", 2, out, sizeof out), -1); /* non-canonical trailing bits */
    char s[16];
    CHECK_EQ(enc_b64url_encode((const uint8_t *)"\xfb\xff", 2, s, sizeof s), 3);
    CHECK_STR(s, "-_8");
}

/* What the hub's identity provider issues must pass the agent's verifier
 * through the JWK it publishes, and nothing else's key. */
static void sign_roundtrip(void)
{
    char kid[17], jwk[2048], jwks[2100], tok[4096], err[JWT_ERRLEN];
    CHECK_EQ(jwt_kid_rsa(rsa, kid), 0);
    CHECK_EQ(strlen(kid), 16);
    long jl = jwt_jwk_rsa(rsa, kid, jwk, sizeof jwk);
    CHECK(jl > 0);
    snprintf(jwks, sizeof jwks, "{\"keys\":[%s]}", jwk);
    jwt_keyset own;
    CHECK_EQ(jwt_keyset_parse(jwks, strlen(jwks), &own, err), 1);
    long tl = jwt_sign_rs256(rsa, kid, claims(now + 600, now, "\"api://agent\"", NULL), tok, sizeof tok);
    CHECK(tl > 0 && (size_t)tl == strlen(tok));
    jwt_claims c;
    jwt_expect w = {"https://issuer.test/t1/v2.0", "api://agent", now, 60};
    CHECK_EQ(jwt_verify(tok, (size_t)tl, &own, &w, &c, err), JWT_OK);
    CHECK_STR(c.oid, "0000-oid");
    jwt_claims_free(&c);
    /* Signed by another key under the same kid: refused. */
    CHECK(jwt_sign_rs256(rsa_other, kid, payload, tok, sizeof tok) > 0);
    CHECK_EQ(jwt_verify(tok, strlen(tok), &own, &w, &c, err), JWT_ERR_SIGNATURE);
    jwt_claims_free(&c);
    /* Small buffers and EC keys are refused, never overrun. */
    CHECK_EQ(jwt_sign_rs256(rsa, kid, payload, tok, 100), -1);
    CHECK_EQ(jwt_sign_rs256(ec, kid, payload, tok, sizeof tok), -1);
    CHECK_EQ(jwt_jwk_rsa(rsa, kid, jwk, 64), -1);
    CHECK_EQ(jwt_sign_rs256(rsa, "a\"b", payload, tok, sizeof tok), -1);
    jwt_keyset_free(&own);
}

int main(void)
{
    TEST(setup);
    TEST(valid_tokens);
    TEST(refusals);
    TEST(identity_claims);
    TEST(b64url);
    TEST(sign_roundtrip);
    jwt_keyset_free(&ks);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa_other);
    EVP_PKEY_free(ec);
    TEST_MAIN_END();
}
