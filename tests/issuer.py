"""Test fixture: an OIDC-style token issuer for the agent tests. It makes
an RSA key with the openssl CLI, publishes it as a JWKS file and mints
RS256 JWTs with any claims (and, for negative tests, broken ones). The
real issuers are Entra ID or arc-hub's demo issuer (issue 4)."""
import base64
import json
import os
import subprocess
import time


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class TestIssuer:
    __test__ = False  # a fixture, not a test class

    def __init__(self, d, issuer="https://issuer.test/tenant/v2.0", audience="api://clusterconnect", kid="k1"):
        self.dir, self.issuer, self.audience, self.kid = d, issuer, audience, kid
        self.key = os.path.join(d, "issuer.key")
        self.other_key = os.path.join(d, "other.key")
        for k in (self.key, self.other_key):
            if not os.path.exists(k):
                subprocess.run(["openssl", "genrsa", "-out", k, "2048"], check=True, capture_output=True)
        mod = subprocess.run(["openssl", "rsa", "-in", self.key, "-noout", "-modulus"], check=True,
                             capture_output=True, text=True).stdout.strip().split("=", 1)[1]
        n = bytes.fromhex(mod)
        self.jwks_file = os.path.join(d, "jwks.json")
        with open(self.jwks_file, "w") as f:
            json.dump({"keys": [{"kty": "RSA", "use": "sig", "kid": kid, "alg": "RS256", "n": b64u(n),
                                 "e": b64u((65537).to_bytes(3, "big"))}]}, f)

    def mint(self, oid, groups=(), aud=None, ttl=600, nbf=None, alg="RS256", kid=None, key=None, extra=None,
             upn=None, idtyp=None, omit=()):
        """A signed token for object id `oid`. `upn` and `idtyp` add those
        Entra claims; `extra` adds or replaces any claim; `omit` drops
        default claims (an app-only token has no preferred_username)."""
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": aud or self.audience, "exp": now + ttl, "nbf": nbf or now - 5,
                  "iat": now - 5, "oid": oid, "sub": "sub-" + oid, "tid": "tenant",
                  "preferred_username": oid + "@example.test"}
        if groups:
            claims["groups"] = list(groups)
        if upn is not None:
            claims["upn"] = upn
        if idtyp is not None:
            claims["idtyp"] = idtyp
        claims.update(extra or {})
        for name in omit:
            claims.pop(name, None)
        header = {"alg": alg, "typ": "JWT", "kid": kid or self.kid}
        signing = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(claims).encode())
        if alg == "none":
            return signing + "."
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key or self.key], input=signing.encode(),
                             check=True, capture_output=True).stdout
        return signing + "." + b64u(sig)
