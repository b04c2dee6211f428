/* jwt: JWKS parsing and RS256/ES256 JWT verification. See jwt.h. */
#include "jwt.h"

#include <cjson/cJSON.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc.h"

const char *jwt_strerror(int rc)
{
    switch (rc) {
    case JWT_OK: return "ok";
    case JWT_ERR_MALFORMED: return "malformed token";
    case JWT_ERR_ALG: return "unsupported or forbidden algorithm";
    case JWT_ERR_UNKNOWN_KEY: return "signing key not found";
    case JWT_ERR_SIGNATURE: return "bad signature";
    case JWT_ERR_EXPIRED: return "token expired";
    case JWT_ERR_NOT_YET_VALID: return "token not yet valid";
    case JWT_ERR_ISSUER: return "wrong issuer";
    case JWT_ERR_AUDIENCE: return "wrong audience";
    case JWT_ERR_NOMEM: return "out of memory";
    }
    return "unknown";
}

/* Decodes a base64url JSON member into a malloc'd BIGNUM source. */
static long b64url_field(const cJSON *o, const char *name, uint8_t *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(v))
        return -1;
    return enc_b64url_decode(v->valuestring, strlen(v->valuestring), out, cap);
}

static EVP_PKEY *rsa_key(const cJSON *k)
{
    uint8_t n[1024], e[16];
    long nl = b64url_field(k, "n", n, sizeof n), el = b64url_field(k, "e", e, sizeof e);
    if (nl < 256 || el <= 0) /* at least 2048-bit moduli */
        return NULL;
    BIGNUM *bn = BN_bin2bn(n, (int)nl, NULL), *be = BN_bin2bn(e, (int)el, NULL);
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (bn && be && b && ctx && OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be) && (params = OSSL_PARAM_BLD_to_param(b)) &&
        EVP_PKEY_fromdata_init(ctx) == 1)
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(b);
    EVP_PKEY_CTX_free(ctx);
    BN_free(bn);
    BN_free(be);
    return pkey;
}

static EVP_PKEY *ec_key(const cJSON *k)
{
    const cJSON *crv = cJSON_GetObjectItemCaseSensitive(k, "crv");
    if (!cJSON_IsString(crv) || strcmp(crv->valuestring, "P-256") != 0)
        return NULL;
    uint8_t pt[65];
    pt[0] = 0x04; /* uncompressed point */
    if (b64url_field(k, "x", pt + 1, 32) != 32 || b64url_field(k, "y", pt + 33, 32) != 32)
        return NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"P-256", 0),
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt),
        OSSL_PARAM_END,
    };
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx && EVP_PKEY_fromdata_init(ctx) == 1)
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params); /* rejects points off the curve */
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

int jwt_keyset_parse(const char *json, size_t n, jwt_keyset *ks, char err[JWT_ERRLEN])
{
    memset(ks, 0, sizeof *ks);
    cJSON *root = cJSON_ParseWithLength(json, n);
    const cJSON *keys = root ? cJSON_GetObjectItemCaseSensitive(root, "keys") : NULL;
    if (!cJSON_IsArray(keys)) {
        snprintf(err, JWT_ERRLEN, "not a JWKS document (no \"keys\" array)");
        cJSON_Delete(root);
        return -1;
    }
    size_t cap = (size_t)cJSON_GetArraySize(keys);
    ks->keys = calloc(cap ? cap : 1, sizeof *ks->keys);
    if (!ks->keys) {
        snprintf(err, JWT_ERRLEN, "out of memory for %zu keys", cap);
        cJSON_Delete(root);
        return -1;
    }
    const cJSON *k;
    cJSON_ArrayForEach (k, keys) {
        const cJSON *kty = cJSON_GetObjectItemCaseSensitive(k, "kty");
        const cJSON *kid = cJSON_GetObjectItemCaseSensitive(k, "kid");
        const cJSON *use = cJSON_GetObjectItemCaseSensitive(k, "use");
        if (!cJSON_IsString(kty) || (cJSON_IsString(use) && strcmp(use->valuestring, "sig") != 0))
            continue;
        jwt_key *out = &ks->keys[ks->n];
        if (strcmp(kty->valuestring, "RSA") == 0) {
            out->pkey = rsa_key(k);
            out->alg = JWT_ALG_RS256;
        } else if (strcmp(kty->valuestring, "EC") == 0) {
            out->pkey = ec_key(k);
            out->alg = JWT_ALG_ES256;
        }
        if (!out->pkey)
            continue;
        snprintf(out->kid, sizeof out->kid, "%s", cJSON_IsString(kid) ? kid->valuestring : "");
        ks->n++;
    }
    ERR_clear_error();
    cJSON_Delete(root);
    return (int)ks->n;
}

