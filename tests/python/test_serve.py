# `hashhop serve` and `hashhop eval --endpoint` on real sockets (127.0.0.1): the official `openai` client and
# eval --endpoint agree with a local `hashhop eval --model`; bad requests, load, overload, SIGKILL + resume, retries.
# Run: HASHHOP_CLI=build/hashhop python -m pytest tests/python/test_serve.py   (`make test-python` runs it)
import http.client
import http.server
import json
import urllib.request
import os
import re
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import REPO, need

DEMO = REPO / "models" / "demo"
ANSWER_LINE = re.compile(r"^([A-Za-z]+) = '(.*)'$", re.M)
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def header(hops, cot):
    return f"COMPLETION:\nHops={hops}\n\nCoT={'True' if cot else 'False'}\n\n"


def raw_prompt(record, key):
    return record["prompt"] + "\n" + header(record["hops"], record["cot"]) + key + " = '"


def queries(record):  # the keys a record asks, in order
    body = record["completion"].split("\n\n", 2)[2]
    return [m.group(1) for m in ANSWER_LINE.finditer(body)]


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=ENV, timeout=120, **kw)


class Server:
    """`hashhop serve --port 0` in the background; the port comes from its first stdout line."""

    def __init__(self, cli, *extra, model=DEMO):
        self.proc = subprocess.Popen([str(cli), "serve", "--model", str(model), "--model-name", "demo", "--port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        line = self.proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert m, f"no port in {line!r}: {self.proc.stderr.read() if self.proc.poll() is not None else ''}"
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def post(self, path, body, headers=None, timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        conn.request("POST", path, body=data, headers=headers or {"Content-Type": "application/json"})
        r = conn.getresponse()
        out = r.status, r.read(), dict(r.getheaders())
        conn.close()
        return out

    def health(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", "/health")
        return json.loads(conn.getresponse().read())

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return rc, self.proc.stderr.read()


@pytest.fixture(scope="module")
def data(cli, tmp_path_factory):
    """A small mixed data file (no-CoT and CoT, hash lengths 8 and 2) on which the demo model makes some mistakes."""
    d = tmp_path_factory.mktemp("serve")
    parts = []
    for i, args in enumerate([["--chars", "2000", "--hops", "2", "--hash-len", "8", "--samples", "3", "--seed", "1"],
                              ["--chars", "2000", "--hops", "4", "--hash-len", "2", "--samples", "4", "--seed", "3"],
                              ["--chars", "1500", "--hops", "3", "--cot", "--hash-len", "2", "--samples", "2", "--seed", "3"]]):
        out = d / f"part{i}.jsonl"
        r = run([cli, "gen", "--queries", "4", "--out", out, *args])
        assert r.returncode == 0, r.stderr
        parts.append(out.read_text())
    path = d / "data.jsonl"
    path.write_text("".join(parts))
    return path


@pytest.fixture(scope="module")
def records(data):
    return [json.loads(line) for line in data.read_text().splitlines()]


@pytest.fixture(scope="module")
def local(cli, data, tmp_path_factory):
    """`hashhop eval --model` on the same file: the score and every answer, keyed by (record index, key)."""
    preds = tmp_path_factory.mktemp("local") / "preds.jsonl"
    r = run([cli, "eval", "--model", DEMO, "--data", data, "--json", "--predictions", preds])
    assert r.returncode == 0, r.stderr
    answers = {}
    for i, line in enumerate(preds.read_text().splitlines()):
        for m in ANSWER_LINE.finditer(json.loads(line)["completion"]):
            answers[(i, m.group(1))] = m.group(2)
    score = json.loads(r.stdout)
    assert 0 < score["overall"]["exact_rate"] < 1, "the data should hold right and wrong answers"
    return score, answers


@pytest.fixture(scope="module")
def server(cli):
    s = Server(cli, "--max-request-bytes", "1M")
    yield s
    rc, err = s.stop()
    assert rc == 0, err
    assert "stopped" in err


def exact_rate(records, answers):
    right = total = 0
    for i, rec in enumerate(records):
        expected = dict(m.groups() for m in ANSWER_LINE.finditer(rec["completion"]))
        for key in queries(rec):
            total += 1
            right += answers[(i, key)] == expected[key]
    return right / total


def test_help(cli):
    r = run([cli, "serve", "--help"])
    assert r.returncode == 0 and "--max-request-bytes" in r.stdout and "--port" in r.stdout
    r = run([cli, "eval", "--help"])
    assert r.returncode == 0 and "--endpoint" in r.stdout and "--parallel" in r.stdout
    r = run([cli, "eval", "--data", "x.jsonl"])
    assert r.returncode == 2 and "--model or --endpoint" in r.stderr


def test_openai_client_matches_local_eval(server, records, local):
    openai = need("openai")
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=5)
    assert [m.id for m in client.models.list().data] == ["demo"]

    def ask(item):
        i, key = item
        r = client.completions.create(model="demo", prompt=raw_prompt(records[i], key), max_tokens=64, stop=["'"], temperature=0)
        assert r.choices[0].finish_reason == "stop" and r.usage.prompt_tokens > 0
        return item, r.choices[0].text

    items = [(i, key) for i, rec in enumerate(records) for key in queries(rec)]
    with ThreadPoolExecutor(4) as pool:
        answers = dict(pool.map(ask, items))
    assert answers == local[1]  # the same answer for every query, so the same accuracy
    assert exact_rate(records, answers) == pytest.approx(local[0]["overall"]["exact_rate"])
    # Chat API: the raw prompt as the user message; the reply continues it (with the closing quote).
    r = client.chat.completions.create(model="demo", messages=[{"role": "user", "content": raw_prompt(records[0], queries(records[0])[0])}])
    assert r.choices[0].message.content == local[1][(0, queries(records[0])[0])] + "'"
    # The prefix cache: one prefill per prompt body, every other query a hit.
    cache = server.health()["cache"]
    assert cache["misses"] <= len(records) + 1 and cache["hits"] >= len(items) - len(records)


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_endpoint_eval_matches_local_eval(cli, server, data, local, tmp_path, api):
    preds = tmp_path / "endpoint.jsonl"
    extra = ["--api", "chat", "--template", "chat"] if api == "chat" else []
    r = run([cli, "eval", "--endpoint", server.url, "--data", data, "--json", "--parallel", "4", "--predictions", preds, *extra])
    assert r.returncode == 0, r.stderr
    score = json.loads(r.stdout)
    assert score["overall"] == local[0]["overall"]
    assert score["by_hops"] == local[0]["by_hops"]
    lines = [json.loads(line) for line in preds.read_text().splitlines()]
    assert score["model"] == "demo" and score["requests"] == len(lines) == len(local[1])
    assert all(line["latency_s"] > 0 and line["prompt_tokens"] > 0 and line["attempts"] == 1 for line in lines)


def test_context_parallel_serve_answers_as_one_engine(cli, data, records, tmp_path):
    # serve --nproc 3: each prompt sharded over 3 ranks (Gloo). eval --endpoint must get exactly the answers of
    # one server whose engine holds the whole prompt (--engine on); so must a prompt with a line longer than the
    # 64 KB halo (the ranks widen it together). A 2-entry prefix cache evicts on every rank alike; idle longer
    # than --dist-timeout, the heartbeat keeps the ranks; SIGTERM stops all three, exit 0.
    def answers(server, name):
        preds = tmp_path / f"{name}.jsonl"
        r = run([cli, "eval", "--endpoint", server.url, "--data", data, "--json", "--parallel", "4", "--predictions", preds])
        assert r.returncode == 0, r.stderr
        return {(x["line"], x["key"]): x["answer"] for x in map(json.loads, preds.read_text().splitlines())}

    rec = records[0]
    long_line = rec["prompt"].replace("\n", "\n" + "x" * 200000 + " = yy\n", 1) + "\n" + header(rec["hops"], rec["cot"])
    long_prompt = {"model": "demo", "prompt": long_line + queries(rec)[0] + " = '", "max_tokens": 64}
    one = Server(cli, "--engine", "on")
    try:
        expected = answers(one, "one")
        status, body, _ = one.post("/v1/completions", long_prompt)
        assert status == 200, body
        expected_long = json.loads(body)["choices"][0]["text"]
    finally:
        one.stop()
    s = Server(cli, "--nproc", "3", "--dist-timeout", "3", "--cache-entries", "2")  # heartbeat every 0.75 s
    try:
        got = answers(s, "ranks")
        assert len(got) == sum(len(queries(rec)) for rec in records) and got == expected
        time.sleep(5)  # no request for longer than --dist-timeout
        status, body, _ = s.post("/v1/completions", long_prompt)
        assert status == 200 and json.loads(body)["choices"][0]["text"] == expected_long, body
        health = s.health()["cache"]
        assert health["hits"] + health["misses"] == len(got) + 1 and health["misses"] >= len(records) + 1, health
        assert health["entries"] == 2 and health["evictions"] == health["misses"] - 2, health
    finally:
        rc, err = s.stop()
    assert rc == 0 and "stopped" in err, err


def test_context_parallel_serve_ends_when_a_rank_dies(cli):
    # SIGKILL one of the ranks behind a serving --nproc 2: the whole server must end with exit 1 and one line
    # naming that rank, within the launcher's 5 s grace, never a hang.
    # A long --dist-timeout: rank 0's heartbeat must not notice first, or the launcher may reap rank 0 first.
    s = Server(cli, "--nproc", "2", "--dist-timeout", "60")
    ranks = {}
    for pid in subprocess.run(["pgrep", "-P", str(s.proc.pid)], capture_output=True, text=True).stdout.split():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        ranks[next(v[5:].decode() for v in environ if v.startswith(b"RANK="))] = int(pid)
    assert sorted(ranks) == ["0", "1"], ranks
    start = time.time()
    os.kill(ranks["1"], signal.SIGKILL)
    try:
        rc = s.proc.wait(timeout=30)
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
    err = s.proc.stderr.read()
    assert rc == 1 and "rank 1 of 2 was killed by signal 9" in err, err
    assert time.time() - start < 15


def test_byte_family_serves_the_answers_of_local_eval(cli, tmp_path):
    # A tiny byte-level model trained for a second: whatever it answers, the server must answer the same.
    model, data = tmp_path / "bytes", tmp_path / "bytes.jsonl"
    assert run([cli, "train", "--config", "bytes-tiny", "--steps", "40", "--out", model]).returncode == 0
    assert run([cli, "gen", "--chars", "80", "--hops", "1", "--hash-len", "4", "--queries", "3", "--samples", "3", "--out", data]).returncode == 0
    r = run([cli, "eval", "--model", model, "--data", data, "--json", "--predictions", tmp_path / "local.jsonl"])
    assert r.returncode == 0, r.stderr
    local_answers = [dict(ANSWER_LINE.findall(json.loads(line)["completion"])) for line in (tmp_path / "local.jsonl").read_text().splitlines()]
    # One process (a ByteCache per prompt), then 3 ranks (the context-parallel byte engine: each rank holds
    # its shard's keys, the last one decodes): the same answers, and the same cache counts on every rank.
    for name, extra in (("remote", ()), ("ranks", ("--nproc", "3"))):
        s = Server(cli, *extra, model=model)
        try:
            r = run([cli, "eval", "--endpoint", s.url, "--data", data, "--json", "--predictions", tmp_path / f"{name}.jsonl"])
            assert r.returncode == 0, r.stderr
            health = s.health()
            assert health["family"] == "bytes"
            # The prefix cache: each of the 3 prompts is prefilled once, its other 2 queries hit.
            assert health["cache"]["misses"] == 3 and health["cache"]["hits"] == 6, health
            assert health["cache"]["entries"] == 3 and health["cache"]["bytes"] > 0, health
        finally:
            rc, err = s.stop()
        assert rc == 0, err
        remote = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        assert len(remote) == 9 and all(local_answers[x["line"] - 1][x["key"]] == x["answer"] for x in remote), name


def test_sweep_endpoint_matches_local_sweep(cli, server):
    # The same cells (fixed seeds) answered by the server score what `sweep --model` scores, cell by cell.
    # The endpoint sweep runs in the lean hashhop: with hashhop-torch out of reach it must still work.
    args = ["--sizes", "2K", "--hops", "2,4", "--cot", "both", "--hash-len", "2", "--samples", "1", "--queries", "4", "--seed", "3", "--json"]
    local = run([cli, "sweep", "--model", DEMO, "--device", "cpu", *args])
    assert local.returncode == 0, local.stderr
    remote = subprocess.run([str(c) for c in [cli, "sweep", "--endpoint", server.url, "--parallel", "2", *args]], capture_output=True,
                            text=True, timeout=120, env=dict(ENV, HASHHOP_TORCH_BINARY="/nonexistent"))
    assert remote.returncode == 0, remote.stderr
    cells = lambda r: [(c["n_chars"], c["hops"], c["cot"], c["queries"], c["exact"], c["final_hash"]) for c in json.loads(r.stdout)["cells"]]
    assert cells(remote) == cells(local)
    assert 0 < json.loads(local.stdout)["score"]["overall"]["exact_rate"] < 1, "the cells should hold right and wrong answers"
    meta = json.loads(remote.stdout)
    assert meta["answerer"] == "endpoint" and meta["model"] == "demo" and meta["requests"] == 16 and meta["retries"] == 0


def test_bad_requests_get_4xx_and_the_server_answers_the_next(server, records, local):
    good = {"model": "demo", "prompt": raw_prompt(records[0], queries(records[0])[0]), "max_tokens": 32, "stop": ["'"]}
    body = records[0]["prompt"]
    bad = [
        ("/v1/completions", b"{not json", 400),
        ("/v1/completions", b"\xff\xfe\x00binary", 400),
        ("/v1/completions", "[1, 2]", 400),
        ("/v1/completions", {}, 400),
        ("/v1/completions", {"prompt": 5}, 400),
        ("/v1/completions", {"prompt": [1, 2, 3]}, 400),
        ("/v1/completions", {"prompt": "hello"}, 400),
        ("/v1/completions", {"prompt": good["prompt"], "max_tokens": "ten"}, 400),
        ("/v1/completions", {"prompt": good["prompt"], "stop": 7}, 400),
        ("/v1/completions", {"prompt": good["prompt"], "stream": True}, 400),
        ("/v1/completions", {"prompt": good["prompt"], "n": 3}, 400),
        ("/v1/completions", {"prompt": good["prompt"], "temperature": "hot"}, 400),
        ("/v1/completions", {"model": "gpt-9", "prompt": good["prompt"]}, 404),
        ("/v1/completions", {"prompt": body + "\n" + header(9, False) + "abc = '"}, 400),  # more hops than the model has
        ("/v1/completions", {"prompt": body + "\n" + header(2, False) + "a" * 40 + " = '"}, 400),  # longer than max_run
        ("/v1/completions", {"prompt": "a = b\n" + header(2, False) + "a = '"}, 200),  # tiny but valid
        ("/v1/completions", {"prompt": "x" * 2_000_000}, 413),  # over --max-request-bytes 1M
        ("/v1/chat/completions", {"messages": "hi"}, 400),
        ("/v1/chat/completions", {"messages": [{"role": "user"}]}, 400),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": 3}]}, 400),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "What is 2+2?"}]}, 400),
        ("/v1/nowhere", {}, 404),
    ]
    for path, body_, want in bad:
        status, reply, _ = server.post(path, body_)
        assert status == want, (path, str(body_)[:80], reply[:200])
        if want >= 400:
            err = json.loads(reply)["error"]
            assert err["message"] and err["type"], reply
        status, reply, _ = server.post("/v1/completions", good)
        assert status == 200 and json.loads(reply)["choices"][0]["text"] == local[1][(0, queries(records[0])[0])]
    # A request cut off mid-body (the client goes away) and raw garbage on the socket.
    for junk in (b"POST /v1/completions HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{\"prompt\":", b"\x00\x01garbage\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(junk)
    status, _, _ = server.post("/v1/completions", good)
    assert status == 200


def test_load_loses_no_answer_and_returns_no_wrong_one(server, records, local):
    openai = need("openai")
    items = [(i, key) for i, rec in enumerate(records) for key in queries(rec)]
    clients, per_client = 32, 4

    def client_run(c):
        client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=20)
        out = []
        for k in range(per_client):
            i, key = items[(c * per_client + k) % len(items)]
            r = client.completions.create(model="demo", prompt=raw_prompt(records[i], key), max_tokens=64, stop=["'"])
            out.append(((i, key), r.choices[0].text))
        return out

    before = server.health()["served"]
    with ThreadPoolExecutor(clients) as pool:
        results = [x for batch in pool.map(client_run, range(clients)) for x in batch]
    assert len(results) == clients * per_client
    wrong = [(item, text) for item, text in results if text != local[1][item]]
    assert not wrong
    assert server.health()["served"] - before == clients * per_client


def test_overload_gets_503_with_retry_after_and_sigterm_finishes_accepted_requests(cli, tmp_path):
    # Distinct long prompts (no cache hits) at once against --max-queue 1.
    path = tmp_path / "long.jsonl"
    assert run([cli, "gen", "--chars", "30000", "--hops", "2", "--hash-len", "8", "--queries", "1", "--samples", "12", "--out", path]).returncode == 0
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    s = Server(cli, "--max-queue", "1", "--threads", "16", "--retry-after", "2")
    try:
        barrier = threading.Barrier(len(recs))

        def ask(rec):
            barrier.wait()
            return s.post("/v1/completions", {"prompt": raw_prompt(rec, queries(rec)[0])})

        with ThreadPoolExecutor(len(recs)) as pool:
            replies = list(pool.map(ask, recs))
        statuses = sorted(r[0] for r in replies)
        assert set(statuses) <= {200, 503} and statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses
        for status, body, headers in replies:
            if status == 503:
                assert headers.get("Retry-After") == "2" and json.loads(body)["error"]["type"]
        assert s.health()["rejected"] == statuses.count(503)
    finally:
        rc, err = s.stop()
    assert rc == 0, err
    # SIGTERM while requests run: every accepted one is answered, then the server exits 0.
    s = Server(cli, "--max-queue", "64")
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(s.post, "/v1/completions", {"prompt": raw_prompt(rec, queries(rec)[0])}) for rec in recs[:4]]
        # All four must have been admitted (running, waiting for the model, or done) before the signal:
        # one still in a client thread or the accept queue is not accepted yet and may be refused.
        deadline = time.time() + 60
        while time.time() < deadline:
            h = s.health()
            if h["admitted"] + h["served"] >= 4:
                break
            time.sleep(0.005)
        rc, err = s.stop(signal.SIGTERM)
        assert [f.result()[0] for f in futures] == [200] * 4
    assert rc == 0 and "SIGTERM" in err, err


class GateHandler(http.server.BaseHTTPRequestHandler):
    """Forwards POSTs to the real server; after `open_for` of them, holds the rest until `gate` is set,
    so a client killed meanwhile is killed mid-run however slow or fast the machine is."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        srv = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with srv.lock:
            srv.requests += 1
            n = srv.requests
        if n > srv.open_for:
            srv.gate.wait(120)
        req = urllib.request.Request(srv.target + self.path, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            status, reply = r.status, r.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(reply)

    def do_GET(self):
        with urllib.request.urlopen(self.server.target + self.path, timeout=60) as r:
            status, reply = r.status, r.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(reply)


def test_eval_killed_and_resumed_answers_every_query_once(cli, server, records, data, local, tmp_path):
    preds = tmp_path / "resume.jsonl"
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GateHandler)
    proxy.lock, proxy.requests, proxy.open_for, proxy.gate = threading.Lock(), 0, 5, threading.Event()
    proxy.target = server.url.rsplit("/v1", 1)[0]
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{proxy.server_port}/v1"
    cmd = [str(c) for c in [cli, "eval", "--endpoint", url, "--data", data, "--json", "--parallel", "2", "--predictions", preds]]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    deadline = time.time() + 60
    while time.time() < deadline and (not preds.exists() or preds.read_text().count("\n") < 5) and proc.poll() is None:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = preds.read_text().count("\n")
    total = len(local[1])
    assert 0 < done < total, f"the kill should land mid-run ({done} of {total} answered)"
    with preds.open("a") as f:
        f.write('{"line": 1, "key": "tor')  # a line torn by the kill: cut off and redone on resume
    proxy.gate.set()
    r = run(cmd)
    proxy.shutdown()
    assert r.returncode == 0, r.stderr
    score = json.loads(r.stdout)
    lines = [json.loads(line) for line in preds.read_text().splitlines()]
    seen = [(line["line"], line["key"]) for line in lines]
    assert len(seen) == len(set(seen)) == total  # every query exactly once
    assert score["resumed"] == done and score["requests"] == total - done
    assert score["overall"] == local[0]["overall"]


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    """A fake OpenAI server: the first requests fail (429, then 500), later ones answer right."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with srv.lock:
            srv.requests += 1
            n = srv.requests
        fail = srv.failures[n - 1] if n <= len(srv.failures) else None
        if fail is not None:
            self.send_response(fail)
            if fail == 429:
                self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"error": {"message": f"injected {fail}", "type": "test"}}).encode())
            return
        key = body["prompt"].rsplit("\n", 1)[1][: -len(" = '")]
        reply = {"choices": [{"index": 0, "text": srv.answers[key], "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(reply).encode())


def flaky_server(records, failures):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    srv.lock, srv.requests, srv.failures = threading.Lock(), 0, failures
    srv.answers = {k: v for rec in records for k, v in ANSWER_LINE.findall(rec["completion"])}
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_retries_with_backoff_on_429_and_500(cli, records, tmp_path):
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(records[0]) + "\n")
    n = len(queries(records[0]))
    srv = flaky_server(records, [429, 500, 503])
    try:
        start = time.time()
        r = run([cli, "eval", "--endpoint", f"http://127.0.0.1:{srv.server_port}/v1", "--model-name", "x", "--data", one,
                 "--json", "--parallel", "1", "--retries", "3", "--backoff", "0.1"])
        elapsed = time.time() - start
        assert r.returncode == 0, r.stderr
        score = json.loads(r.stdout)
        assert score["overall"]["exact_rate"] == 1.0 and score["retries"] == 3 and srv.requests == n + 3
        assert elapsed >= 0.5 * (0.1 + 0.2 + 0.4)  # backoff doubles (jitter keeps at least half)
    finally:
        srv.shutdown()
    # Always failing: gives up after the retries, one line naming the data line and the query.
    srv = flaky_server(records, [500] * 100)
    try:
        r = run([cli, "eval", "--endpoint", f"http://127.0.0.1:{srv.server_port}", "--model-name", "x", "--data", one,
                 "--parallel", "1", "--retries", "2", "--backoff", "0.01"])
        assert r.returncode == 1 and srv.requests == 3
        assert re.search(r"one\.jsonl:1: query '\w+': POST .*HTTP 500: injected 500 \(after 3 attempts\)", r.stderr), r.stderr
        assert r.stderr.count("\n") == 1
    finally:
        srv.shutdown()
    # A 400 is the request's fault: no retry.
    srv = flaky_server(records, [400] * 100)
    try:
        r = run([cli, "eval", "--endpoint", f"http://127.0.0.1:{srv.server_port}/v1", "--model-name", "x", "--data", one, "--parallel", "1"])
        assert r.returncode == 1 and srv.requests == 1 and "HTTP 400" in r.stderr
    finally:
        srv.shutdown()
    # Nobody listening: a connection error, retried, then one line.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run([cli, "eval", "--endpoint", f"http://127.0.0.1:{port}/v1", "--model-name", "x", "--data", one, "--retries", "1", "--backoff", "0.01"])
    assert r.returncode == 1 and "after 2 attempts" in r.stderr and r.stderr.count("\n") == 1, r.stderr
