/* file: the one bounded whole-file reader and the one atomic file writer
 * of the core and the daemons.
 *
 * Both open with O_CLOEXEC (the core lives inside az and the daemons,
 * which may start other programs), and both refuse what they cannot do
 * whole: a file larger than the caller's ceiling is not read partly, and
 * a file is replaced only by a complete, fsync'd copy. */
#ifndef CK_FILE_H
#define CK_FILE_H
#include <stddef.h>
#include <sys/types.h>

#define FILE_ERRLEN 256

/* Reads the regular file at `path`, at most `max` bytes, into a malloc'd
 * buffer with a NUL after the last byte (the caller frees it); *n gets
 * the length. Returns NULL with a sentence in err when the file cannot be
 * opened or read, is not a regular file or is larger than max; errno is
 * then ENOENT when it does not exist (callers for which a missing file
 * is an empty one test that), EFBIG when too large. */
char *file_read(const char *path, size_t max, size_t *n, char err[FILE_ERRLEN]);

#define FILE_NO_REPLACE 1 /* fail (EEXIST) when `path` exists, instead of replacing it */

/* Replaces (or with FILE_NO_REPLACE creates) `path` with `len` bytes of
 * `data`, atomically: they go to a temporary file in the same directory,
 * created with `mode` (then set to exactly `mode`, whatever the umask),
 * which is fsync'd and renamed over `path` (linked, for FILE_NO_REPLACE);
 * then the directory is fsync'd so that the new name survives a power
 * loss. Readers see the old file or the new one, never a part. Returns 0,
 * or -1 with a sentence in err and `path` unchanged. */
int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, int flags,
                      char err[FILE_ERRLEN]);

#endif
