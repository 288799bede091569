"""Fault injectors for the faults tests: an HTTP-aware proxy on the Docker engine's
socket and a byte pump between the agent and the backend.

The engine proxy forwards each request to the real engine on a connection of its
own (Connection: close), so that it sees every request whole and can act on it:
hold it until the test releases it, answer it with an error, reset the connection,
delay it, cut a stream, drop some events, or rewrite the events stream into Docker 29's format. An
attach request (Upgrade: tcp) becomes a raw two-way pump after its request line.
Whatever happens, the real engine does the work: the proxy only takes away.
"""
import json
import os
import re
import socket
import threading

from harness import SocketProxy, wait_for

HEAD_MAX = 1 << 20


class Request:
    """One HTTP request from the agent, as the proxy saw it."""

    def __init__(self, method, path, headers, body, raw_head):
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self.raw_head = raw_head
        self.released = threading.Event()
        self.drop = False  # when released: True closes instead of forwarding
        self.client = None
        self.upstream = None
        self.reply_status = None

    @property
    def endpoint(self):
        """"POST /containers/{id}/start" without the API prefix and query."""
        path = re.sub(r"^/v[\d.]+", "", self.path.split("?", 1)[0])
        path = re.sub(r"^/containers/(?!create|json)[^/]+", "/containers/{id}", path)
        return "%s %s" % (self.method, path)

    def labels(self):
        try:
            return json.loads(self.body or b"{}").get("Labels") or {}
        except ValueError:
            return {}

    def container(self):
        m = re.match(r"^(?:/v[\d.]+)?/containers/([^/?]+)", self.path)
        return m.group(1) if m else None

    def __repr__(self):
        return "<%s>" % self.endpoint


def _shut(*socks):
    for s in socks:
        if s is None:
            continue
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass


def _read_head(sock, buf):
    """Reads up to the end of the headers; returns (head, rest) or (None, buf) on EOF."""
    while b"\r\n\r\n" not in buf:
        if len(buf) > HEAD_MAX:
            raise OSError("request head too large")
        data = sock.recv(65536)
        if not data:
            return None, buf
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def _headers(head):
    lines = head.decode("latin-1").split("\r\n")
    out = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        out[k.strip().lower()] = v.strip()
    return lines[0], out


def docker29_event(line):
    """An event line as Docker 29 writes it: no `status`, `id` or `from`."""
    try:
        ev = json.loads(line)
    except ValueError:
        return line
    for k in ("status", "id", "from"):
        ev.pop(k, None)
    return json.dumps(ev).encode()


