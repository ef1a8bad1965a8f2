"""Direct delivery (src/deliver/direct.c): a message for local mailboxes only is
written straight into the Maildirs within the group commit, so it is there when the
250 arrives and never passes through the queue; an injected storage fault gives a
4xx and leaves nothing in any Maildir."""

import os
import smtplib

import pytest

from conftest import maildir_files, maildir_new


def test_local_message_is_in_maildirs_at_250(ternd):
    with smtplib.SMTP(ternd.host, ternd.port, timeout=10) as s:
        s.sendmail("a@example.net", ["Alice@Example.com", "bob@example.com"],
                   b"Subject: direct\r\n\r\nbody\r\n")
        # no waiting: the 250 is the promise that the files are durable and visible
        for who in ("alice@example.com", "bob@example.com"):
            files = maildir_files(maildir_new(ternd.data_dir, who))
            assert len(files) == 1
            raw = files[0].read_bytes()
            assert raw.startswith(b"Return-Path: <a@example.net>\nDelivered-To: " +
                                  who.encode() + b"\nReceived: from ")
            assert raw.endswith(b"\n\nbody\n") and b"\r" not in raw
            assert files[0].name.endswith(",S=%d" % len(raw))
    queue = ternd.data_dir / "spool" / "queue"
    assert not queue.exists() or not os.listdir(queue)
    assert "direct=yes" in ternd.log()


@pytest.mark.parametrize("op", ["write", "fsync", "rename", "dirsync"])
def test_storage_fault_gives_4xx_and_leaves_nothing(ternd_factory, monkeypatch, op):
    monkeypatch.setenv("TERN_FAULT", op)
    t = ternd_factory()
    with smtplib.SMTP(t.host, t.port, timeout=10) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("a@example.net", ["alice@example.com"], b"Subject: x\r\n\r\nbody\r\n")
        assert 400 <= e.value.smtp_code < 500
    box = t.data_dir / "mail" / "example.com" / "alice" / "Maildir"
    for sub in ("new", "tmp"):
        d = box / sub
        assert not d.exists() or not os.listdir(d), sub
