"""tools/audit.py: real pip-audit runs against a loopback vulnerability feed, and its verdicts.

OSV (api.osv.dev) is unreachable from the machines detx is developed on, so
pip-audit's OSV service is pointed (`--osv-url`) at a loopback server that
answers OSV's `POST /v1/query` the way pip-audit reads it
(pip_audit/_service/osv.py in pip-audit 2.10: `vulns[].id, aliases, summary,
affected[].package.{name, ecosystem}, affected[].ranges[type=ECOSYSTEM].events[].fixed`).
The advisories it serves are constructed, so only the plumbing is real:
pip-audit's requirement parsing, its query, its report, and the verdict.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tools import audit

# Constructed advisories by (package, version).
ADVISORIES = {
    ("requests", "2.19.0"): [
        {
            "id": "GHSA-test-fixed",
            "aliases": ["CVE-2000-0001"],
            "summary": "constructed: fixed upstream",
            "affected": [
                {
                    "package": {"name": "requests", "ecosystem": "PyPI"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]}],
                }
            ],
        }
    ],
    ("six", "1.16.0"): [
        {
            "id": "GHSA-test-nofix",
            "summary": "constructed: no fix yet",
            "affected": [
                {
                    "package": {"name": "six", "ecosystem": "PyPI"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
                }
            ],
        }
    ],
}


class _Feed(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = (query["package"]["name"], query["version"])
        assert query["package"]["ecosystem"] == "PyPI", query
        body = json.dumps({"vulns": ADVISORIES[key]} if key in ADVISORIES else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def feed():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Feed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    server.shutdown()


def _run(tmp_path, pins: str, osv_url: str, *extra: str) -> int:
    lock = tmp_path / "lock.txt"
    lock.write_text(pins)
    options = ["--vulnerability-service", "osv", "--osv-url", osv_url, "--cache-dir", str(tmp_path / "cache")]
    return audit.main(["-r", str(lock), *extra, "--", *options])


def test_a_vulnerability_with_a_fix_fails_the_audit(feed, tmp_path, capsys):
    code = _run(tmp_path, "requests==2.19.0\nsix==1.16.0\n", feed, "--extra", "idna==2.7")
    out = capsys.readouterr().out
    assert code == audit.EXIT_VULNERABLE
    # pip-audit puts the CVE first when an advisory has one.
    assert "FIXABLE  requests 2.19.0: CVE-2000-0001 (GHSA-test-fixed), fixed in 2.20.0" in out
    assert "no fix   six 1.16.0: GHSA-test-nofix, no fixed version yet" in out
    assert "audit: 3 package(s) audited, 1 vulnerability(ies) with a fix" in out
    assert "1 without a fix yet, 0 not audited" in out


def test_vulnerabilities_without_a_fix_do_not_fail(feed, tmp_path, capsys):
    assert _run(tmp_path, "six==1.16.0\nidna==2.7\n", feed) == 0
    out = capsys.readouterr().out
    assert "no fix   six 1.16.0" in out and "audit: 2 package(s) audited, 0 vulnerability(ies) with a fix" in out


def test_an_unreachable_service_is_an_error_not_a_clean_audit(tmp_path, capsys):
    import portpicker

    closed = f"http://127.0.0.1:{portpicker.pick_unused_port()}/v1/query"
    assert _run(tmp_path, "requests==2.19.0\n", closed) == audit.EXIT_UNAUDITED
    err = capsys.readouterr().err
    assert "pip-audit failed" in err and "the vulnerability service (OSV) is unreachable from here" in err


def test_a_report_where_nothing_was_audited_says_so():
    # The shape pip-audit's PyPI service gives when pypi.org/pypi/<name>/<version>/json answers 404 for all.
    reason = "Dependency not found on PyPI and could not be audited: {} ({})"
    report = {
        "dependencies": [
            {"name": "absl-py", "skip_reason": reason.format("absl-py", "1.4.0")},
            {"name": "six", "skip_reason": reason.format("six", "1.16.0")},
        ],
        "fixes": [],
    }
    result = audit.read_report(report)
    assert result.exit_code == audit.EXIT_UNAUDITED
    text = audit.summary(result, "PyPI's JSON API")
    assert "not audited: 2 package(s): absl-py, six" in text
    assert "error: pip-audit could audit none of the 2 packages" in text
    with pytest.raises(ValueError, match="not a pip-audit JSON report"):
        audit.read_report([])  # type: ignore[arg-type]
