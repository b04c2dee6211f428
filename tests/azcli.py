"""The real az CLI, signed in offline against a running arc-hub.

Each Az object has its own AZURE_CONFIG_DIR, registers a cloud from the
hub's ARM metadata endpoint (as a cloud config file), and signs in by
one of the routes arc-hub's demo issuer supports: service principal
(client credentials against /adfs), managed identity
(MSI_ENDPOINT=/msi/token), or as a person: user name and password, or
the device code completed on the hub's /adfs/devicelogin page. See ../shared/design/arm-and-cli.md."""
import glob
import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

AZ = os.environ.get("CK_AZ", "/usr/bin/az")
# The latest azure-cli from PyPI that scripts/install-deps pins, newest last.
PYPI_AZ = sorted(glob.glob(os.path.expanduser("~/.cache/connectedk8s/az-pypi/*/bin/az")))


def offline_env(config_dir):
    """The environment the tests run az in: its own profile in config_dir,
    no telemetry, no dynamic extension install, no colour or advice."""
    env = dict(os.environ)
    env.update({
        "AZURE_CONFIG_DIR": config_dir,
        "AZURE_CORE_COLLECT_TELEMETRY": "false",
        "AZURE_EXTENSION_USE_DYNAMIC_INSTALL": "no",
        "AZURE_CORE_ERROR_RECOMMENDATION": "off",
        "AZURE_CORE_NO_COLOR": "true",
        "AZURE_CORE_ONLY_SHOW_ERRORS": "false",
    })
    return env


def dev_directory(n_groups_carol=250):
    """A directory for tests: an owner service principal and three users
    (alice and bob ordinary, carol in more groups than fit in a token)."""
    ids = {k: str(uuid.uuid4()) for k in ("tenant", "sub", "admin", "admin_app", "alice", "bob", "carol")}
    groups = [str(uuid.uuid4()) for _ in range(n_groups_carol)]
    return ids, {
        "tenantId": ids["tenant"],
        "subscriptions": [{"subscriptionId": ids["sub"], "displayName": "ck-test"}],
        "owners": [ids["admin"]],
        "msiEndpoint": True,
        "principals": [
            {"name": "admin", "type": "ServicePrincipal", "objectId": ids["admin"], "appId": ids["admin_app"],
             "secret": "admin-secret-" + ids["admin"][:8]},
            {"name": "alice@example.test", "type": "User", "objectId": ids["alice"], "password": "alice-pw",
             "groups": ["g-alice"]},
            {"name": "bob@example.test", "type": "User", "objectId": ids["bob"], "password": "bob-pw"},
            {"name": "carol@example.test", "type": "User", "objectId": ids["carol"], "password": "carol-pw",
             "groups": groups},
        ],
    }


