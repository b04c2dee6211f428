/* json: counted cJSON allocations. See json.h. */
#include "json.h"

#include <stdlib.h>

static _Thread_local unsigned failures;
static void *(*underlying)(size_t) = malloc;

static void *counting_malloc(size_t n)
{
    void *p = underlying(n);
    if (!p)
        failures++;
    return p;
}

void json_init(void *(*alloc)(size_t))
{
    underlying = alloc ? alloc : malloc;
    cJSON_Hooks h = {.malloc_fn = counting_malloc, .free_fn = free};
    cJSON_InitHooks(&h);
}

unsigned json_failures(void)
{
    return failures;
}

char *json_print(const cJSON *o, unsigned mark, int pretty)
{
    if (!o)
        return NULL;
    char *s = pretty ? cJSON_Print(o) : cJSON_PrintUnformatted(o);
    if (s && failures != mark) {
        free(s);
        return NULL;
    }
    return s;
}
