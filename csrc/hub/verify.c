/* verify: the control plane's trusted issuers. See verify.h. */
#include "verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "file.h"

#define JWKS_MAX (16 << 20)

typedef struct trusted {
    char issuer[512];
    char audience[512]; /* "" when the caller's list applies */
    jwt_keyset own;     /* parsed here (JWKS file), freed here */
    const jwt_keyset *ks;
} trusted;

struct verify {
    trusted t[VERIFY_ISSUERS_MAX];
    size_t n;
};

verify_t *verify_new(void)
{
    return calloc(1, sizeof(verify_t));
}

void verify_free(verify_t *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++)
        jwt_keyset_free(&v->t[i].own);
    free(v);
}

/* The entry for `issuer`, replacing what it trusted before, or NULL when
 * the list is full or the names too long. */
static trusted *slot(verify_t *v, const char *issuer, const char *audience)
{
    if (strlen(issuer) >= sizeof v->t[0].issuer || strlen(audience) >= sizeof v->t[0].audience)
        return NULL;
    trusted *t = NULL;
    for (size_t i = 0; i < v->n && !t; i++)
        if (!strcmp(v->t[i].issuer, issuer))
            t = &v->t[i];
    if (!t && v->n == VERIFY_ISSUERS_MAX)
        return NULL;
    if (!t)
        t = &v->t[v->n++];
    jwt_keyset_free(&t->own);
    memset(t, 0, sizeof *t);
    snprintf(t->issuer, sizeof t->issuer, "%s", issuer);
    snprintf(t->audience, sizeof t->audience, "%s", audience);
    return t;
}

int verify_trust_jwks_file(verify_t *v, const char *issuer, const char *audience, const char *jwks_path,
                           char err[256])
{
    size_t n;
    char *text = file_read(jwks_path, JWKS_MAX, &n, err);
    if (!text)
        return -1;
    char jerr[JWT_ERRLEN];
    jwt_keyset ks;
    int k = jwt_keyset_parse(text, n, &ks, jerr);
    free(text);
    if (k <= 0) {
        snprintf(err, 256, "%s: %s", jwks_path, k < 0 ? jerr : "no usable RSA or P-256 signing key");
        if (k == 0)
            jwt_keyset_free(&ks);
        return -1;
    }
    trusted *t = *audience ? slot(v, issuer, audience) : NULL;
    if (!t) {
        jwt_keyset_free(&ks);
        snprintf(err, 256, "issuer or audience empty or too long, or too many issuers");
        return -1;
    }
    t->own = ks;
    t->ks = &t->own;
    return 0;
}

int verify_trust_keys(verify_t *v, const char *issuer, const jwt_keyset *ks)
{
    trusted *t = slot(v, issuer, "");
    if (!t)
        return -1;
    t->ks = ks;
    return 0;
}

int verify_token(const verify_t *v, const char *token, size_t n, const char *const *auds, jwt_claims *out,
                 char err[JWT_ERRLEN])
{
    char iss[512];
    const trusted *t = NULL;
    if (jwt_peek_issuer(token, n, iss, sizeof iss) == 0)
        for (size_t i = 0; i < v->n && !t; i++)
            if (!strcmp(v->t[i].issuer, iss))
                t = &v->t[i];
    if (!t) {
        /* An issuer nobody trusts: judged as against the first trusted one
         * (or no key at all), so the caller hears jwt_verify's sentence for
         * a wrong issuer or a malformed token. */
        static const jwt_keyset no_keys = {0};
        jwt_claims_free(out);
        jwt_expect w = {.issuer = v->n ? v->t[0].issuer : "",
                        .audience = auds[0] ? auds[0] : "",
                        .now = (int64_t)time(NULL),
                        .skew = 60};
        return jwt_verify(token, n, v->n ? v->t[0].ks : &no_keys, &w, out, err);
    }
    if (t->audience[0]) {
        jwt_claims_free(out);
        jwt_expect w = {.issuer = t->issuer, .audience = t->audience, .now = (int64_t)time(NULL), .skew = 60};
        return jwt_verify(token, n, t->ks, &w, out, err);
    }
    int rc = JWT_ERR_AUDIENCE;
    for (size_t i = 0; auds[i]; i++) {
        jwt_claims_free(out);
        jwt_expect w = {.issuer = t->issuer, .audience = auds[i], .now = (int64_t)time(NULL), .skew = 60};
        rc = jwt_verify(token, n, t->ks, &w, out, err);
        if (rc != JWT_ERR_AUDIENCE)
            return rc;
    }
    return rc;
}
