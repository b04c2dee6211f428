/* cert: small X.509 factory for development CAs and per-session
 * certificates (EC P-256, SHA-256). Nothing here is meant to replace a
 * real PKI: arc-hub's --dev mode and the proxy's session CA use it. */
#ifndef CK_CERT_H
#define CK_CERT_H
#include <openssl/evp.h>
#include <openssl/x509.h>

#define CERT_ERRLEN 256

/* A self-signed CA valid for `days` days. */
int cert_make_ca(const char *cn, int days, EVP_PKEY **key, X509 **crt, char err[CERT_ERRLEN]);
/* A leaf signed by the CA. `sans` is an OpenSSL subjectAltName list such as
 * "DNS:localhost,IP:127.0.0.1" (may be NULL for client certificates);
 * `server` selects serverAuth or clientAuth extended key usage. */
int cert_make_leaf(EVP_PKEY *ca_key, X509 *ca, const char *cn, const char *sans, int server, int days,
                   EVP_PKEY **key, X509 **crt, char err[CERT_ERRLEN]);
/* Writes the certificate (and the key, when non-NULL) as PEM. Files are
 * created with mode 0600 through a temporary name and renamed into place. */
int cert_write_pem(const char *path, X509 *crt, EVP_PKEY *key, char err[CERT_ERRLEN]);
/* PEM text of a certificate or key in malloc'd memory (caller frees). */
char *cert_pem(X509 *crt);
char *cert_key_pem(EVP_PKEY *key);
/* The public half as base64 DER SubjectPublicKeyInfo (what a
 * connectedCluster's agentPublicKeyCertificate holds), malloc'd. */
char *cert_pubkey_b64(EVP_PKEY *key);

#endif