void jwt_keyset_free(jwt_keyset *ks)
{
    for (size_t i = 0; i < ks->n; i++)
        EVP_PKEY_free(ks->keys[i].pkey);
    free(ks->keys);
    memset(ks, 0, sizeof *ks);
}

void jwt_claims_free(jwt_claims *c)
{
    for (size_t i = 0; i < c->ngroups; i++)
        free(c->groups[i]);
    free(c->groups);
    c->groups = NULL;
    c->ngroups = 0;
}

/* Splits header.payload.signature; returns 0 or -1. */
static int split3(const char *t, size_t n, size_t dots[2])
{
    int d = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '.') {
            if (d == 2)
                return -1;
            dots[d++] = i;
        }
    }
    /* An empty signature parses, so that "alg":"none" is refused by name. */
    return d == 2 && dots[0] > 0 && dots[1] > dots[0] + 1 ? 0 : -1;
}

static cJSON *decode_json(const char *p, size_t n)
{
    uint8_t *buf = malloc(n);
    if (!buf)
        return NULL;
    long l = enc_b64url_decode(p, n, buf, n);
    cJSON *j = l > 0 ? cJSON_ParseWithLength((const char *)buf, (size_t)l) : NULL;
    free(buf);
    if (j && !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static void copy_str(const cJSON *o, const char *name, char *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsString(v))
        snprintf(out, cap, "%s", v->valuestring);
}

/* Like copy_str for the claims that name the caller: one that does not fit
 * is refused (-1) rather than cut, since a shortened name is someone else. */
static int copy_id(const cJSON *o, const char *name, char *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(v))
        return 0;
    if (strlen(v->valuestring) >= cap)
        return -1;
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

static int get_time(const cJSON *o, const char *name, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e12)
        return -1;
    *out = (int64_t)v->valuedouble;
    return 1;
}

/* ES256 signatures in JWS are r||s; OpenSSL verifies DER. */
static int es256_to_der(const uint8_t sig[64], uint8_t *der, size_t *der_len)
{
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *ss = BN_bin2bn(sig + 32, 32, NULL);
    if (!s || !r || !ss || ECDSA_SIG_set0(s, r, ss) != 1) {
        ECDSA_SIG_free(s);
        BN_free(r);
        BN_free(ss);
        return -1;
    }
    unsigned char *p = der;
    int l = i2d_ECDSA_SIG(s, &p);
    ECDSA_SIG_free(s);
    if (l <= 0)
        return -1;
    *der_len = (size_t)l;
    return 0;
}

