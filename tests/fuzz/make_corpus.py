#!/usr/bin/env python3
"""Regenerates the checked-in seed corpora tests/fuzz/corpus/<target>/ from the test fixtures,
the example configs and a few small Event Hub bodies written by the workload generator
tests/bench/gen_stream.py (watching the fuzz accounts: matches in every spelling, and decoys).

    /usr/bin/python3 tests/fuzz/make_corpus.py [--out DIR] [--reference DIR]

--out writes the corpora under DIR instead of tests/fuzz/corpus. --reference DIR also takes the
```json samples of the Markdown files in DIR (the checked-in corpus was made from the fixtures,
the configs and such reference notes, before generated bodies were added). The AMQP seeds need
Proton's Python binding (Debian's python3-qpid-proton imports under /usr/bin/python3). Seeds are
named by the SHA-1 of their bytes, as libFuzzer names corpus files, so a rerun rewrites the same
files.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
GENERATOR = os.path.join(REPO, "tests", "bench", "gen_stream.py")

# The fuzz watchlist (fuzz_common.cpp) in the order of fuzz_prefilter.cpp's identities():
# account ids, group, CA policy, then the UPNs.
IDENTITIES = [
    "ccd9080d-14eb-425d-969a-1577f3f3abeb",
    "cc474c45-ee95-4669-8e8e-b7658862e5cc",
    "0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b",
    "20660f84-11cd-4df4-a61a-637cecf8c343",
    "8e27ae8f-7b5f-420a-bbc7-fdcdc89d5dfb",
    "adele.vance@contoso.example",
    "bruno.diaz@contoso.example",
    "o'brien.bg@contoso.example",
]
GRAPH_KIND = {"interactive": 0, "non_interactive": 1, "service_principal": 2, "audit": 4}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def json_blocks(md_path):
    text = open(md_path, encoding="utf-8").read()
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        try:
            yield json.loads(block)
        except ValueError:
            pass  # a fragment (an excerpt with "..."), not a sample


def records_of(doc):
    if isinstance(doc, dict):
        for key in ("records", "value"):
            if isinstance(doc.get(key), list):
                return [r for r in doc[key] if isinstance(r, dict)]
    return []


def generated_bodies(count=4):
    """The first `count` bodies (1-2 records each) of a small generated stream whose watchlist is
    the fuzz accounts, so that the seeds reach the matcher (lower, UPPER and \\u002d-escaped ids)
    and carry decoys the rules must ignore. Deterministic: fixed seed and arguments."""
    with tempfile.TemporaryDirectory() as tmp:
        watch = os.path.join(tmp, "watch.txt")
        with open(watch, "w") as f:
            f.write("".join(g + "\n" for g in IDENTITIES[:3]))  # the three account ids
        out = os.path.join(tmp, "stream.ndjson")
        subprocess.run([sys.executable, GENERATOR, "--size-mb", "0.05", "--seed", "20251103",
                        "--watchlist", watch, "--users", "50", "--batch-min", "1", "--batch-max", "2",
                        "--match-rate", "0.25", "--decoy-rate", "0.25", "--upper-frac", "0.34",
                        "--escape-frac", "0.33", "--out", out],
                       check=True, stderr=subprocess.DEVNULL)
        return read(out).splitlines()[:count]


def placeholder(text, rng_state):
    """Replaces each watched identifier (any case) by 0x01 + a style byte + a pattern byte
    (fuzz_prefilter.cpp).
    `text` is ASCII (json.dumps escapes the rest); encode the result as latin-1 to get the bytes."""
    for idx, ident in enumerate(IDENTITIES):
        def repl(_m):
            rng_state[0] = (rng_state[0] * 1103515245 + 12345) & 0x7FFFFFFF
            how = (rng_state[0] >> 8) & 31
            return "\x01" + chr(idx + 8 * how) + chr((rng_state[0] >> 13) & 255)
        text = re.sub(re.escape(ident), repl, text, flags=re.I)
    return text


def http_response(status, reason, headers, body, chunked=False):
    head = "HTTP/1.1 %d %s\r\n" % (status, reason)
    for k, v in headers:
        head += "%s: %s\r\n" % (k, v)
    if chunked:
        head += "Transfer-Encoding: chunked\r\n\r\n"
        out = head.encode()
        for i in range(0, len(body), 700):
            part = body[i:i + 700]
            out += b"%x\r\n" % len(part) + part + b"\r\n"
        return out + b"0\r\n\r\n"
    return head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body


def amqp_messages(bodies):
    try:
        from proton import Message, symbol, timestamp
    except ImportError:
        print("make_corpus: no Proton Python binding (run with /usr/bin/python3): AMQP seeds skipped",
              file=sys.stderr)
        return []
    out = []
    for i, body in enumerate(bodies):
        for variant in range(3):
            m = Message()
            if variant == 0:  # a data section, as Azure sends it
                m.body = body
                m.inferred = True
            elif variant == 1:  # an amqp-value string (test producers)
                m.body = body.decode("utf-8", "replace")
            else:  # an amqp-value binary
                m.body = body
            m.annotations = {
                symbol("x-opt-sequence-number"): 1000 + i,
                symbol("x-opt-offset"): str(4096 * (i + 1)) if variant != 2 else 4096 * (i + 1),
                symbol("x-opt-enqueued-time"): timestamp(1762179727000 + i),
                symbol("x-opt-partition-key"): "pk-%d" % i,
            }
            out.append(m.encode())
    m = Message(body={"records": []})  # a map body: not a data section or string, skipped
    out.append(m.encode())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(HERE, "corpus"),
                    help="write the corpora under this folder (default: tests/fuzz/corpus)")
    ap.add_argument("--reference", help="also use the JSON samples of the *.md files in this folder")
    args = ap.parse_args()

    corpus = {t: set() for t in ("fuzz_config", "fuzz_graph_page", "fuzz_diagnostic",
                                 "fuzz_prefilter", "fuzz_http_response", "fuzz_amqp_body")}

    # ---- JSON documents: fixtures, a few demo-stream bodies, the reference samples if asked for,
    # generated bodies (last, so that the seeds of the others do not depend on them)
    docs = []
    for name in sorted(os.listdir(FIXTURES)):
        if name.endswith(".json"):
            docs.append((name, read(os.path.join(FIXTURES, name))))
    for n, line in enumerate(read(os.path.join(FIXTURES, "demo-stream.ndjson")).splitlines()[:40:8]):
        docs.append(("demo-stream:%d" % n, line))
    if args.reference:
        if not os.path.isdir(args.reference):
            ap.error("--reference %s is not a folder" % args.reference)
        for md in sorted(os.listdir(args.reference)):
            if md.endswith(".md"):
                for j in json_blocks(os.path.join(args.reference, md)):
                    docs.append((md, json.dumps(j, indent=1).encode()))
    for n, body in enumerate(generated_bodies()):
        docs.append(("gen_stream:%d" % n, body))

    rng = [20251103]
    bodies = []
    statuses = [(200, "OK"), (202, "Accepted"), (201, "Created"), (400, "Bad Request"),
                (429, "Too Many Requests"), (503, "Service Unavailable")]
    for i, (name, raw) in enumerate(docs):
        doc = json.loads(raw)
        recs = records_of(doc)
        if isinstance(doc, dict) and "records" in doc:
            corpus["fuzz_diagnostic"].add(raw)
            bodies.append(raw)
        elif isinstance(doc, dict) and "value" in doc:
            kind = "audit" if "audit" in name.lower() or b"activityDateTime" in raw else (
                "service_principal" if b"servicePrincipal" in raw else "interactive")
            corpus["fuzz_graph_page"].add(bytes([GRAPH_KIND[kind]]) + raw)
        for r in recs:
            compact = json.dumps(r, separators=(",", ":"))
            corpus["fuzz_prefilter"].add(compact.encode())
            corpus["fuzz_prefilter"].add(placeholder(compact, rng).encode("latin-1"))
        status, reason = statuses[i % len(statuses)]
        headers = [("Content-Type", "application/json"), ("request-id", "149ad09b-18a0-42f6")]
        if status in (429, 503):
            headers.append(("Retry-After", ["7", "2.128", "Mon, 03 Nov 2025 14:25:02 GMT"][i % 3]))
        corpus["fuzz_http_response"].add(bytes([i % 2 * 8 * 3]) +
                                         http_response(status, reason, headers, raw, chunked=i % 2 == 1))

    # Records naming the apostrophe account, which no fixture has.
    corpus["fuzz_prefilter"].add(
        b'{"id":"s1","createdDateTime":"2025-11-03T14:22:07Z","userId":"x",'
        b'"userPrincipalName":"\x01\x4f\x00","status":{"errorCode":50126}}')
    corpus["fuzz_prefilter"].add(
        b'{"category":"AuditLogs","properties":{"id":"a1","activityDateTime":"2025-11-03T14:22:07Z",'
        b'"activityDisplayName":"Reset password","initiatedBy":{"user":{"id":null}},'
        b'"targetResources":[{"type":"User","userPrincipalName":"\x01\x47\x01"}]}}')

    # ---- HTTP framing the JSON samples do not cover
    corpus["fuzz_http_response"].update([
        b"\x00HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nrequest-id: x\r\n\r\n",
        b"\x08HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\nContent-Length: 0\r\n\r\n",
        b"\x01HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n\r\n",
        b"\x02HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"ok\":1}",
        b"\x04HTTP/1.0 503 Service Unavailable\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n",
        b"\x10HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nTrailer: x\r\n\r\n",
    ])

    # ---- configs
    for name in sorted(os.listdir(os.path.join(REPO, "config"))):
        if name.endswith(".toml"):
            corpus["fuzz_config"].add(read(os.path.join(REPO, "config", name)))
    corpus["fuzz_config"].add(
        b'[tenant]\nid = "3d29e181-4b4e-4710-8621-280aad0bc235"\n\n[[watch.accounts]]\n'
        b'object_id = "0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b"\nupn = "o\'brien.bg@contoso.example"\n\n'
        b'[[sinks]]\nname = "f"\ntype = "file"\npath = "/dev/null"\n')

    corpus["fuzz_amqp_body"].update(amqp_messages(bodies))

    total = 0
    for target, seeds in sorted(corpus.items()):
        d = os.path.join(args.out, target)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for s in seeds:
            with open(os.path.join(d, hashlib.sha1(s).hexdigest()), "wb") as f:
                f.write(s)
        size = sum(len(s) for s in seeds)
        total += size
        print("%-20s %4d seeds %8d bytes" % (target, len(seeds), size))
    print("%-20s %4s       %8d bytes" % ("total", "", total))


if __name__ == "__main__":
    main()
