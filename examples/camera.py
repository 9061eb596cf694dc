#!/usr/bin/env python3
"""camera.py: the app side of a camera behind gw (Python 3 standard library only).

It creates a gw peer, answers every call to it with the camera's video (and,
with --audio, sound), optionally sends what the caller's camera and microphone
send to local UDP ports, answers data connections, and cleans up on Ctrl-C.
Point a browser at gw's signaling server, http://BOARD:9000/?peer=camera1, to
watch.

gw frees a call's media ports when the last call using them ends, so the
camera's RTP cannot simply go to fixed gw ports. Two ways to run the pipeline:

  --gst         camera.py runs gst-launch-1.0 itself, sending straight to gw's
                media ports, while anyone watches (the camera is off otherwise).
  (default)     your pipeline runs all the time and sends to fixed local ports
                (--video-in, --audio-in); camera.py forwards what arrives there
                to the media ports of the current calls. It prints a test
                pipeline to start with.

--pipeline gives your own pipeline (gst-launch-1.0 syntax) with placeholders
{host}, {video_port}, {video_pt}, {audio_port}, {audio_pt}; without it, a test
picture (videotestsrc) and tone (audiotestsrc) encoded in --codec.

Examples:
  python3 camera.py --id camera1 --gst
  python3 camera.py --id camera1 --gst --audio --recv-video 127.0.0.1:7000
  python3 camera.py --id camera1 --gst --pipeline 'libcamerasrc ! video/x-raw,width=1280,height=720,framerate=30/1 ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 pt={video_pt} ! udpsink host={host} port={video_port}'
"""

import argparse
import json
import logging
import os
import select
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

log = logging.getLogger("camera")

CODECS = ("H264", "VP8", "VP9")
PLACEHOLDERS = ("{host}", "{video_port}", "{video_pt}", "{audio_port}", "{audio_pt}")


class GWError(Exception):
    """An answer of gw's REST API other than the one expected, or no answer."""

    def __init__(self, status, message, field=""):
        super().__init__(message)
        self.status = status
        self.field = field


class GW:
    """The few REST calls of gw (SkyWay WebRTC Gateway 0.4.3 API) this app uses."""

    def __init__(self, base):
        self.base = base.rstrip("/")

    def call(self, method, path, body=None, want=(200,), timeout=15):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise GWError(0, "cannot reach gw at %s: %s" % (self.base, reason)) from None
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        if status not in want:
            field, message = "", raw.decode("utf-8", "replace").strip() or "no body"
            try:
                first = parsed["params"]["errors"][0]
                field, message = first.get("field", ""), first.get("message", message)
            except (TypeError, KeyError, IndexError):
                pass
            raise GWError(status, "%s %s: %d %s" % (method, path, status, message), field)
        return status, parsed

    def events(self, path, timeout):
        """One long-poll of an events path: the event, or None when it timed out."""
        status, ev = self.call("GET", path, want=(200, 408), timeout=timeout)
        return ev if status == 200 else None


