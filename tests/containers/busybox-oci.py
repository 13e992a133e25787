#!/usr/bin/env python3
"""Builds a tiny OCI image (busybox-static) as an OCI layout DIR and an OCI
archive DIR.tar, tagged `latest`, for the container runtime tests.
Usage: busybox-oci.py OUT_DIR"""
import hashlib, io, json, os, sys, tarfile

BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "cat", "sleep", "echo", "true", "ls", "touch", "nslookup"]

def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)

def layer_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for d in ["bin", "etc", "tmp"]:
            info = tarfile.TarInfo(d); info.type = tarfile.DIRTYPE; info.mode = 0o755
            t.addfile(info)
        t.add(BUSYBOX, arcname="bin/busybox")
        for a in APPLETS:
            info = tarfile.TarInfo("bin/" + a); info.type = tarfile.SYMTYPE; info.linkname = "busybox"
            t.addfile(info)
        data = b"gadgetd test image\n"
        info = tarfile.TarInfo("etc/gadgetd-marker"); info.size = len(data); info.mode = 0o644
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()

def main(out):
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    layer = layer_tar()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    layer_digest, layer_size = blob(out, layer)
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sleep", "1000000"]},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    cfg_digest, cfg_size = blob(out, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg_size},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}]}
    man_digest, man_size = blob(out, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": man_digest, "size": man_size, "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with tarfile.open(out + ".tar", "w") as t:
        for name in ["oci-layout", "index.json", "blobs"]:
            t.add(os.path.join(out, name), arcname=name)

if __name__ == "__main__":
    main(sys.argv[1])
