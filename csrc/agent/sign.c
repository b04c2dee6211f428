/* sign: the agent JWT, signed once per lifetime. See sign.h. */
#include "sign.h"

#include <cjson/cJSON.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "enc.h"
#include "json.h"
#include "jwt.h"

#define LIFETIME_S 300
#define RENEW_BEFORE_S 60
#define TOKEN_MAX 4096

struct sign {
    EVP_PKEY *key;
    char iss[1024], aud[600];
    char tok[TOKEN_MAX];
    int64_t exp;
    uint64_t signed_n;
};

sign_t *sign_open(const char *key_file, const char *resource_id, const char *hub, char err[256])
{
    FILE *f = fopen(key_file, "r");
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA) {
        snprintf(err, 256, "--identity-key %s is not an RSA private key (PEM)", key_file);
        EVP_PKEY_free(k);
        return NULL;
    }
    sign_t *s = calloc(1, sizeof *s);
    if (!s || strlen(resource_id) >= sizeof s->iss || strlen(hub) + 7 > sizeof s->aud) {
        snprintf(err, 256, s ? "--resource-id or --hub is too long" : "out of memory");
        free(s);
        EVP_PKEY_free(k);
        return NULL;
    }
    s->key = k;
    snprintf(s->iss, sizeof s->iss, "%s", resource_id);
    snprintf(s->aud, sizeof s->aud, "%s/agent", hub);
    return s;
}

void sign_close(sign_t *s)
{
    if (!s)
        return;
    EVP_PKEY_free(s->key);
    free(s);
}

const char *sign_token(sign_t *s)
{
    int64_t now = (int64_t)time(NULL);
    if (s->tok[0] && now + RENEW_BEFORE_S < s->exp)
        return s->tok;
    char jti[37];
    enc_uuid4(jti);
    unsigned mark = json_failures(); /* never sign claims that lost one (no "exp") */
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "iss", s->iss);
    cJSON_AddStringToObject(c, "sub", s->iss);
    cJSON_AddStringToObject(c, "aud", s->aud);
    cJSON_AddNumberToObject(c, "iat", (double)now);
    cJSON_AddNumberToObject(c, "nbf", (double)now);
    cJSON_AddNumberToObject(c, "exp", (double)(now + LIFETIME_S));
    cJSON_AddStringToObject(c, "jti", jti);
    char *payload = json_print(c, mark, 0);
    cJSON_Delete(c);
    int ok = payload && jwt_sign_rs256(s->key, "agent", payload, s->tok, sizeof s->tok) >= 0;
    free(payload);
    if (!ok) {
        s->tok[0] = '\0';
        return NULL;
    }
    s->exp = now + LIFETIME_S;
    s->signed_n++;
    return s->tok;
}

uint64_t sign_count(const sign_t *s)
{
    return s ? s->signed_n : 0;
}
