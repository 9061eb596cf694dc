// gw viewer: call a gw peer from this browser with the PeerJS client served
// by the same gw, watch and hear what it answers with, optionally send this
// browser's camera and microphone, and exchange data messages.
//
// Links: /?peer=camera1 starts watching at once. Also: &key=K, &send=1 (send
// camera and microphone), &signaling=ws://host:port/peerjs (another PeerJS
// server, as gw's --signaling-url takes it), &ice=URL[,USER,CREDENTIAL]
// (repeatable), &data=binary|binary-utf8|json|raw (preselect).
//
// Call states (gwViewer.status, shown on the page): idle; connecting
// (registering, calling, negotiating); waiting (connected, but no media yet,
// or it stopped); connected (media arriving); failed (with why); closed.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const state = {
    status: "idle", detail: "", note: "",
    dataStatus: "closed", dataDetail: "",
    log: [], media: {},
    peer: null, call: null, data: null, local: null,
  };
  window.gwViewer = state; // for scripts and tests

  function setStatus(status, detail) {
    state.status = status;
    state.detail = detail;
    const el = $("status");
    el.dataset.state = status;
    el.textContent = detail;
  }

  function setNote(text) {
    state.note = text;
    $("note").textContent = text;
    $("note").hidden = !text;
  }

  function setDataStatus(status, detail) {
    state.dataStatus = status;
    state.dataDetail = detail;
    const el = $("data-status");
    el.dataset.state = status;
    el.textContent = detail;
    const open = status === "open";
    $("message").disabled = !open;
    $("send-button").disabled = !open;
    $("close-data").disabled = status !== "open" && status !== "connecting";
  }

  function log(dir, text) {
    state.log.push({ dir, text });
    const li = document.createElement("li");
    li.className = dir;
    li.textContent = text;
    $("log").appendChild(li);
    li.scrollIntoView({ block: "nearest" });
  }

  // What a data message looks like as text, whatever serialization brought it.
  function describe(data) {
    if (typeof data === "string") return data;
    if (data instanceof ArrayBuffer) data = new Uint8Array(data);
    if (ArrayBuffer.isView(data)) {
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      try {
        const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
        if (!/[\u0000-\u0008\u000e-\u001f]/.test(text)) return text;
      } catch (_) { /* not text */ }
      const hex = Array.from(bytes.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join(" ");
      return "<" + bytes.length + " bytes: " + hex + (bytes.length > 16 ? " …" : "") + ">";
    }
    return JSON.stringify(data);
  }

  const target = () => $("target").value.trim();

  if (typeof Peer === "undefined") {
    setStatus("failed", "The PeerJS client library is missing: this gw was built without it (build gw with make).");
    $("watch").disabled = true;
    $("connect-data").disabled = true;
    return;
  }

  // ---- settings ----

  // serverOptions turns a PeerJS server's WebSocket endpoint (ws://host:port/peerjs,
  // as gw's --signaling-url takes it; http(s)://host:port/ works too) into
  // PeerJS options; empty means the server this page came from.
  function serverOptions(text) {
    if (!text) {
      const secure = location.protocol === "https:";
      return { host: location.hostname, port: Number(location.port) || (secure ? 443 : 80), path: "/", secure };
    }
    let u;
    try {
      u = new URL(text);
    } catch (_) {
      throw new Error("The signaling server \"" + text + "\" is not a URL: want ws://host:port/peerjs.");
    }
    if (!["ws:", "wss:", "http:", "https:"].includes(u.protocol)) {
      throw new Error("The signaling server \"" + text + "\" is not a ws:// or wss:// URL.");
    }
    const secure = u.protocol === "wss:" || u.protocol === "https:";
    let path = u.pathname.replace(/peerjs\/?$/, "");
    if (!path.endsWith("/")) path += "/";
    return { host: u.hostname, port: Number(u.port) || (secure ? 443 : 80), path, secure };
  }

  function iceServers() {
    return $("ice").value.split(/\s+/).filter(Boolean).map((s) => {
      const [urls, username, credential] = s.split(",");
      return username === undefined ? { urls } : { urls, username, credential };
    });
  }

  function signalingName() {
    return $("signaling").value.trim() || "this page's server (" + location.host + ")";
  }

  // ---- signaling ----

  // What a PeerJS error means here.
  function explain(err, who) {
    switch (err.type) {
      case "peer-unavailable":
        return "gw peer " + who + " is not connected to the signaling server: is gw running with that peer (e.g. examples/camera.py --id " + who + ")?";
      case "invalid-key":
        return "The signaling server refused key \"" + $("key").value.trim() + "\" (see gw's --signaling-keys).";
      case "network":
      case "socket-error":
      case "socket-closed":
      case "server-error":
        return "Cannot reach the signaling server at " + signalingName() + " (" + err.message + ").";
      case "browser-incompatible":
        return "This browser cannot do WebRTC.";
      case "ssl-unavailable":
        return "The signaling server needs a secure (wss://) connection.";
      case "unavailable-id":
      case "invalid-id":
        return "The signaling server refused this browser's id: " + err.message;
      default:
        return "Signaling error (" + err.type + "): " + err.message;
    }
  }

  // unavailable: the signaling server says the peer a call or data
  // connection is for is not there; whatever waits for it fails.
  function unavailable(err) {
    const m = /peer (\S+)$/.exec(err.message || "");
    const who = m ? m[1] : target();
    const why = explain(err, who);
    let reported = false;
    if (state.data && state.data.peer === who && state.dataStatus === "connecting") {
      closeData(true);
      setDataStatus("failed", why);
      reported = true;
    }
    if (state.call && state.call.peer === who && ["connecting", "waiting"].includes(state.status)) {
      hangup(true);
      setStatus("failed", why);
      reported = true;
    }
    if (!reported) setStatus("failed", why);
  }

  // peerFor registers this browser at the signaling server (once per settings).
  function peerFor() {
    const key = $("key").value.trim() || "peerjs";
    const config = { iceServers: iceServers() };
    let server;
    try {
      server = serverOptions($("signaling").value.trim());
    } catch (err) {
      return Promise.reject(err);
    }
    const wanted = JSON.stringify([key, server, config]);
    if (state.peer && !state.peer.destroyed && state.peerSettings === wanted) {
      if (state.peer.open) return Promise.resolve(state.peer);
      if (state.peerReady) return state.peerReady;
    }
    if (state.peer) state.peer.destroy();
    const peer = new Peer(Object.assign({ key, config, debug: 1 }, server));
    state.peer = peer;
    state.peerSettings = wanted;
    state.peerReady = new Promise((resolve, reject) => {
      let opened = false;
      peer.on("open", () => {
        opened = true;
        setNote("");
        resolve(peer);
      });
      peer.on("error", (err) => {
        if (state.peer !== peer) return;
        if (!opened) {
          reject(new Error(explain(err))); // whoever waits reports it
          return;
        }
        if (err.type === "peer-unavailable") {
          unavailable(err);
          return;
        }
        // Signaling trouble after registering: media and data already
        // connected carry on without it.
        setNote(explain(err));
      });
      peer.on("disconnected", () => {
        if (state.peer !== peer || peer.destroyed) return;
        setNote("Lost the signaling server at " + signalingName() + "; reconnecting…");
        setTimeout(() => {
          if (state.peer === peer && !peer.destroyed && peer.disconnected) peer.reconnect();
        }, 3000);
      });
    });
    if (!state.call) setStatus("connecting", "Registering at the signaling server " + signalingName() + "…");
    return state.peerReady;
  }

  // ---- media ----

  // play starts the remote video with sound when the browser allows it
  // (after a click on the page, or when its autoplay policy says so), and
  // else muted with a button to turn the sound on.
  function play() {
    const v = $("remote");
    const hasAudio = v.srcObject && v.srcObject.getAudioTracks().length > 0;
    v.muted = false;
    v.play().then(() => {
      $("unmute").hidden = true;
    }, (err) => {
      if (err.name !== "NotAllowedError") return;
      v.muted = true;
      $("unmute").hidden = !hasAudio;
      v.play().catch(() => {});
    });
  }

  function stopLocal() {
    if (state.local) state.local.getTracks().forEach((t) => t.stop());
    state.local = null;
    $("local").srcObject = null;
    $("local").hidden = true;
  }

  async function localMedia() {
    if (!$("send-media").checked) return new MediaStream();
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("This browser only gives the camera to secure pages: open this page over https:// or on http://localhost to send your camera (watching works anyway).");
    }
    try {
      const s = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      state.local = s;
      $("local").srcObject = s;
      $("local").hidden = false;
      $("local").play().catch(() => {});
      return s;
    } catch (err) {
      throw new Error("No camera or microphone: " + err.message);
    }
  }

  async function watch() {
    const to = target();
    if (!to) {
      setStatus("failed", "Enter the id of a gw peer.");
      return;
    }
    hangup(true);
    let local;
    try {
      local = await localMedia();
    } catch (err) {
      setStatus("failed", err.message);
      return;
    }
    let peer;
    try {
      peer = await peerFor();
    } catch (err) {
      stopLocal();
      setStatus("failed", err.message);
      return;
    }
    setStatus("connecting", "Calling " + to + "…");
    // PeerJS needs a stream to call; an empty one with receive-only offers
    // watches without sending.
    const call = peer.call(to, local, {
      metadata: { viewer: "gw" },
      constraints: { offerToReceiveAudio: true, offerToReceiveVideo: true },
    });
    if (!call) {
      stopLocal();
      setStatus("failed", "Not connected to the signaling server; try again.");
      return;
    }
    state.call = call;
    state.media = {};
    $("hangup").disabled = false;
    const mine = () => state.call === call;
    const noAnswer = setTimeout(() => {
      if (mine() && state.status === "connecting") {
        setStatus("waiting", "No answer from " + to + " yet: is an app answering its calls (e.g. examples/camera.py)?");
      }
    }, 15000);
    call.on("stream", (stream) => {
      if (!mine()) return;
      const v = $("remote");
      if (v.srcObject !== stream) {
        v.srcObject = stream;
        play();
      } else if (stream.getAudioTracks().length > 0 && v.muted) {
        $("unmute").hidden = false;
      }
    });
    call.on("close", () => {
      clearTimeout(noAnswer);
      if (!mine()) return;
      endCall();
      if (state.status !== "failed") setStatus("closed", "The call with " + to + " ended.");
    });
    call.on("error", (err) => {
      if (!mine()) return;
      if (err.type === "negotiation-failed") {
        setStatus("failed", noPath(to));
      } else if (err.type !== "connection-closed") {
        setStatus("failed", "The call with " + to + " failed: " + err.message);
      }
    });
    const pc = call.peerConnection;
    let connectedAt = 0;
    pc.addEventListener("connectionstatechange", () => {
      if (!mine()) return;
      switch (pc.connectionState) {
        case "connected":
          clearTimeout(noAnswer);
          connectedAt = Date.now();
          setStatus("waiting", "Connected to " + to + "; waiting for media…");
          break;
        case "disconnected":
          setStatus("waiting", "The connection to " + to + " is interrupted; waiting for it to recover…");
          break;
        case "failed":
          setStatus("failed", noPath(to));
          break;
      }
    });
    // Media counts as arriving when frames are decoded (or, without video,
    // audio packets come in); the page says when it does not or stops.
    let last = null;
    let lastProgress = 0;
    const timer = setInterval(async () => {
      if (!mine()) {
        clearInterval(timer);
        return;
      }
      const m = await mediaStats(pc, last);
      if (!mine()) return;
      last = m;
      state.media = m;
      $("media-info").textContent = mediaInfo(m);
      if (pc.connectionState !== "connected") return;
      const progress = m.video ? m.video.frames : m.audio ? m.audio.packets : 0;
      const moving = progress > lastProgress;
      lastProgress = progress;
      if (moving) {
        const what = [m.video && "video", m.audio && "sound"].filter(Boolean).join(" and ");
        if (state.status !== "connected" || state.what !== what) {
          state.what = what;
          setStatus("connected", "Connected to " + to + ": receiving " + what + ".");
        }
      } else if (Date.now() - connectedAt > 5000) {
        if (m.video && m.video.frames === 0) {
          setStatus("waiting", "Video from " + to + " arrives but does not decode: does the app send the codec it answered with (" + m.video.codec + "), with key frames?");
        } else {
          const why = progress > 0 ? "Media from " + to + " stopped" : "Connected to " + to + ", but no media arrives";
          setStatus("waiting", why + ": is the app behind gw sending RTP to its media ports?");
        }
      }
    }, 1000);
  }

  function noPath(to) {
    return "No network path to " + to + " (ICE failed): this browser must reach the gw machine over UDP. Across networks, give gw (--ice-server) and this page (ICE servers) a STUN or TURN server.";
  }

  // mediaStats reads what is received, by kind, with rates since prev.
  async function mediaStats(pc, prev) {
    const out = { at: performance.now() };
    let report;
    try {
      report = await pc.getStats();
    } catch (_) {
      return out;
    }
    const codecs = {};
    report.forEach((s) => {
      if (s.type === "codec") codecs[s.id] = s.mimeType.split("/")[1];
    });
    report.forEach((s) => {
      if (s.type !== "inbound-rtp" || !s.packetsReceived) return;
      const m = { codec: codecs[s.codecId] || "", packets: s.packetsReceived, bytes: s.bytesReceived || 0, lost: s.packetsLost || 0 };
      if (s.kind === "video") {
        Object.assign(m, { frames: s.framesDecoded || 0, width: s.frameWidth || 0, height: s.frameHeight || 0 });
      } else {
        m.samples = s.totalSamplesReceived || 0;
      }
      const p = prev && prev[s.kind];
      if (p) {
        const secs = (out.at - prev.at) / 1000;
        m.kbps = Math.round((m.bytes - p.bytes) * 8 / 1000 / secs);
        if (s.kind === "video") m.fps = Math.round((m.frames - p.frames) / secs);
      }
      out[s.kind] = m;
    });
    return out;
  }

  function mediaInfo(m) {
    const parts = [];
    if (m.video) {
      let v = "video " + m.video.codec;
      if (m.video.width) v += " " + m.video.width + "×" + m.video.height;
      if (m.video.fps !== undefined) v += ", " + m.video.fps + " fps";
      if (m.video.kbps !== undefined) v += ", " + m.video.kbps + " kbit/s";
      parts.push(v);
    }
    if (m.audio) parts.push("audio " + m.audio.codec + (m.audio.kbps !== undefined ? ", " + m.audio.kbps + " kbit/s" : ""));
    if (m.video && m.video.lost + (m.audio ? m.audio.lost : 0) > 0) {
      parts.push((m.video.lost + (m.audio ? m.audio.lost : 0)) + " packets lost");
    }
    return parts.join(" · ");
  }

  function endCall() {
    state.call = null;
    $("remote").srcObject = null;
    $("unmute").hidden = true;
    $("media-info").textContent = "";
    $("hangup").disabled = true;
    stopLocal();
  }

  function hangup(quiet) {
    const call = state.call;
    if (!call) return;
    endCall();
    call.close();
    if (!quiet) setStatus("idle", "Hung up.");
  }

  // ---- data ----

  async function openData() {
    const to = target();
    if (!to) {
      setDataStatus("failed", "Enter the id of a gw peer above.");
      return;
    }
    closeData(true);
    setDataStatus("connecting", "Registering at the signaling server…");
    let peer;
    try {
      peer = await peerFor();
    } catch (err) {
      setDataStatus("failed", err.message);
      if (!state.call) setStatus("failed", err.message);
      return;
    }
    if (!state.call && state.status === "connecting") setStatus("idle", "Registered at the signaling server.");
    const serialization = $("serialization").value;
    const conn = peer.connect(to, { serialization, reliable: true, metadata: { viewer: "gw" } });
    if (!conn) {
      setDataStatus("failed", "Not connected to the signaling server; try again.");
      return;
    }
    state.data = conn;
    const mine = () => state.data === conn;
    setDataStatus("connecting", "Opening a data channel (" + serialization + ") to " + to + "…");
    const slow = setTimeout(() => {
      if (mine() && state.dataStatus === "connecting") {
        setDataStatus("connecting", "The data channel to " + to + " does not open yet: is " + to + " there, and can this browser reach gw over UDP?");
      }
    }, 15000);
    conn.on("open", () => {
      clearTimeout(slow);
      if (mine()) setDataStatus("open", "Data channel to " + to + " open (" + serialization + ").");
    });
    conn.on("data", (d) => log("in", describe(d)));
    conn.on("close", () => {
      clearTimeout(slow);
      if (!mine()) return;
      state.data = null;
      if (state.dataStatus !== "failed") setDataStatus("closed", "The data channel to " + to + " closed.");
    });
    conn.on("error", (err) => {
      if (mine()) setDataStatus("failed", "Data channel error: " + err.message);
    });
  }

  function closeData(quiet) {
    const conn = state.data;
    if (!conn) return;
    state.data = null;
    conn.close();
    if (!quiet) setDataStatus("closed", "Data channel closed.");
  }

  function send() {
    const text = $("message").value;
    if (!state.data || !state.data.open || text === "") return;
    state.data.send(text);
    log("out", text);
    $("message").value = "";
  }

  // ---- wiring ----

  $("call").addEventListener("submit", (e) => {
    e.preventDefault();
    watch();
  });
  $("hangup").addEventListener("click", () => hangup(false));
  $("unmute").addEventListener("click", () => {
    const v = $("remote");
    v.muted = false;
    v.play().catch(() => {});
    $("unmute").hidden = true;
  });
  $("remote").addEventListener("volumechange", () => {
    if (!$("remote").muted) $("unmute").hidden = true;
  });
  $("open-data").addEventListener("submit", (e) => {
    e.preventDefault();
    openData();
  });
  $("close-data").addEventListener("click", () => closeData(false));
  $("send").addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });

  if (params.get("key")) $("key").value = params.get("key");
  if (params.get("signaling")) $("signaling").value = params.get("signaling");
  if (params.getAll("ice").length) $("ice").value = params.getAll("ice").join(" ");
  if (params.get("key") || params.get("signaling") || params.get("ice")) $("settings").open = true;
  if (["binary", "binary-utf8", "json", "raw"].includes(params.get("data"))) $("serialization").value = params.get("data");
  $("send-media").checked = params.get("send") === "1";
  if (params.get("peer")) {
    $("target").value = params.get("peer");
    watch();
  }
})();