class Az:
    def __init__(self, hub, az=AZ):
        self.hub, self.az = hub, az
        self.dir = tempfile.mkdtemp(prefix="ck-az-")
        self.base = "https://127.0.0.1:%d" % hub.port
        self.env = offline_env(self.dir)
        self.env["REQUESTS_CA_BUNDLE"] = hub.ca
        self.register_cloud()

    def register_cloud(self, name="archub"):
        """`az cloud register --cloud-config @file` with the hub's
        /metadata/endpoints, as README tells users: az 2.45 learns the
        Microsoft Graph endpoint only from a cloud config (with
        --endpoint-resource-manager alone `az ad ...` says
        "microsoft_graph_resource_id ... is not set")."""
        ctx = ssl.create_default_context(cafile=self.hub.ca)
        with urllib.request.urlopen(self.base + "/metadata/endpoints?api-version=2022-09-01", context=ctx,
                                    timeout=10) as r:
            meta = r.read().decode()
        path = os.path.join(self.dir, "cloud.json")
        with open(path, "w") as f:
            f.write(meta)
        self.run("cloud", "register", "-n", name, "--cloud-config", "@" + path)
        self.run("cloud", "set", "-n", name)

    def run(self, *args, check=True, timeout=120, env=None, **kw):
        e = dict(self.env)
        e.update(env or {})
        r = subprocess.run([self.az, *args], env=e, capture_output=True, text=True, timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise AssertionError("az %s failed (%d):\n%s\n%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def json(self, *args, **kw):
        return json.loads(self.run(*args, "-o", "json", **kw).stdout or "null")

    def login_sp(self, app_id, secret, tenant):
        return self.json("login", "--service-principal", "-u", app_id, "-p", secret, "--tenant", tenant)

    def login_user(self, upn, password, check=True):
        """`az login -u UPN -p PASSWORD` (MSAL's username-password flow
        against the hub's /adfs authority). Returns the CompletedProcess;
        with check, its subscriptions (JSON)."""
        r = self.run("login", "-u", upn, "-p", password, "-o", "json", check=check)
        return json.loads(r.stdout) if check else r

    def login_device_code(self, upn, password, code_typed=None, timeout=90):
        """`az login --use-device-code`, completed as a person would: the
        page az names is fetched and its form posted with a plain HTTP
        client (code, user name, password). `code_typed` replaces the code
        az printed (to type it differently, or wrongly). Returns (the
        CompletedProcess of az, the page's HTTP status)."""
        p = subprocess.Popen([self.az, "login", "--use-device-code", "-o", "json"], env=self.env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # az prints MSAL's message on stderr, then polls.
            line, seen = "", ""
            deadline = time.time() + 60
            while "enter the code" not in line:
                line = p.stderr.readline()
                seen += line
                if (not line and p.poll() is not None) or time.time() > deadline:
                    raise AssertionError("az printed no device code:\n" + seen + p.stderr.read())
            m = re.search(r"open the page (\S+) and enter the code (\S+)", line)
            page, code = m.group(1), m.group(2)
            status = self.post_form(page, {"code": code_typed or code, "username": upn, "password": password})
            if status != 200:
                p.kill()
            out, err = p.communicate(timeout=timeout)
        except BaseException:
            p.kill()
            p.communicate()
            raise
        return subprocess.CompletedProcess(p.args, p.returncode, out, seen + err), status

    def post_form(self, url, fields):
        """POSTs an HTML form; returns the HTTP status."""
        ctx = ssl.create_default_context(cafile=self.hub.ca)
        req = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def graph(self, method, path, body=None, check=True):
        """`az rest` against the hub's Microsoft Graph (token for the Graph
        audience of the signed-in identity)."""
        url = self.base + "/graph/v1.0" + path
        args = ["rest", "--method", method, "--url", url, "--resource", self.base + "/graph/"]
        if body is not None:
            args += ["--body", json.dumps(body)]
        return self.run(*args, "-o", "json", check=check)

    def login_msi(self, object_id):
        """Managed-identity route; the endpoint variables stay set for later
        calls. Older az reads MSI_ENDPOINT, newer az (MSAL) the App Service
        pair IDENTITY_ENDPOINT/IDENTITY_HEADER."""
        self.env["MSI_ENDPOINT"] = self.base + "/msi/token"
        self.env["IDENTITY_ENDPOINT"] = self.base + "/msi/token"
        self.env["IDENTITY_HEADER"] = "connectedk8s-dev"
        r = self.run("login", "--identity", "--username", object_id, "-o", "json", check=False)
        if "--object-id" in r.stderr:  # azure-cli >= 2.69 names the identity this way
            r = self.run("login", "--identity", "--object-id", object_id, "-o", "json")
        elif r.returncode:
            raise AssertionError("az login --identity failed:\n" + r.stdout + r.stderr)
        return json.loads(r.stdout)

    def rest(self, method, path, body=None, api="2024-01-01", check=True):
        sep = "&" if "?" in path else "?"
        args = ["rest", "--method", method, "--url", self.base + path + (sep + "api-version=" + api if api else "")]
        if body is not None:
            args += ["--body", body if isinstance(body, str) else json.dumps(body)]
        return self.run(*args, "-o", "json", check=check)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)
