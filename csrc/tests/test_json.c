/* Unit tests for json: a tree that lost a member to a failed allocation is
 * never printed, whichever allocation failed. */
#include "check.h"
#include "json.h"

static int tests_run;
static long fail_at = -1; /* which allocation fails (0-based), -1: none */
static long calls;

static void *flaky_malloc(size_t n)
{
    return calls++ == fail_at ? NULL : malloc(n);
}

/* cJSON_AddItemToArray does not take the item when it fails (no array). */
static void push(cJSON *arr, const char *s)
{
    cJSON *it = cJSON_CreateString(s);
    if (!cJSON_AddItemToArray(arr, it))
        cJSON_Delete(it);
}

/* What the hub builds: nested objects, arrays and created strings. */
static char *build(void)
{
    unsigned mark = json_failures();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", "/subscriptions/s/rg/x");
    cJSON *p = cJSON_AddObjectToObject(o, "properties");
    cJSON_AddNumberToObject(p, "totalNodeCount", 3);
    cJSON *g = cJSON_AddArrayToObject(p, "groups");
    push(g, "admins");
    push(g, "viewers");
    cJSON_AddBoolToObject(o, "enabled", 1);
    char *s = json_print(o, mark, 0);
    cJSON_Delete(o);
    return s;
}

static void complete_tree_prints(void)
{
    json_init(flaky_malloc);
    fail_at = -1;
    char *s = build();
    CHECK_STR(s, "{\"id\":\"/subscriptions/s/rg/x\",\"properties\":{\"totalNodeCount\":3,"
                 "\"groups\":[\"admins\",\"viewers\"]},\"enabled\":true}");
    free(s);
}

static void any_failed_allocation_refuses(void)
{
    calls = 0;
    fail_at = -1;
    free(build());
    long total = calls; /* allocations a complete build and print make */
    CHECK(total > 10);
    for (long k = 0; k < total; k++) {
        unsigned before = json_failures();
        calls = 0;
        fail_at = k;
        char *s = build();
        if (s) {
            fprintf(stderr, "allocation %ld of %ld failed, yet printed: %s\n", k, total, s);
            free(s);
        }
        CHECK(s == NULL);
        CHECK_EQ(json_failures(), before + 1);
    }
    fail_at = -1;
    json_init(NULL);
    char *s = build(); /* earlier failures do not poison later trees */
    CHECK(s != NULL);
    free(s);
}

static void null_and_pretty(void)
{
    CHECK(json_print(NULL, json_failures(), 0) == NULL);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "a", "b");
    char *s = json_print(o, json_failures(), 1);
    CHECK_STR(s, "{\n\t\"a\":\t\"b\"\n}");
    free(s);
    cJSON_Delete(o);
}

int main(void)
{
    TEST(complete_tree_prints);
    TEST(any_failed_allocation_refuses);
    TEST(null_and_pretty);
    TEST_MAIN_END();
}
