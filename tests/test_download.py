"""Download: mirror first, checksum verified, nothing partial left, clear offline error."""

import hashlib
import http.server
import threading
from functools import partial

import pytest

from rnnbench.data.download import DownloadError, download, main

SHA = {  # from ../shared/data/ptb/SHA256SUMS
    "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
}
DEAD_URL = "http://127.0.0.1:9/ptb.valid.txt"  # discard port: nothing listens


def test_mirror_folder_is_tried_first_and_verified(ptb_mirror, tmp_path):
    out = tmp_path / "valid.txt"
    source = download(DEAD_URL, out, SHA["ptb.valid.txt"], mirror=str(ptb_mirror))
    assert source.startswith("file://") and out.stat().st_size == 399_782


def test_file_url_mirror_works(ptb_mirror, tmp_path):
    out = tmp_path / "valid.txt"
    download(DEAD_URL, out, SHA["ptb.valid.txt"], mirror=ptb_mirror.as_uri())
    assert hashlib.sha256(out.read_bytes()).hexdigest() == SHA["ptb.valid.txt"]


def test_http_download_from_a_local_server(ptb_mirror, tmp_path):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(ptb_mirror))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/ptb.valid.txt"
        out = tmp_path / "valid.txt"
        assert download(url, out, SHA["ptb.valid.txt"], mirror=str(tmp_path / "empty")) == url
        assert out.stat().st_size == 399_782
    finally:
        server.shutdown()
        server.server_close()


def test_checksum_mismatch_leaves_no_file(ptb_mirror, tmp_path):
    out = tmp_path / "valid.txt"
    with pytest.raises(DownloadError, match="checksum mismatch.*sha256"):
        download(DEAD_URL, out, "0" * 64, mirror=str(ptb_mirror))
    assert list(tmp_path.iterdir()) == []


def test_offline_without_mirror_names_url_and_key(tmp_path, caplog):
    out = tmp_path / "valid.txt"
    assert main(["--url", DEAD_URL, "--out", str(out), "--mirror", ""]) == 1
    assert DEAD_URL in caplog.text and "config key `mirror`" in caplog.text
    assert list(tmp_path.iterdir()) == []
