/* libFuzzer target: JWKS documents and JWTs. The first byte chooses which
 * parser gets the rest; tokens are verified against a fixed key set, and
 * nothing random may ever verify. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jwt.h"

static jwt_keyset ks;
static int ready;

static const char jwks[] = "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"e1\",\"crv\":\"P-256\","
                           "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\",\"y\":\"x_FEzRu9m36HLN_"
                           "tue659LNpXW6pCyStikYjKIWI5a0\"}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[JWT_ERRLEN];
    if (!ready) {
        jwt_keyset_parse(jwks, sizeof jwks - 1, &ks, err);
        ready = 1;
    }
    if (size < 1)
        return 0;
    char *buf = malloc(size);
    memcpy(buf, data + 1, size - 1);
    if (data[0] & 1) {
        jwt_keyset k;
        if (jwt_keyset_parse(buf, size - 1, &k, err) >= 0)
            jwt_keyset_free(&k);
    } else {
        jwt_claims c;
        jwt_expect w = {"iss", "aud", (int64_t)time(NULL), 60};
        if (jwt_verify(buf, size - 1, &ks, &w, &c, err) == JWT_OK)
            abort();
        jwt_claims_free(&c);
        char iss[256];
        jwt_peek_issuer(buf, size - 1, iss, sizeof iss);
    }
    free(buf);
    return 0;
}
