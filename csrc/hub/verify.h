/* verify: who the control plane believes. Every bearer token an ARM
 * caller presents is checked here (signature through the issuer's keys,
 * issuer, audience, expiry with a minute of skew), against a short list
 * of trusted issuers: a production hub trusts Entra ID or another OIDC
 * provider (--trust-issuer, keys from a JWKS file); a development hub
 * also trusts its own demo issuer (idp.c), whose keys main.c adds unless
 * the demo issuer is left out (--no-demo-issuer).
 *
 * An issuer trusted with a fixed audience accepts only that audience; one
 * trusted without (the demo issuer) accepts any of the audiences the
 * caller lists. */
#ifndef CK_VERIFY_H
#define CK_VERIFY_H
#include <stddef.h>

#include "jwt.h"

#define VERIFY_ISSUERS_MAX 8

typedef struct verify verify_t;

verify_t *verify_new(void);
void verify_free(verify_t *v);

/* Trusts `issuer` (exact iss) for tokens for `audience`, signed by a key
 * of the JWKS file at jwks_path (read now). Returns 0 or -1 with a
 * sentence in err. */
int verify_trust_jwks_file(verify_t *v, const char *issuer, const char *audience, const char *jwks_path,
                           char err[256]);
/* Trusts `issuer` with keys the caller keeps alive as long as v (the demo
 * issuer's own), for any audience the caller of verify_token lists.
 * Returns 0 or -1. */
int verify_trust_keys(verify_t *v, const char *issuer, const jwt_keyset *ks);

/* Verifies a bearer token for one of `auds` (NULL-terminated) from the
 * issuer it names, which must be trusted. Returns JWT_OK or a JWT_ERR_*
 * with a sentence in err; claims in out (the caller frees them). */
int verify_token(const verify_t *v, const char *token, size_t n, const char *const *auds, jwt_claims *out,
                 char err[JWT_ERRLEN]);

#endif
