"""ClamAV end to end: the real gateway with libclamav on its own threads, signatures of our own (no
official database is reachable here: an .ndb body signature for EICAR and for the ClamAV test
executable's code, an .hdb hash of that executable), the av_test corpus sent with smtplib, the
action observed in the reply, the sink and the quarantine table."""

import hashlib
import smtplib
import sqlite3
import tarfile
from pathlib import Path

import pytest

from conftest import wait_for
from test_content import knobs, message, send, with_attachment, zip_bytes

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "av_test.tar.gz"
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def av_corpus():
    assert CORPUS.exists(), f"{CORPUS}: the av_test corpus (../shared/corpus) is needed"
    with tarfile.open(CORPUS) as t:
        mails = {Path(m.name).name: t.extractfile(m).read() for m in t.getmembers()
                 if m.isfile() and "/malware/" in f"/{m.name}" and m.name.endswith(".eml")}
        exe = next(t.extractfile(m).read() for m in t.getmembers() if m.isfile() and m.name.endswith("files/clam.exe"))
    return mails, exe


def signatures(d, exe):
    d.mkdir(parents=True, exist_ok=True)
    # Body signatures: EICAR anywhere, and 64 bytes of the test executable's code (so packed and
    # archived copies are found once libclamav has opened them); a hash of the whole file.
    (d / "mxguard-test.ndb").write_text(f"Mxguard.Test.EICAR:0:*:{EICAR.hex()}\n"
                                        f"Mxguard.Test.ClamExe:0:*:{exe[0x40:0x80].hex()}\n")
    (d / "mxguard-test.hdb").write_text(f"{hashlib.md5(exe).hexdigest()}:{len(exe)}:Mxguard.Test.ClamExe.Hash\n")
    return d


def av_knobs(sigdir, **extra):
    return knobs(av__enabled="1", av__signature_dir=str(sigdir), av__reload_check_s="1", **extra)


def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_every_av_test_mail_is_rejected_and_clean_mail_passes(make_gateway, sink, tmp_path):
    mails, exe = av_corpus()
    assert len(mails) == 16, sorted(mails)
    g = make_gateway(sink.port, av_knobs(signatures(tmp_path / "sigs", exe)))
    g.wait_events("av_start", lambda e: int(e.get("signatures", 0)) == 3)
    missed = []
    for name, data in sorted(mails.items()):
        try:
            code, text = send(g.port, crlf(data))
        except smtplib.SMTPDataError as e:
            code, text = e.smtp_code, e.smtp_error
        if code != 550 or b"virus found (Mxguard.Test." not in text:
            missed.append((name, code, text))
    assert not missed, missed
    # The event log is written behind the replies: the last event may land a moment after.
    wait_for(lambda: len(g.events("virus")) == 16, what="a virus event for each of the 16")
    code, _ = send(g.port, message(body="Nothing to see here.\r\n"))
    assert code == 250
    wait_for(lambda: len(sink.messages()) == 1, what="the clean message delivered")
    assert g.metrics()["mxguard_av_viruses_total"] == 16


def test_a_virus_is_held_even_for_a_whitelisted_sender_and_quarantined_when_asked(make_gateway, sink, tmp_path):
    mails, exe = av_corpus()
    g = make_gateway(sink.port, av_knobs(signatures(tmp_path / "sigs", exe), av__action="quarantine"), start=False)
    g.write_lists({"excluded-from.txt": "ann@sender.example\n"})
    g.start()
    code, text = send(g.port, with_attachment("report.zip", _zip_of_eicar()))
    assert code == 250, (code, text)
    with sqlite3.connect(g.state / "quarantine.db") as db:
        wait_for(lambda: db.execute("SELECT count(*) FROM recipients").fetchone()[0] == 1, what="quarantined copy")
    ev = g.wait_events("virus")[0]
    assert ev["name"].startswith("Mxguard.Test.EICAR") and ev["action"] == "quarantine"
    assert "CLAMAV_VIRUS" in g.wait_events("accepted")[0]["symbols"]
    assert sink.messages() == []


def _zip_of_eicar():
    return zip_bytes([("inner.zip", zip_bytes([("eicar.com", EICAR)]))])


def test_a_domain_with_antivirus_off_gets_its_copy(make_gateway, sink, tmp_path):
    _, exe = av_corpus()
    g = make_gateway(sink.port, av_knobs(signatures(tmp_path / "sigs", exe), relay__domains="example.test,lab.test"),
                     start=False)
    g.write_lists({"domain-policy.txt": "lab.test antivirus = off\n"})
    g.start()
    code, text = send(g.port, message(body=EICAR.decode() + "\r\n"), rcpts=("u@example.test", "r@lab.test"))
    assert code == 250, (code, text)
    wait_for(lambda: len(sink.messages()) == 1, what="lab.test's copy")
    with sqlite3.connect(g.state / "quarantine.db") as db:
        wait_for(lambda: db.execute("SELECT count(*) FROM recipients").fetchone()[0] == 1,
                 what="example.test's copy held (a rejecting recipient among accepting ones is quarantined)")


@pytest.mark.parametrize("required,want", [("1", 451), ("0", 250)])
def test_no_signatures(make_gateway, sink, tmp_path, required, want):
    empty = tmp_path / "empty"
    empty.mkdir()
    g = make_gateway(sink.port, av_knobs(empty, av__required=required))
    assert "error" in g.wait_events("av_start")[0]
    try:
        code, _ = send(g.port, message(body=EICAR.decode() + "\r\n"))
    except smtplib.SMTPDataError as e:
        code = e.smtp_code
    assert code == want
    assert g.wait_events("av_unchecked")[0]["then"] == ("deferred" if want == 451 else "passed unscanned")
    if want == 250:
        wait_for(lambda: len(sink.messages()) == 1, what="unscanned delivery")
        assert "AV_UNCHECKED" in g.wait_events("accepted")[0]["symbols"]


def test_signatures_dropped_in_later_are_loaded_without_a_restart(make_gateway, sink, tmp_path):
    _, exe = av_corpus()
    d = tmp_path / "sigs"
    d.mkdir()
    g = make_gateway(sink.port, av_knobs(d, av__required="1"))
    signatures(d, exe)
    g.wait_events("av_loaded", timeout=20)
    try:
        code, text = send(g.port, message(body=EICAR.decode() + "\r\n"))
    except smtplib.SMTPDataError as e:
        code, text = e.smtp_code, e.smtp_error
    assert code == 550 and b"virus found" in text, (code, text)
