/* enc: byte encodings used on the wire (base64, percent-encoding, hex).
 *
 * Every function writes into a caller-supplied buffer of known size and
 * returns the number of bytes written, or -1 when the input is invalid or
 * the output would not fit. Nothing here allocates. */
#ifndef CK_ENC_H
#define CK_ENC_H
#include <stddef.h>
#include <stdint.h>

/* Size of the base64 text (without NUL) for n input bytes. */
#define ENC_B64_LEN(n) ((((n) + 2) / 3) * 4)

/* Standard base64 with padding. Writes a terminating NUL (cap must allow it). */
long enc_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap);
/* Decodes standard base64 (padding required for the last quantum, no
 * whitespace). */
long enc_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap);

/* Base64url without padding (JWT, JWKS); padding is tolerated on input. */
long enc_b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap);
long enc_b64url_encode(const uint8_t *in, size_t n, char *out, size_t cap);

/* Percent-decodes in[0..n) ('+' stays '+': these are URL components, not
 * form bodies). Rejects truncated escapes. Writes a NUL after the result. */
long enc_pct_decode(const char *in, size_t n, char *out, size_t cap);
/* Percent-encodes everything but RFC 3986 unreserved characters, with
 * upper-case hex like .NET's and Node's encoders. Writes a NUL. */
long enc_pct_encode(const char *in, size_t n, char *out, size_t cap);

/* Lower-case hex; writes a NUL. */
long enc_hex(const uint8_t *in, size_t n, char *out, size_t cap);

/* A random (version 4) UUID in lower case, as ARM and Entra print them.
 * Returns 0 or -1. */
int enc_uuid4(char out[37]);

/* Fills buf with n bytes from the OS CSPRNG. Returns 0 or -1. */
int enc_random(uint8_t *buf, size_t n);

#endif
