/* libFuzzer target: arc-hub's JSON configuration loader (files are input). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hubcfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    hubcfg cfg;
    char err[256];
    if (hubcfg_parse(buf, size, &cfg, err) == 0)
        hubcfg_free(&cfg);
    free(buf);
    return 0;
}
