/* libFuzzer target: the proxy's kubeconfig merge (a user's file is input).
 * Whatever it accepts, its output must merge again to the same text: a
 * rewrite that drifts would slowly corrupt users' files. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kubeconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const kcfg_entry e = {.cluster = "c1",
                                 .server = "https://127.0.0.1:47011",
                                 .ca_data = "Q0E=",
                                 .user = "u1",
                                 .client_cert_data = "QQ==",
                                 .client_key_data = "Qg==",
                                 .context = "c1"};
    char *in = malloc(size ? size : 1);
    memcpy(in, data, size);
    char *out = NULL, *again = NULL, err[KCFG_ERRLEN];
    size_t n = 0, n2 = 0;
    if (kcfg_merge(in, size, &e, &out, &n, err) == 0) {
        if (kcfg_merge(out, n, &e, &again, &n2, err) != 0 || n2 != n || memcmp(out, again, n) != 0)
            abort();
    }
    free(out);
    free(again);
    free(in);
    return 0;
}
