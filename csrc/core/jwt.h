/* jwt: verification of JSON Web Tokens from OIDC issuers (Entra ID and
 * others), as the agent needs it: RS256 and ES256 signatures checked
 * against a JWKS key set, then issuer, audience, expiry and not-before
 * with a small clock skew. "none", HMAC algorithms and anything else are
 * refused: an HMAC "signature" made with a public key must never pass.
 *
 * Claims the agent maps to Kubernetes impersonation are copied out:
 * oid and sub, upn, what tells an application's token from a user's
 * (idtyp, appid or azp, whether scp is present), groups, and whether the
 * groups overflowed into a `_claim_names`/`hasgroups` overage marker. The
 * agent's ident.c decides from these whom to impersonate. */
#ifndef CK_JWT_H
#define CK_JWT_H
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_TOKEN 16384
#define JWT_MAX_GROUPS 1024
#define JWT_ERRLEN 160

enum {
    JWT_OK = 0,
    JWT_ERR_MALFORMED = -1,
    JWT_ERR_ALG = -2,
    JWT_ERR_UNKNOWN_KEY = -3,
    JWT_ERR_SIGNATURE = -4,
    JWT_ERR_EXPIRED = -5,
    JWT_ERR_NOT_YET_VALID = -6,
    JWT_ERR_ISSUER = -7,
    JWT_ERR_AUDIENCE = -8,
    JWT_ERR_NOMEM = -9, /* the token may be fine: memory ran out reading it */
};

typedef struct jwt_key {
    char kid[128];
    int alg; /* JWT_ALG_* the key may verify */
    EVP_PKEY *pkey;
} jwt_key;

enum { JWT_ALG_RS256 = 1, JWT_ALG_ES256 = 2 };

typedef struct jwt_keyset {
    jwt_key *keys;
    size_t n;
} jwt_keyset;

/* Parses a JWKS document ({"keys":[...]}). RSA keys (n, e) and EC P-256
 * keys (x, y) are kept; other kinds are skipped. Returns the number of
 * usable keys (>= 0) or -1 with a sentence in err. */
int jwt_keyset_parse(const char *json, size_t n, jwt_keyset *ks, char err[JWT_ERRLEN]);
void jwt_keyset_free(jwt_keyset *ks);

typedef struct jwt_claims {
    char iss[512];
    char sub[256];
    char oid[128];
    char tid[128];
    char name[256];  /* preferred_username, upn or unique_name, for logs */
    char upn[256];   /* the upn claim alone (members of the tenant; guests and apps have none) */
    char idtyp[16];  /* "app" or "user" when the token says (Entra's idtyp claim) */
    char appid[128]; /* appid (v1) else azp (v2): the client the token was issued to */
    int has_scp;     /* a scp claim: delegated (user) permissions; app-only tokens carry roles */
    int64_t exp, nbf, iat;
    char **groups;
    size_t ngroups;
    int groups_overage;
} jwt_claims;

void jwt_claims_free(jwt_claims *c);

typedef struct jwt_expect {
    const char *issuer;   /* exact match */
    const char *audience; /* must appear in aud (string or array) */
    int64_t now;
    int skew; /* seconds of clock skew allowed (e.g. 60) */
} jwt_expect;

/* Verifies `token` and fills *out (free with jwt_claims_free, also after a
 * failure). Returns JWT_OK or a JWT_ERR_* with a sentence in err. */
int jwt_verify(const char *token, size_t n, const jwt_keyset *ks, const jwt_expect *want, jwt_claims *out,
               char err[JWT_ERRLEN]);

/* Reads the unverified issuer of a token into out (to pick the verifier or
 * decide the token is not ours). Returns 0 or -1. */
int jwt_peek_issuer(const char *token, size_t n, char *out, size_t cap);

const char *jwt_strerror(int rc);

/* Issuing, for arc-hub's test and demo identity provider: signs
 * `payload_json` as an RS256 JWT with header {"alg":"RS256","typ":"JWT",
 * "kid":kid}. Writes a NUL-terminated token; returns its length or -1
 * (key not RSA, or cap too small). */
long jwt_sign_rs256(EVP_PKEY *key, const char *kid, const char *payload_json, char *out, size_t cap);
/* The public half of an RSA key as one JWK object
 * {"kty":"RSA","use":"sig","alg":"RS256","kid":...,"n":...,"e":...}.
 * Returns the length written or -1. */
long jwt_jwk_rsa(EVP_PKEY *key, const char *kid, char *out, size_t cap);
/* A stable key id: hex of the first 8 bytes of SHA-256 over the modulus. */
int jwt_kid_rsa(EVP_PKEY *key, char out[17]);

#endif
