"""A local dataset mirror for the download tests: an http.server on 127.0.0.1 in a thread (optionally asking for
basic auth, optionally cutting every body short), and a mirror folder built in a temporary directory from the real
datasets (never in the repository), with a manifest whose ECB+.zip row names the checksum of a zip re-packed from
the extracted release (the original zip is not held here)."""
from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.server
import shutil
import threading
import zipfile
from pathlib import Path

from lib.data import download


@contextlib.contextmanager
def serve(folder: Path, auth: str = "", truncate: bool = False):
    """Serve `folder` at http://127.0.0.1:PORT; yields (base URL, list of requested paths). `auth` 'user:password'
    answers 401 without those credentials; `truncate` announces each file's full length but sends half of it."""
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requests.append(self.path)
            if auth and self.headers.get("Authorization") != "Basic " + base64.b64encode(auth.encode()).decode():
                self.send_error(401, "Unauthorized")
                return
            if truncate:
                data = (folder / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True
                return
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def build(shared: Path, tmp: Path) -> tuple[Path, Path]:
    """(mirror folder, manifest): every file the notebooks read, copied from `shared`, ECB+/ re-packed as ECB+.zip."""
    mirror = tmp / "mirror"
    rows = []
    for f in download.needed(list(_notebooks())):
        dst = mirror / f.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        if f.unzip:
            _zip_folder(shared / Path(f.path).parent, Path(f.path).stem, dst)
            f = download.File(f.dataset, f.path, f.url, f"sha256:{hashlib.sha256(dst.read_bytes()).hexdigest()}", True)
        else:
            shutil.copyfile(shared / f.path, dst)
        rows.append("\t".join([f.dataset, f.path, f.url, f.check, "unzip" if f.unzip else "", ""]))
    manifest = tmp / "datasets.tsv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return mirror, manifest


def _notebooks():
    return download.DATA_READ


def _zip_folder(parent: Path, name: str, dst: Path) -> None:
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for p in sorted((parent / name).rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(parent).as_posix())
