/* json: cJSON trees whose allocation failures are not lost.
 *
 * cJSON_Add*() and cJSON_Create*() return NULL when malloc fails, and a
 * tree built from a dozen such calls silently lacks the members whose
 * allocation failed: printed, it is valid JSON that says something else
 * (a claims set without "groups", a stored resource without
 * "properties"). Checking every call hides what the code builds, so the
 * failures are counted instead: json_init() routes cJSON's allocations
 * through a counting malloc, and a builder takes json_failures() before it
 * starts and hands the mark to json_print(), which refuses to print a tree
 * that lost a member on the way.
 *
 * The count is per thread, and only moves after json_init(); without it
 * (the Python module, tests) json_print() reports only its own failure. */
#ifndef CK_JSON_H
#define CK_JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* Installs the counting allocator over `alloc` (NULL: malloc; tests pass
 * one that fails on demand); memory is released with free(). Call before
 * building trees, from the program's start-up, not from library code: the
 * hooks are cJSON's process-wide state. */
void json_init(void *(*alloc)(size_t));

/* cJSON allocations that failed on this thread so far. */
unsigned json_failures(void);

/* The tree as text (malloc'd; free() it), unformatted or, with pretty,
 * indented. NULL when printing failed or when any cJSON allocation failed
 * since `mark` (a json_failures() value), so that an incomplete tree is
 * never sent or stored. o may be NULL (the result is then NULL). */
char *json_print(const cJSON *o, unsigned mark, int pretty);

#endif