def host_port(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError("want HOST:PORT, e.g. 127.0.0.1:7000, not %r" % text)
    return host, int(port)


def describe(data):
    """A received data message as one log-friendly line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "<%d bytes>" % len(data)
    if len(text) > 200:
        return repr(text[:200]) + "... (%d bytes)" % len(data)
    return repr(text)


def test_pipeline(a):
    """A test picture and tone, encoded as the browser expects."""
    key = max(1, a.fps)  # a key frame a second: a new viewer waits at most that long
    enc = {
        "H264": "x264enc tune=zerolatency speed-preset=ultrafast bitrate=%d key-int-max=%d"
                " ! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1" % (a.kbps, key),
        "VP8": "vp8enc deadline=1 target-bitrate=%d keyframe-max-dist=%d ! rtpvp8pay" % (a.kbps * 1000, key),
        "VP9": "vp9enc deadline=1 target-bitrate=%d keyframe-max-dist=%d ! rtpvp9pay" % (a.kbps * 1000, key),
    }[a.codec]
    p = ("videotestsrc is-live=true pattern=ball ! video/x-raw,width=%d,height=%d,framerate=%d/1 ! %s"
         " pt={video_pt} ! udpsink host={host} port={video_port}" % (a.width, a.height, a.fps, enc))
    if a.audio:
        p += (" audiotestsrc is-live=true wave=ticks ! audioconvert ! audioresample ! opusenc"
              " ! rtpopuspay pt={audio_pt} ! udpsink host={host} port={audio_port}")
    return p


def fill(template, host, video_port, audio_port, a):
    values = {"{host}": host, "{video_port}": str(video_port), "{video_pt}": str(a.video_pt),
              "{audio_port}": str(audio_port), "{audio_pt}": str(a.audio_pt)}
    for k, v in values.items():
        template = template.replace(k, v)
    return template


def receive_hint(kind, where, codec, pt):
    """A pipeline that plays what a caller sends to where."""
    host, port = where
    if kind == "video":
        depay = {"H264": "rtph264depay ! h264parse ! avdec_h264", "VP8": "rtpvp8depay ! vp8dec",
                 "VP9": "rtpvp9depay ! vp9dec"}[codec]
        return ("gst-launch-1.0 udpsrc address=%s port=%d caps=application/x-rtp,media=video,encoding-name=%s,"
                "clock-rate=90000,payload=%d ! rtpjitterbuffer ! %s ! videoconvert ! autovideosink"
                % (host, port, codec, pt, depay))
    return ("gst-launch-1.0 udpsrc address=%s port=%d caps=application/x-rtp,media=audio,encoding-name=OPUS,"
            "clock-rate=48000,payload=%d ! rtpjitterbuffer ! rtpopusdepay ! opusdec ! audioconvert ! autoaudiosink"
            % (host, port, pt))


class Relay(threading.Thread):
    """Forwards RTP from fixed local ports to the media ports of the current calls."""

    def __init__(self, listen_host, ports):
        super().__init__(name="relay", daemon=True)
        self.socks = {}
        for kind, port in ports.items():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((listen_host, port))
            self.socks[kind] = s
        self.targets = {}  # kind -> (ip, port) of gw's media port, replaced as a whole
        self.closed = False

    def run(self):
        by_fd = {s.fileno(): (kind, s) for kind, s in self.socks.items()}
        while not self.closed:
            try:
                ready, _, _ = select.select(list(self.socks.values()), [], [], 0.5)
            except (OSError, ValueError):
                return
            for s in ready:
                kind, _ = by_fd[s.fileno()]
                try:
                    data = s.recv(65536)
                except OSError:
                    continue
                target = self.targets.get(kind)
                if target is None:
                    continue  # nobody watches: dropped
                try:
                    s.sendto(data, target)
                except OSError:
                    pass

    def close(self):
        self.closed = True
        for s in self.socks.values():
            s.close()


class Camera:
    def __init__(self, a):
        self.a = a
        self.gw = GW(a.api)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.peer_id = None
        self.token = None
        self.media = None  # {"video": (id, ip, port), "audio": ...} shared by the current calls
        self.calls = set()  # answered calls not yet closed
        self.pipeline = None
        self.template = a.pipeline or test_pipeline(a)
        if self.template.split(None, 1)[:1] == ["gst-launch-1.0"]:
            self.template = self.template.split(None, 1)[1] if " " in self.template.strip() else ""
        self.relay = None

    # ---- peer ----

    def create_peer(self):
        body = {"key": self.a.key, "domain": self.a.domain, "peer_id": self.a.id, "turn": self.a.turn}
        _, r = self.gw.call("POST", "/peers", body, want=(201,), timeout=60)
        self.peer_id, self.token = r["params"]["peer_id"], r["params"]["token"]
        log.info("peer %s registered at gw's signaling server", self.peer_id)

    def delete_peer(self):
        if not self.token:
            return
        try:
            self.gw.call("DELETE", "/peers/%s?token=%s" % (self.peer_id, self.token), want=(204, 404))
            log.info("peer %s deleted", self.peer_id)
        except GWError as e:
            log.warning("could not delete peer %s: %s", self.peer_id, e)
        self.token = None

    def peer_events(self):
        """The peer's event loop (a thread): calls, data connections, the end."""
        path = "/peers/%s/events?token=%s" % (self.peer_id, self.token)
        while not self.stop.is_set():
            try:
                ev = self.gw.events(path, timeout=self.a.poll_timeout)
            except GWError as e:
                if self.stop.is_set():
                    return
                log.error("lost the peer: %s", e)
                self.restart()
                return
            if ev is None:
                continue
            name = ev.get("event")
            if name == "OPEN":
                log.info("peer %s open; watch it at the signaling server's page: /?peer=%s", self.peer_id, self.peer_id)
            elif name == "CALL":
                self.spawn(self.on_call, ev["call_params"]["media_connection_id"])
            elif name == "CONNECTION":
                self.spawn(self.on_connection, ev["data_params"]["data_connection_id"])
            elif name == "ERROR":
                log.error("peer error: %s", ev.get("error_message", ev))
            elif name == "EXPIRESIN":
                log.warning("the peer's credential expires in %s s", ev.get("remainingSec"))
            elif name == "CLOSE":
                if self.stop.is_set():
                    return
                log.error("gw closed peer %s", self.peer_id)
                self.restart()
                return

    def restart(self):
        """gw went away or dropped the peer: forget everything and register again."""
        self.token = None
        with self.lock:
            self.calls.clear()
            self.media = None
            self.set_relay_targets()
            self.stop_pipeline()
        while not self.stop.is_set():
            self.stop.wait(5)
            if self.stop.is_set():
                return
            try:
                self.create_peer()
            except GWError as e:
                log.error("registering again failed (retrying in 5 s): %s", e)
                continue
            self.spawn(self.peer_events)
            return

    def spawn(self, fn, *args):
        def run():
            try:
                fn(*args)
            except Exception:  # a thread's failure must not go unnoticed
                log.exception("%s failed", fn.__name__)
        threading.Thread(target=run, daemon=True).start()

    # ---- media ----

    def new_media(self):
        """Media ports for the next calls; the caller holds the lock."""
        media = {}
        kinds = [("video", True)] + ([("audio", False)] if self.a.audio else [])
        for kind, is_video in kinds:
            _, r = self.gw.call("POST", "/media", {"is_video": is_video}, want=(201,))
            media[kind] = (r["media_id"], r.get("ip_v4") or r.get("ip_v6"), r["port"])
        self.media = media
        desc = ", ".join("%s %s:%d" % (k, v[1], v[2]) for k, v in sorted(media.items()))
        log.info("media ports: %s", desc)
        if self.a.gst:
            self.start_pipeline()
        else:
            self.set_relay_targets()

    def set_relay_targets(self):
        if self.relay is None:
            return
        targets = {}
        for kind, m in (self.media or {}).items():
            targets[kind] = (m[1], m[2])
        self.relay.targets = targets

    def start_pipeline(self):
        self.stop_pipeline()
        m = self.media
        audio_port = m["audio"][2] if "audio" in m else 0
        line = fill(self.template, m["video"][1], m["video"][2], audio_port, self.a)
        log.info("starting: gst-launch-1.0 %s", line)
        try:
            proc = subprocess.Popen(["gst-launch-1.0", "-q"] + shlex.split(line))
        except OSError as e:
            log.error("cannot run gst-launch-1.0 (apt-get install gstreamer1.0-tools): %s", e)
            return
        self.pipeline = proc

        def watch():
            code = proc.wait()
            if self.pipeline is proc and not self.stop.is_set():
                log.error("the pipeline exited (code %d) while viewers watch: see its messages above", code)
        threading.Thread(target=watch, daemon=True).start()

    def stop_pipeline(self):
        proc, self.pipeline = self.pipeline, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.info("pipeline stopped")

    def answer_body(self):
        a = self.a
        recv_video, recv_audio = a.recv_video is not None, a.recv_audio is not None
        c = {
            "video": True, "videoReceiveEnabled": recv_video,
            "audio": bool(a.audio), "audioReceiveEnabled": recv_audio,
            "video_params": {"band_width": a.recv_kbps, "codec": a.codec, "media_id": self.media["video"][0],
                             "payload_type": a.video_pt, "sampling_rate": 90000},
        }
        if a.audio or recv_audio:
            ap = {"band_width": 0, "codec": "OPUS", "payload_type": a.audio_pt, "sampling_rate": 48000}
            if a.audio:
                ap["media_id"] = self.media["audio"][0]
            c["audio_params"] = ap
        body = {"constraints": c}
        redirect = {}
        if recv_video:
            redirect["video"] = {"ip_v4": a.recv_video[0], "port": a.recv_video[1]}
        if recv_audio:
            redirect["audio"] = {"ip_v4": a.recv_audio[0], "port": a.recv_audio[1]}
        if redirect:
            body["redirect_params"] = redirect
        return body

    def on_call(self, mc):
        path = "/media/connections/" + mc
        try:
            _, st = self.gw.call("GET", path + "/status")
            remote = st.get("remote_id", "?")
        except GWError as e:
            log.error("call %s: %s", mc, e)
            return
        log.info("call %s from %s (metadata %s)", mc, remote, json.dumps(st.get("metadata", {})))
        with self.lock:
            for attempt in (1, 2):
                if self.media is None:
                    try:
                        self.new_media()
                    except GWError as e:
                        log.error("cannot open media ports: %s", e)
                        return
                try:
                    self.gw.call("POST", path + "/answer", self.answer_body(), want=(202,))
                    break
                except GWError as e:
                    if e.status == 404 and "media_id" in e.field and attempt == 1:
                        # The last call closed and gw freed the ports just now.
                        self.media = None
                        continue
                    log.error("cannot answer %s from %s: %s", mc, remote, e)
                    if e.status == 400 and "codec" in e.field:
                        log.error("(the caller does not take %s; try another --codec)", self.a.codec)
                    try:
                        self.gw.call("DELETE", path, want=(204, 404))
                    except GWError:
                        pass
                    return
            self.calls.add(mc)
        what = self.a.codec + (" and OPUS" if self.a.audio else "")
        log.info("answered %s: sending %s to %s", mc, what, remote)
        self.call_events(mc, remote)

    def call_events(self, mc, remote):
        path = "/media/connections/%s/events" % mc
        while not self.stop.is_set():
            try:
                ev = self.gw.events(path, timeout=self.a.poll_timeout)
            except GWError as e:
                if e.status != 404:
                    log.error("call %s: %s", mc, e)
                break
            if ev is None:
                continue
            name = ev.get("event")
            if name == "READY":
                log.info("call %s: connected to %s", mc, remote)
            elif name == "STREAM":
                so = ev.get("stream_options", {})
                sp = so.get("stream_params", {})
                kind = "video" if so.get("is_video") else "audio"
                if sp.get("port"):
                    log.info("call %s: %s's %s goes to %s:%s", mc, remote, kind, sp.get("ip_v4", sp.get("ip_v6")), sp["port"])
                else:
                    log.info("call %s: %s sends %s; not received (no --recv-%s)", mc, remote, kind, kind)
            elif name == "ERROR":
                log.error("call %s: %s", mc, ev.get("error_message", ev))
            elif name == "CLOSE":
                break
        log.info("call %s with %s closed", mc, remote)
        with self.lock:
            if mc in self.calls:
                self.calls.discard(mc)
                if not self.calls:
                    # gw closed the media ports with the last call using them.
                    self.media = None
                    self.set_relay_targets()
                    if self.a.gst:
                        log.info("nobody watches: stopping the pipeline")
                        self.stop_pipeline()

    # ---- data ----

    def on_connection(self, dc):
        path = "/data/connections/" + dc
        try:
            _, st = self.gw.call("GET", path + "/status")
            _, d = self.gw.call("POST", "/data", {}, want=(201,))
        except GWError as e:
            log.error("data connection %s: %s", dc, e)
            return
        remote, ser = st.get("remote_id", "?"), st.get("serialization", "?")
        data_ip, data_port = d.get("ip_v4") or d.get("ip_v6"), d["port"]
        sock = None
        if self.a.data_to:
            to = self.a.data_to
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            to = sock.getsockname()
        try:
            self.gw.call("PUT", path, {"feed_params": {"data_id": d["data_id"]},
                                       "redirect_params": {"ip_v4": to[0], "port": to[1]}})
        except GWError as e:
            log.error("data connection %s: %s", dc, e)
            if sock:
                sock.close()
            return
        if self.a.data_to:
            log.info("data connection %s from %s (%s): messages go to %s:%d; send yours to %s:%d",
                     dc, remote, ser, to[0], to[1], data_ip, data_port)
        else:
            mode = "echoing" if self.a.data == "echo" else "logging"
            log.info("data connection %s from %s (%s): %s its messages (data port %s:%d)",
                     dc, remote, ser, mode, data_ip, data_port)
            self.spawn(self.data_loop, dc, sock, (data_ip, data_port))
        self.data_events(dc, remote, sock)

    def data_loop(self, dc, sock, data_addr):
        while True:
            try:
                msg = sock.recv(65536)
            except OSError:
                return
            log.info("data %s: received %s", dc, describe(msg))
            if self.a.data == "echo":
                try:
                    sock.sendto(msg, data_addr)
                except OSError as e:
                    log.error("data %s: echo failed: %s", dc, e)

    def data_events(self, dc, remote, sock):
        path = "/data/connections/%s/events" % dc
        while not self.stop.is_set():
            try:
                ev = self.gw.events(path, timeout=self.a.poll_timeout)
            except GWError as e:
                if e.status != 404:
                    log.error("data connection %s: %s", dc, e)
                break
            if ev is None:
                continue
            name = ev.get("event")
            if name == "OPEN":
                log.info("data connection %s with %s open", dc, remote)
            elif name == "ERROR":
                log.error("data connection %s: %s", dc, ev.get("error_message", ev))
            elif name == "CLOSE":
                break
        log.info("data connection %s with %s closed", dc, remote)
        if sock:
            sock.close()

    # ---- main ----

    def run(self):
        a = self.a
        if not a.gst:
            ports = {"video": a.video_in}
            if a.audio:
                ports["audio"] = a.audio_in
            try:
                self.relay = Relay(a.listen_host, ports)
            except OSError as e:
                log.error("cannot listen on %s ports %s: %s", a.listen_host, ports, e)
                return 1
            self.relay.start()
        self.create_peer()
        if not a.gst:
            line = fill(self.template, a.listen_host, a.video_in, a.audio_in, a)
            what = "video RTP (%s, payload type %d) to %s:%d" % (a.codec, a.video_pt, a.listen_host, a.video_in)
            if a.audio:
                what += " and audio RTP (OPUS, payload type %d) to %s:%d" % (a.audio_pt, a.listen_host, a.audio_in)
            log.info("send %s; camera.py forwards it to whoever watches. For a test picture run:", what)
            log.info("  gst-launch-1.0 %s", line)
        for kind, where in (("video", a.recv_video), ("audio", a.recv_audio)):
            if where:
                log.info("a caller's %s goes to %s:%d; to play it: %s", kind, where[0], where[1],
                         receive_hint(kind, where, a.codec, a.video_pt if kind == "video" else a.audio_pt))
        self.spawn(self.peer_events)
        while not self.stop.is_set():
            self.stop.wait(0.5)
        return 0

    def shutdown(self):
        self.stop.set()
        with self.lock:
            self.stop_pipeline()
        self.delete_peer()
        if self.relay:
            self.relay.close()


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="See the README section \"See your board's camera in a browser\".")
    p.add_argument("--api", default=os.environ.get("GW_API", "http://127.0.0.1:8000"),
                   help="gw's REST API (default %(default)s; env GW_API)")
    p.add_argument("--id", default="camera1", help="peer id viewers call (default %(default)s)")
    p.add_argument("--key", default="peerjs", help="signaling key (default %(default)s)")
    p.add_argument("--domain", default="localhost", help="domain sent with the key (default %(default)s)")
    p.add_argument("--turn", action="store_true", help="let the peer use gw's TURN servers (--ice-server)")
    p.add_argument("--codec", default="H264", type=str.upper, help="video codec the pipeline sends: %s, or with"
                   " --pipeline any gw takes (default %%(default)s)" % ", ".join(CODECS))
    p.add_argument("--video-pt", type=int, default=96, help="RTP payload type of the video (default %(default)s)")
    p.add_argument("--audio", action="store_true", help="send Opus audio too")
    p.add_argument("--audio-pt", type=int, default=111, help="RTP payload type of the audio (default %(default)s)")
    p.add_argument("--gst", action="store_true", help="run the pipeline with gst-launch-1.0 while anyone watches")
    p.add_argument("--pipeline", help="your pipeline (gst-launch-1.0 syntax), placeholders " + " ".join(PLACEHOLDERS))
    p.add_argument("--width", type=int, default=640, help="test picture width (default %(default)s)")
    p.add_argument("--height", type=int, default=480, help="test picture height (default %(default)s)")
    p.add_argument("--fps", type=int, default=30, help="test picture frame rate (default %(default)s)")
    p.add_argument("--kbps", type=int, default=1000, help="test picture bitrate in kbit/s (default %(default)s)")
    p.add_argument("--listen-host", default="127.0.0.1", help="where the forwarding ports listen (default %(default)s)")
    p.add_argument("--video-in", type=int, default=5004, help="without --gst: port your pipeline sends video to (default %(default)s)")
    p.add_argument("--audio-in", type=int, default=5006, help="without --gst: port your pipeline sends audio to (default %(default)s)")
    p.add_argument("--recv-video", type=host_port, metavar="HOST:PORT",
                   help="send the caller's camera here (RTP in --codec, --video-pt); default: not received")
    p.add_argument("--recv-audio", type=host_port, metavar="HOST:PORT",
                   help="send the caller's microphone here (Opus RTP, --audio-pt); default: not received")
    p.add_argument("--recv-kbps", type=int, default=0, help="cap on the caller's video bitrate, kbit/s (default: none)")
    p.add_argument("--data", choices=("log", "echo"), default="log",
                   help="data connections: log what arrives, or also send it back (default %(default)s)")
    p.add_argument("--data-to", type=host_port, metavar="HOST:PORT",
                   help="data connections: deliver messages to your app at HOST:PORT instead")
    p.add_argument("--poll-timeout", type=float, default=60, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.pipeline is None and a.codec not in CODECS:
        p.error("the test picture comes in %s; give --pipeline for %s" % (", ".join(CODECS), a.codec))
    if a.pipeline and ("{audio_port}" in a.pipeline) != bool(a.audio):
        p.error("--pipeline sends audio ({audio_port}) exactly when --audio is given")
    if a.pipeline and "{video_port}" not in a.pipeline:
        p.error("--pipeline must send video to {host}:{video_port}")
    return a


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s camera.py: %(message)s", datefmt="%H:%M:%S",
                        level=logging.INFO, stream=sys.stdout)
    cam = Camera(a)

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        code = cam.run()
    except KeyboardInterrupt:
        log.info("stopping")
    except GWError as e:
        log.error("%s", e)
        if e.field == "peer_id" and e.status == 400:
            log.error("(is another camera.py running with --id %s?)", a.id)
        code = 1
    finally:
        try:
            cam.shutdown()
        except KeyboardInterrupt:
            pass
    return code


if __name__ == "__main__":
    sys.exit(main())