class EngineProxy(SocketProxy):
    """A SocketProxy that understands the Docker API's HTTP.

    rules: a list of callables rule(req) -> action or None (the first non-None
    wins). Actions: "forward", "hold" (until release()), "reset" (close without
    an answer, the engine never sees the request), "reset_after" (forwarded, then
    the connection is closed before the answer reaches the agent), ("status",
    code), ("delay", seconds).
    """

    def __init__(self, path, target="/var/run/docker.sock"):
        self.rules = []
        self.seen = []        # every request, in order
        self.held = []        # requests waiting for release()
        self.live = []        # requests whose connections are open
        self.docker29 = False  # rewrite the events stream
        self.drop_events = set()  # actions ("oom", "die"...) the agent never hears of
        self.gone = False
        self.ids = {}          # container id -> labels (from create answers)
        self.lock = threading.Condition()
        super().__init__(path, target)

    # -- control ------------------------------------------------------------
    def add_rule(self, rule):
        with self.lock:
            self.rules.append(rule)
        return rule

    def remove_rule(self, rule):
        with self.lock:
            if rule in self.rules:
                self.rules.remove(rule)

    def wait_held(self, pred=lambda r: True, timeout=60, count=1):
        return wait_for(lambda: [r for r in list(self.held) if pred(r)][:count]
                        if len([r for r in list(self.held) if pred(r)]) >= count else None,
                        timeout, "%d held engine request(s)" % count)

    def release(self, pred=lambda r: True, drop=False):
        with self.lock:
            out = [r for r in self.held if pred(r)]
            for r in out:
                self.held.remove(r)
        for r in out:
            r.drop = drop
            r.released.set()
        return out

    def cut(self, pred):
        """Closes the connections of the live requests that match."""
        with self.lock:
            victims = [r for r in self.live if pred(r)]
        for r in victims:
            _shut(r.client, r.upstream)
        return victims

    def go_away(self):
        """The engine is gone: connections refused, the live ones cut."""
        self.gone = True
        self.listener.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
        self.cut(lambda r: True)

    def come_back(self):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(64)
        self.gone = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.release(drop=True)
        super().close()
        self.cut(lambda r: True)

    # -- serving ------------------------------------------------------------
    def _accept(self):
        listener = self.listener
        while not self.closed:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _decide(self, req):
        with self.lock:
            self.seen.append(req)
            for rule in self.rules:
                action = rule(req)
                if action is not None:
                    return action
        return "forward"

    def _serve(self, client):
        req = None
        try:
            head, rest = _read_head(client, b"")
            if head is None:
                _shut(client)
                return
            line, headers = _headers(head)
            method, path, _ = line.split(" ", 2)
            n = int(headers.get("content-length", "0") or 0)
            while len(rest) < n:
                data = client.recv(65536)
                if not data:
                    break
                rest += data
            body, extra = rest[:n], rest[n:]
            req = Request(method, path, headers, body, head)
            req.client = client
            action = self._decide(req)
            if isinstance(action, tuple) and action[0] == "delay":
                req.released.wait(action[1])
                action = "forward"
            if action == "hold":
                with self.lock:
                    self.held.append(req)
                    self.live.append(req)
                req.released.wait()
                if req.drop or self.closed:
                    _shut(client)
                    return
            if action == "reset":
                _shut(client)
                return
            if isinstance(action, tuple) and action[0] == "status":
                msg = json.dumps({"message": "injected fault: http %d" % action[1]}).encode()
                client.sendall(b"HTTP/1.1 %d Injected\r\nContent-Type: application/json\r\n"
                               b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                               % (action[1], len(msg), msg))
                _shut(client)
                return
            self._forward(req, head, body + extra, upgrade="upgrade" in headers,
                          reset_after=action == "reset_after")
        except OSError:
            _shut(client)
        finally:
            if req is not None:
                with self.lock:
                    if req in self.live:
                        self.live.remove(req)

    def _forward(self, req, head, rest, upgrade, reset_after):
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(self.target)
        req.upstream = upstream
        with self.lock:
            if req not in self.live:
                self.live.append(req)
        if not upgrade:
            # One request per upstream connection: its end is the answer's end.
            lines = [x for x in head.split(b"\r\n") if not x.lower().startswith(b"connection:")]
            head = b"\r\n".join(lines + [b"Connection: close"])
        upstream.sendall(head + b"\r\n\r\n" + rest)
        if reset_after:
            # The engine does the work; its answer never reaches the agent.
            _read_head(upstream, b"")
            _shut(req.client, upstream)
            return
        if upgrade:
            t = threading.Thread(target=self._pump, args=(req.client, upstream), daemon=True)
            t.start()
        events = (self.docker29 or self.drop_events) and req.endpoint == "GET /events"
        create = req.endpoint == "POST /containers/create"
        self._answer(req, upstream, events, create)

    def _answer(self, req, upstream, events, create):
        client = req.client
        try:
            head, rest = _read_head(upstream, b"")
            if head is None:
                return
            line, headers = _headers(head)
            req.reply_status = int(line.split(" ")[1])
            if not events:
                if create:
                    # The whole answer first: the container's labels are known here before
                    # the agent, which asks about the container as soon as it reads it.
                    body = rest
                    while True:
                        data = upstream.recv(65536)
                        if not data:
                            break
                        body += data
                    if req.reply_status == 201:
                        try:
                            cid = json.loads(body)["Id"]
                            with self.lock:
                                self.ids[cid] = req.labels()
                        except (ValueError, KeyError):
                            pass
                    client.sendall(head + b"\r\n\r\n" + body)
                    return
                client.sendall(head + b"\r\n\r\n" + rest)
                while True:
                    data = upstream.recv(65536)
                    if not data:
                        break
                    client.sendall(data)
                return
            # Chunked JSON lines: re-chunk each rewritten line.
            client.sendall(head + b"\r\n\r\n")
            buf, text = rest, b""
            while True:
                while b"\r\n" not in buf:
                    data = upstream.recv(65536)
                    if not data:
                        return
                    buf += data
                size_line, buf = buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(buf) < size + 2:
                    data = upstream.recv(65536)
                    if not data:
                        return
                    buf += data
                text += buf[:size]
                buf = buf[size + 2:]
                if size == 0:
                    client.sendall(b"0\r\n\r\n")
                    return
                while b"\n" in text:
                    ln, text = text.split(b"\n", 1)
                    if self._dropped(ln):
                        continue
                    out = (docker29_event(ln) if self.docker29 else ln) + b"\n"
                    client.sendall(b"%x\r\n%s\r\n" % (len(out), out))
        except OSError:
            pass
        finally:
            _shut(client, upstream)

    def _dropped(self, line):
        try:
            ev = json.loads(line)
        except ValueError:
            return False
        return ev.get("Action", ev.get("status")) in self.drop_events

    # -- what the tests look at -------------------------------------------------
    def count(self, endpoint):
        with self.lock:
            return sum(1 for r in self.seen if r.endpoint == endpoint)


class BackendPump:
    """A TCP byte pump between the agent (DEALER) and the backend (ROUTER).

    hold_up() keeps what the agent sends (its results) in the pump; flush_up()
    delivers it, drop_up() throws it away.
    """

    def __init__(self, backend_addr):
        host, port = backend_addr.replace("tcp://", "").rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.addr = "tcp://127.0.0.1:%d" % self.listener.getsockname()[1]
        self.holding = False
        self.pending = []  # (upstream socket, bytes) held from the agent
        self.lock = threading.Lock()
        self.conns = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                agent, _ = self.listener.accept()
            except OSError:
                return
            backend = socket.create_connection(self.target)
            self.conns.append((agent, backend))
            threading.Thread(target=self._up, args=(agent, backend), daemon=True).start()
            threading.Thread(target=self._down, args=(backend, agent), daemon=True).start()

    def _up(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                # Under the lock: flush_up() sends what was held first, in order.
                with self.lock:
                    if self.holding:
                        self.pending.append((dst, data))
                        continue
                    dst.sendall(data)
        except OSError:
            pass
        with self.lock:
            if not self.holding:
                _shut(dst)

    def _down(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        _shut(dst)

    def hold_up(self):
        with self.lock:
            self.holding = True

    def held(self):
        with self.lock:
            return b"".join(d for _, d in self.pending)

    def flush_up(self):
        with self.lock:
            self.holding = False
            pending, self.pending = self.pending, []
            for dst, data in pending:
                try:
                    dst.sendall(data)
                except OSError:
                    pass

    def drop_up(self):
        with self.lock:
            self.holding = False
            self.pending = []

    def close(self):
        self.closed = True
        self.listener.close()
        for a, b in self.conns:
            _shut(a, b)