static int verify_sig(EVP_PKEY *key, int alg, const char *signed_part, size_t sl, const uint8_t *sig,
                      size_t siglen)
{
    uint8_t der[80];
    if (alg == JWT_ALG_ES256) {
        if (siglen != 64 || es256_to_der(sig, der, &siglen) < 0)
            return -1;
        sig = der;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestVerify(md, sig, siglen, (const unsigned char *)signed_part, sl) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok ? 0 : -1;
}

static int fail(char *err, int rc, const char *detail)
{
    snprintf(err, JWT_ERRLEN, "%s%s%s", jwt_strerror(rc), detail ? ": " : "", detail ? detail : "");
    return rc;
}

int jwt_verify(const char *token, size_t n, const jwt_keyset *ks, const jwt_expect *want, jwt_claims *out,
               char err[JWT_ERRLEN])
{
    memset(out, 0, sizeof *out);
    size_t dots[2];
    if (n > JWT_MAX_TOKEN || split3(token, n, dots) < 0)
        return fail(err, JWT_ERR_MALFORMED, "not three base64url parts");
    int rc = JWT_OK;
    cJSON *hdr = decode_json(token, dots[0]);
    cJSON *pl = NULL;
    uint8_t *sig = NULL;
    if (!hdr) {
        rc = fail(err, JWT_ERR_MALFORMED, "header is not JSON");
        goto done;
    }
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(hdr, "kid");
    int a = 0;
    if (cJSON_IsString(alg) && strcmp(alg->valuestring, "RS256") == 0)
        a = JWT_ALG_RS256;
    else if (cJSON_IsString(alg) && strcmp(alg->valuestring, "ES256") == 0)
        a = JWT_ALG_ES256;
    if (!a) {
        rc = fail(err, JWT_ERR_ALG, cJSON_IsString(alg) ? alg->valuestring : "missing");
        goto done;
    }
    const jwt_key *key = NULL;
    for (size_t i = 0; i < ks->n; i++) {
        if (ks->keys[i].alg != a)
            continue;
        if (cJSON_IsString(kid) ? strcmp(ks->keys[i].kid, kid->valuestring) == 0 : ks->n == 1) {
            key = &ks->keys[i];
            break;
        }
    }
    if (!key) {
        rc = fail(err, JWT_ERR_UNKNOWN_KEY, NULL);
        goto done;
    }
    size_t slen = n - dots[1] - 1;
    sig = malloc(slen ? slen : 1);
    if (!sig) {
        rc = fail(err, JWT_ERR_NOMEM, NULL);
        goto done;
    }
    long sl = enc_b64url_decode(token + dots[1] + 1, slen, sig, slen);
    if (sl <= 0 || verify_sig(key->pkey, a, token, dots[1], sig, (size_t)sl) < 0) {
        rc = fail(err, JWT_ERR_SIGNATURE, NULL);
        goto done;
    }
    /* Only now is the payload trusted enough to read. */
    pl = decode_json(token + dots[0] + 1, dots[1] - dots[0] - 1);
    if (!pl) {
        rc = fail(err, JWT_ERR_MALFORMED, "payload is not JSON");
        goto done;
    }
    copy_str(pl, "iss", out->iss, sizeof out->iss);
    if (copy_id(pl, "sub", out->sub, sizeof out->sub) < 0 ||
        copy_id(pl, "oid", out->oid, sizeof out->oid) < 0 ||
        copy_id(pl, "upn", out->upn, sizeof out->upn) < 0) {
        rc = fail(err, JWT_ERR_MALFORMED, "sub, oid or upn too long");
        goto done;
    }
    copy_str(pl, "tid", out->tid, sizeof out->tid);
    copy_str(pl, "unique_name", out->name, sizeof out->name);
    copy_str(pl, "upn", out->name, sizeof out->name);
    copy_str(pl, "preferred_username", out->name, sizeof out->name);
    copy_str(pl, "idtyp", out->idtyp, sizeof out->idtyp);
    copy_str(pl, "azp", out->appid, sizeof out->appid);
    copy_str(pl, "appid", out->appid, sizeof out->appid);
    out->has_scp = cJSON_GetObjectItemCaseSensitive(pl, "scp") != NULL;
    if (get_time(pl, "exp", &out->exp) != 1 || get_time(pl, "nbf", &out->nbf) < 0 ||
        get_time(pl, "iat", &out->iat) < 0) {
        rc = fail(err, JWT_ERR_MALFORMED, "exp missing or not a number");
        goto done;
    }
    if (want->now > out->exp + want->skew) {
        rc = fail(err, JWT_ERR_EXPIRED, NULL);
        goto done;
    }
    if (out->nbf && want->now + want->skew < out->nbf) {
        rc = fail(err, JWT_ERR_NOT_YET_VALID, NULL);
        goto done;
    }
    if (want->issuer && strcmp(out->iss, want->issuer) != 0) {
        rc = fail(err, JWT_ERR_ISSUER, NULL);
        goto done;
    }
    if (want->audience) {
        const cJSON *aud = cJSON_GetObjectItemCaseSensitive(pl, "aud");
        int match = cJSON_IsString(aud) && strcmp(aud->valuestring, want->audience) == 0;
        const cJSON *x;
        if (cJSON_IsArray(aud))
            cJSON_ArrayForEach (x, aud)
                if (cJSON_IsString(x) && strcmp(x->valuestring, want->audience) == 0)
                    match = 1;
        if (!match) {
            rc = fail(err, JWT_ERR_AUDIENCE, NULL);
            goto done;
        }
    }
    if (!out->oid[0] && !out->sub[0]) {
        rc = fail(err, JWT_ERR_MALFORMED, "neither oid nor sub");
        goto done;
    }
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(pl, "groups");
    if (cJSON_IsArray(groups)) {
        size_t g = (size_t)cJSON_GetArraySize(groups);
        if (g > JWT_MAX_GROUPS) {
            rc = fail(err, JWT_ERR_MALFORMED, "too many groups");
            goto done;
        }
        /* Never a partial list: fewer groups are a different caller. */
        if (!(out->groups = calloc(g ? g : 1, sizeof *out->groups))) {
            rc = fail(err, JWT_ERR_NOMEM, "groups");
            goto done;
        }
        const cJSON *x;
        cJSON_ArrayForEach (x, groups) {
            if (!cJSON_IsString(x) || strlen(x->valuestring) >= 256)
                continue;
            if (!(out->groups[out->ngroups] = strdup(x->valuestring))) {
                rc = fail(err, JWT_ERR_NOMEM, "groups");
                goto done;
            }
            out->ngroups++;
        }
    }
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(pl, "_claim_names");
    const cJSON *hg = cJSON_GetObjectItemCaseSensitive(pl, "hasgroups");
    out->groups_overage = (cn && cJSON_GetObjectItemCaseSensitive(cn, "groups")) || cJSON_IsTrue(hg);
done:
    cJSON_Delete(hdr);
    cJSON_Delete(pl);
    free(sig);
    return rc;
}

int jwt_peek_issuer(const char *token, size_t n, char *out, size_t cap)
{
    size_t dots[2];
    if (n > JWT_MAX_TOKEN || split3(token, n, dots) < 0)
        return -1;
    cJSON *pl = decode_json(token + dots[0] + 1, dots[1] - dots[0] - 1);
    const cJSON *iss = pl ? cJSON_GetObjectItemCaseSensitive(pl, "iss") : NULL;
    int rc = -1;
    if (cJSON_IsString(iss) && strlen(iss->valuestring) < cap) {
        snprintf(out, cap, "%s", iss->valuestring);
        rc = 0;
    }
    cJSON_Delete(pl);
    return rc;
}

long jwt_sign_rs256(EVP_PKEY *key, const char *kid, const char *payload_json, char *out, size_t cap)
{
    if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA)
        return -1;
    char head[256];
    int hl = snprintf(head, sizeof head, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    if (hl < 0 || (size_t)hl >= sizeof head || strchr(kid, '"') || strchr(kid, '\\'))
        return -1;
    long a = enc_b64url_encode((const uint8_t *)head, (size_t)hl, out, cap);
    if (a < 0 || (size_t)a + 2 >= cap)
        return -1;
    out[a++] = '.';
    long b = enc_b64url_encode((const uint8_t *)payload_json, strlen(payload_json), out + a, cap - (size_t)a);
    if (b < 0)
        return -1;
    size_t signed_len = (size_t)(a + b);
    uint8_t sig[1024];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestSign(md, sig, &siglen, (const unsigned char *)out, signed_len) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    if (!ok || signed_len + 2 >= cap)
        return -1;
    out[signed_len] = '.';
    long c = enc_b64url_encode(sig, siglen, out + signed_len + 1, cap - signed_len - 1);
    if (c < 0)
        return -1;
    return (long)(signed_len + 1 + (size_t)c);
}

static long bn_b64url(EVP_PKEY *key, const char *param, char *out, size_t cap)
{
    BIGNUM *bn = NULL;
    uint8_t raw[1024];
    if (EVP_PKEY_get_bn_param(key, param, &bn) != 1 || BN_num_bytes(bn) > (int)sizeof raw) {
        BN_free(bn);
        return -1;
    }
    int n = BN_bn2bin(bn, raw);
    BN_free(bn);
    return enc_b64url_encode(raw, (size_t)n, out, cap);
}

long jwt_jwk_rsa(EVP_PKEY *key, const char *kid, char *out, size_t cap)
{
    char n[1400], e[16];
    if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA ||
        bn_b64url(key, OSSL_PKEY_PARAM_RSA_N, n, sizeof n) < 0 ||
        bn_b64url(key, OSSL_PKEY_PARAM_RSA_E, e, sizeof e) < 0)
        return -1;
    int w = snprintf(
        out, cap,
        "{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"}", kid,
        n, e);
    return (w < 0 || (size_t)w >= cap) ? -1 : w;
}

int jwt_kid_rsa(EVP_PKEY *key, char out[17])
{
    BIGNUM *bn = NULL;
    uint8_t raw[1024], md[32];
    if (!key || EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &bn) != 1 ||
        BN_num_bytes(bn) > (int)sizeof raw) {
        BN_free(bn);
        return -1;
    }
    int n = BN_bn2bin(bn, raw);
    BN_free(bn);
    unsigned mdlen = 0;
    if (EVP_Digest(raw, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1)
        return -1;
    return enc_hex(md, 8, out, 17) < 0 ? -1 : 0;
}
