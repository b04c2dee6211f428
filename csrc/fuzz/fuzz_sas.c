/* libFuzzer target: SAS token parsing, normalisation and authorization. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sas.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *tok = malloc(size ? size : 1);
    memcpy(tok, data, size);
    sas_token t;
    if (sas_parse(tok, size, &t) == SAS_OK) {
        char norm[1024];
        sas_normalize(t.sr, t.sr_len, norm, sizeof norm);
        sas_check_sig(&t, "fuzzkeyfuzzkeyfuzzkey");
    }
    sas_rule ns[] = {
        {"root", "fuzzkeyfuzzkeyfuzzkey", SAS_RIGHT_MANAGE}
    };
    int64_t exp;
    int rc = sas_authorize(tok, size, NULL, 0, ns, 1, "relay.test", "hyco", SAS_RIGHT_LISTEN, 0, &exp);
    /* Random bytes must never authorize: that needs a valid HMAC. */
    if (rc == SAS_OK)
        abort();
    free(tok);
    return 0;
}
