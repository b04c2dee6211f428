"""Packs a one-layer container image from a list of files, with no daemon
and no registry, into one tar that is both an OCI image layout
(oci-layout, index.json, blobs/sha256/...) and a docker-archive
(manifest.json naming the same blobs), so `ctr images import`,
`skopeo copy oci-archive:...` and `docker load` all read it.

Reproducible: every tar entry has mtime SOURCE_DATE_EPOCH (default 0),
the owner given (no user or group names), entries in sorted order, gzip
with no timestamp, JSON with sorted keys and no creation time. The same
inputs give the same bytes, hence the same manifest digest.

    img = Image()
    img.dir("/etc"); img.file("/etc/passwd", data=b"...", mode=0o644)
    img.file("/usr/bin/x", src="build/bin/x", mode=0o755); img.symlink("/bin/sh", "busybox")
    digest = img.write("out.tar", "clusterconnect-agent:0.1.0", entrypoint=["/usr/bin/x"], user="65532:65532")
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile

EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
INDEX = "application/vnd.oci.image.index.v1+json"


def full_ref(ref):
    """The name containerd and the kubelet look an image up by: a reference
    with no registry is on docker.io, one with no repository path in
    library/ (as `docker pull` reads it)."""
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = "docker.io/" + ("library/" + name if "/" not in name else name)
    return "%s:%s" % (name, tag)


def _json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class Image:
    def __init__(self):
        self.entries = {}  # path in the image (no leading /) -> (kind, data or target, mode, uid, gid)

    def _parents(self, path):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.entries.setdefault("/".join(parts[:i]), ("dir", None, 0o755, 0, 0))

    def dir(self, path, mode=0o755, uid=0, gid=0):
        p = path.strip("/")
        self._parents(p)
        self.entries[p] = ("dir", None, mode, uid, gid)

    def file(self, path, data=None, src=None, mode=0o644, uid=0, gid=0):
        """A regular file from bytes or from a file on this machine (its
        content, never its owner, mode or time)."""
        if src is not None:
            with open(src, "rb") as f:
                data = f.read()
        p = path.strip("/")
        self._parents(p)
        self.entries[p] = ("file", data, mode, uid, gid)

    def symlink(self, path, target):
        p = path.strip("/")
        self._parents(p)
        self.entries[p] = ("symlink", target, 0o777, 0, 0)

    def shared_libraries(self, binary):
        """Adds the shared libraries `binary` loads, and the dynamic loader,
        at the paths this machine's loader resolves them to (ldd), so the
        image runs it as this machine does."""
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) > parts.index("=>") + 1 and parts[parts.index("=>") + 1].startswith("/"):
                path = parts[parts.index("=>") + 1]
            elif parts and parts[0].startswith("/"):
                path = parts[0]  # the loader itself
            else:
                continue  # linux-vdso: in the kernel
            self.file(path, src=os.path.realpath(path), mode=0o755)

    def layer(self):
        """The layer tar, uncompressed."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            for p in sorted(self.entries):
                kind, data, mode, uid, gid = self.entries[p]
                ti = tarfile.TarInfo(p)
                ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = EPOCH, mode, uid, gid, "", ""
                if kind == "dir":
                    ti.type = tarfile.DIRTYPE
                    t.addfile(ti)
                elif kind == "symlink":
                    ti.type, ti.linkname = tarfile.SYMTYPE, data
                    t.addfile(ti)
                else:
                    ti.size = len(data)
                    t.addfile(ti, io.BytesIO(data))
        return buf.getvalue()

    def write(self, out, ref, entrypoint=None, cmd=None, user="", env=("PATH=/usr/local/bin:/usr/bin:/bin",),
              labels=None):
        """Writes the image archive to `out`; returns the manifest digest
        (sha256:...), the image's identity in every registry."""
        raw = self.layer()
        layer = gzip.compress(raw, compresslevel=9, mtime=0)
        cfg = {"architecture": "amd64", "os": "linux",
               "config": {"Env": list(env), "User": user, "WorkingDir": "/", "Labels": labels or {},
                          **({"Entrypoint": entrypoint} if entrypoint else {}), **({"Cmd": cmd} if cmd else {})},
               "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
               "history": [{"created_by": "scripts/ociimage.py"}]}
        config = _json(cfg)
        blobs = {}

        def blob(data, media):
            d = hashlib.sha256(data).hexdigest()
            blobs[d] = data
            return {"mediaType": media, "digest": "sha256:" + d, "size": len(data)}

        manifest = _json({"schemaVersion": 2, "mediaType": MANIFEST, "config": blob(config, CONFIG),
                          "layers": [blob(layer, LAYER)]})
        mdesc = blob(manifest, MANIFEST)
        name = full_ref(ref)
        mdesc["annotations"] = {"io.containerd.image.name": name,
                                "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}
        mdesc["platform"] = {"architecture": "amd64", "os": "linux"}
        files = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}),
                 "index.json": _json({"schemaVersion": 2, "mediaType": INDEX, "manifests": [mdesc]}),
                 "manifest.json": _json([{"Config": "blobs/sha256/" + hashlib.sha256(config).hexdigest(),
                                          "RepoTags": [ref], "Layers": ["blobs/sha256/" + hashlib.sha256(layer)
                                                                        .hexdigest()]}])}
        for d, data in blobs.items():
            files["blobs/sha256/" + d] = data
        tmp = out + ".tmp"
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as t:
            for p in ["blobs", "blobs/sha256"] + sorted(files):
                ti = tarfile.TarInfo(p)
                ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = EPOCH, 0, 0, "", ""
                if p in files:
                    ti.mode, ti.size = 0o644, len(files[p])
                    t.addfile(ti, io.BytesIO(files[p]))
                else:
                    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                    t.addfile(ti)
        os.replace(tmp, out)
        return mdesc["digest"]


def read_archive(path):
    """(manifest digest, config digest, config) of the image in an archive
    write() made: what registries name it by, and the image id containerd
    and the kubelet report (imageID)."""
    with tarfile.open(path) as t:
        index = json.load(t.extractfile("index.json"))
        mdigest = index["manifests"][0]["digest"]
        manifest = json.load(t.extractfile("blobs/sha256/" + mdigest.split(":", 1)[1]))
        cdigest = manifest["config"]["digest"]
        config = json.load(t.extractfile("blobs/sha256/" + cdigest.split(":", 1)[1]))
    return mdigest, cdigest, config
