#!/usr/bin/env python3
"""Write the seed corpora for the fuzz targets (fuzz/corpus/smtp_{addr,cmd,data,dsn}/)
from the attack cases of tests/e2e/test_attack.py. Run from the repo root."""
import hashlib
import os

def put(name, data):
    d = os.path.join("fuzz", "corpus", name)
    os.makedirs(d, exist_ok=True)
    h = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, "seed-" + h), "wb") as f:
        f.write(data)

ADDRS = [b"<a@b.example>", b"<>", b"<Postmaster>", b"<postmaster@x.example>",
         b'<"a b"@x.example>', b'<"we\\"ird\\\\ %n%s${x}"@example.net>',
         b"<@r1.example,@r2.example:u@d.example>", b"<u@[192.0.2.1]>",
         b"<u@[IPv6:2001:db8::1]>", b"<u@[IPv6:::ffff:1.2.3.4]>",
         b"<;touch /tmp/x;@example.net>", b"<;sleep 2;>",
         b"<${run{\\x2Fbin\\x2Fsh\\t-c\\t\\x22touch\\t/tmp/x\\x22}}@example.com>",
         b"<%n%n%n%s@example.com>", b"<../../etc/passwd@example.com>",
         b"<\xc3\xa9l\xc3\xa8ve@\xc3\xa9cole.example>", b"a@b.example", b"<a@b.example",
         b"<" + b"a" * 64 + b"@" + b"b" * 63 + b".example>", b"<a.@b>", b"<.a@b>",
         b"<a..b@c>", b'<"\x01"@x>', b"<a@-b.example>", b"<a@b-.example>"]
for a in ADDRS:
    for flags in (0, 1, 3, 7):
        put("smtp_addr", bytes([flags]) + a)

CMDS = [b"EHLO x\nMAIL FROM:<a@b> SIZE=\nMAIL FROM:<a@b> SIZE=-1\n"
        b"MAIL FROM:<a@b> SIZE=99999999999999999999\nMAIL FROM:<a@b> SIZE=10 SIZE=10\n",
        b"MAIL FROM:<a@b> BODY=8BITMIME BODY=7BIT\nMAIL FROM:<a@b> BODY=BINARYMIME\n"
        b"MAIL FROM:<a@b> SMTPUTF8=yes\nMAIL FROM:<a@b> ORCPT=rfc822;a+0D+0Ab\n",
        b"RCPT TO:<a@b>\nDATA\nMAIL FROM:<a@b>\nMAIL FROM:<c@d>\nBDAT 3\nabcDATA\n",
        b"GET / HTTP/1.1\nHost: x\n", b"CONNECT a:25 HTTP/1.1\n", b"POST /x HTTP/1.0\n",
        b"NOOP " + b"x" * 600 + b"QUIT\n", b"\x00\x00\n\xff\xfe\n\n\n",
        b"VRFY \x1b]0;x\x07\nEXPN root\nHELP MAIL\nHELP \x01\n",
        b"AUTH PLAIN AGEAYg==\nAUTH LOGIN\nYQ==\nYg==\nAUTH PLAIN\n*\nAUTH FOO\n",
        b"STARTTLS\nMAIL FROM:<evil@x>\n", b"BDAT 18446744073709551616\n",
        b"BDAT 5 LAST\nhelloRSET\n", b"HELO " + b"a" * 300 + b"\n",
        b"RCPT TO:<\"$(touch /tmp/x)\"@example.com>\nRCPT TO:<a@b> NOTIFY=NEVER\n"]
for c in CMDS:
    for mode in (0, 1, 3, 4, 9, 0x41, 0x83):
        put("smtp_cmd", bytes([mode]) + c)

ENDS = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\r.\n",
        b"\n.\r", b"\r\n.\x00\r\n", b"\r\n\x00.\r\n", b"\r\n.\r\r\n", b"\r\n. \r\n",
        b"\r\r\n.\r\r\n", b"\n\n.\n\n", b"\r\n..\n"]
SMUG = (b"MAIL FROM:<smuggler@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\n"
        b"Subject: smuggled\r\n\r\nx\r\n.\r\n")
for e in ENDS:
    for mode in (0, 2, 4):
        put("smtp_data", bytes([mode]) + b"Subject: carrier\r\n\r\nbody" + e + SMUG)
for mode in (0, 2, 4, 6):
    put("smtp_data", bytes([mode]) + b"a\r\n..dot\r\n.\r\n")
    put("smtp_data", bytes([mode]) + b"x" * 1200 + b"\r\n.\r\n")
    put("smtp_data", bytes([mode]) + b"Subject: x\r\n" + b" cont\r\n" * 50 + b"\r\n.\r\n")
for mode in (1, 3, 5):
    put("smtp_data", bytes([mode]) + b"\x05hello\x25\r\n.\r\n" + b"\x20" + SMUG[:31])
    put("smtp_data", bytes([mode]) + b"\x0a" + b"0123456789" + b"\x21!")

DSN_RCPT = [b" NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;a@b.example", b" NOTIFY=never",
            b"NOTIFY=NEVER,FAILURE", b" ORCPT=rfc822;a+2Bb@c ORCPT=rfc822;x", b" ORCPT=;x",
            b" ORCPT=\x01\r;x", b" ORCPT=utf-8;caf+C3+A9@x", b" NOTIFY=", b" NOTIFY=FAILURE,",
            b" FOO=bar", b"NOTIFY", b" ORCPT=rfc822;" + b"a" * 600, b" ORCPT=rfc822;a+0D+0Ab"]
DSN_MAIL = [b" RET=HDRS ENVID=job+2042", b" RET=FULL RET=HDRS", b" RET=maybe", b" ENVID=",
            b" ENVID=a=b", b" SIZE=10", b" ENVID=" + b"x" * 101, b"RET", b"  RET=hdrs  ",
            b" ENVID=+00", b" ENVID=+7F"]
for r in DSN_RCPT:
    put("smtp_dsn", b"\x00" + r)
for m in DSN_MAIL:
    put("smtp_dsn", b"\x01" + m)
for t in [b"job 42+a=b", b"caf\xc3\xa9", b"a\tb", b"x" * 40]:
    put("smtp_dsn", b"\x02" + t)
    put("smtp_dsn", b"\x03" + t)
