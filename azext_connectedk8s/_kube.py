"""The cluster side of connect/delete/enable-features: server-side apply
with the user's kubeconfig, through kubectl (which anyone managing the
cluster has)."""
import json
import shutil
import subprocess

from azure.cli.core.azclierror import CLIInternalError, ValidationError


def _kubectl(kube_config, kube_context):
    exe = shutil.which("kubectl")
    if not exe:
        err = ValidationError("kubectl was not found on PATH; it is needed to install the agent into the cluster.")
        err.set_recommendation("Install kubectl (https://kubernetes.io/docs/tasks/tools/) or put it on PATH.")
        raise err
    cmd = [exe]
    if kube_config:
        cmd += ["--kubeconfig", kube_config]
    if kube_context:
        cmd += ["--context", kube_context]
    return cmd


def run(kube_config, kube_context, *args, stdin=None, check=True, timeout=120):
    r = subprocess.run(_kubectl(kube_config, kube_context) + list(args), input=stdin, capture_output=True,
                       text=True, timeout=timeout)
    if check and r.returncode != 0:
        err = CLIInternalError("kubectl %s failed: %s" % (args[0], (r.stderr or r.stdout).strip()[:2000]))
        err.set_recommendation("Check that --kube-config/--kube-context reach the cluster with rights to create "
                               "namespaces, RBAC objects, secrets and deployments.")
        raise err
    return r


def server_version(kube_config, kube_context):
    r = run(kube_config, kube_context, "version", "-o", "json", "--request-timeout=20s")
    return json.loads(r.stdout).get("serverVersion", {}).get("gitVersion", "")


def apply(kube_config, kube_context, objects):
    doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    run(kube_config, kube_context, "apply", "--server-side", "--field-manager=connectedk8s", "--force-conflicts",
        "-f", "-", stdin=doc)


def delete(kube_config, kube_context, kinds, selector):
    return run(kube_config, kube_context, "delete", kinds, "-l", selector, "--ignore-not-found", "--wait=false",
               check=False)
