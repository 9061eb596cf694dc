// gw viewer: call a gw peer from this browser with the PeerJS client served
// by the same gw, watch and hear what it answers with, optionally send this
// browser's camera and microphone, and exchange data messages.
//
// One click: /?peer=camera1 starts watching at once (&key=, &send=1,
// &ice=stun:host:port also work).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const state = { status: "idle", detail: "", log: [], peer: null, call: null, data: null };
  window.gwViewer = state; // for scripts and tests

  function setStatus(status, detail) {
    state.status = status;
    state.detail = detail;
    const el = $("status");
    el.dataset.state = status;
    el.textContent = detail;
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
        return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      } catch (_) {
        return "<" + bytes.length + " bytes>";
      }
    }
    return JSON.stringify(data);
  }

  if (typeof Peer === "undefined") {
    setStatus("failed", "The PeerJS client library is missing: this gw was built without it (build gw with make).");
    $("watch").disabled = true;
    $("connect-data").disabled = true;
    return;
  }

  function iceServers() {
    return params.getAll("ice").map((url) => ({ urls: url }));
  }

  // peerFor registers this browser at gw's signaling server (once per key).
  function peerFor(key) {
    if (state.peer && !state.peer.destroyed && state.peer.options.key === key) {
      return Promise.resolve(state.peer);
    }
    if (state.peer) state.peer.destroy();
    setStatus("connecting", "Registering at the signaling server…");
    const secure = location.protocol === "https:";
    const peer = new Peer({
      host: location.hostname,
      port: Number(location.port) || (secure ? 443 : 80),
      path: "/",
      secure,
      key,
      config: { iceServers: iceServers() },
    });
    state.peer = peer;
    return new Promise((resolve, reject) => {
      peer.on("open", () => resolve(peer));
      peer.on("error", (err) => {
        const why = err.type === "peer-unavailable"
          ? "gw peer " + $("target").value + " is not connected to this signaling server."
          : "Signaling error (" + err.type + "): " + err.message;
        setStatus("failed", why);
        reject(err);
      });
      peer.on("disconnected", () => setStatus("failed", "Lost the signaling server; reload to retry."));
    });
  }

  async function watch() {
    const target = $("target").value.trim();
    if (!target) return;
    hangup();
    let peer;
    try {
      peer = await peerFor($("key").value.trim() || "peerjs");
    } catch (_) {
      return;
    }
    let local = new MediaStream();
    if ($("send-media").checked) {
      try {
        local = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      } catch (err) {
        setStatus("failed", "No camera or microphone: " + err.message);
        return;
      }
    }
    setStatus("connecting", "Calling " + target + "…");
    // PeerJS needs a stream to call; an empty one with receive-only offers
    // watches without sending.
    const call = peer.call(target, local, {
      metadata: { viewer: "gw" },
      constraints: { offerToReceiveAudio: true, offerToReceiveVideo: true },
    });
    state.call = call;
    $("hangup").disabled = false;
    const noMedia = setTimeout(() => {
      if (state.call === call && state.status === "connecting") {
        setStatus("failed", "No media from " + target + " yet: is an app answering its calls (POST /media/connections/{id}/answer)?");
      }
    }, 15000);
    call.on("stream", (stream) => {
      clearTimeout(noMedia);
      $("remote").srcObject = stream;
      const kinds = stream.getTracks().map((t) => t.kind).join(" and ") || "no tracks";
      setStatus("connected", "Connected to " + target + ": receiving " + kinds + ".");
    });
    call.on("close", () => {
      clearTimeout(noMedia);
      if (state.call === call) setStatus("idle", "Call with " + target + " closed.");
    });
    call.on("error", (err) => setStatus("failed", "Call failed: " + err.message));
    const pc = call.peerConnection;
    if (pc) {
      pc.addEventListener("iceconnectionstatechange", () => {
        if (pc.iceConnectionState === "failed") {
          setStatus("failed", "No network path to " + target + " (ICE failed): check that this browser can reach gw's --media-addr, or give ICE servers with &ice=.");
        }
      });
    }
  }

  function hangup() {
    if (state.call) {
      const call = state.call;
      state.call = null;
      call.close();
    }
    $("remote").srcObject = null;
    $("hangup").disabled = true;
  }

  async function openData() {
    const target = $("target").value.trim();
    if (!target) return;
    let peer;
    try {
      peer = await peerFor($("key").value.trim() || "peerjs");
    } catch (_) {
      return;
    }
    if (state.data) state.data.close();
    const conn = peer.connect(target, { serialization: $("serialization").value, reliable: true });
    state.data = conn;
    log("info", "opening a data channel (" + conn.serialization + ") to " + target);
    conn.on("open", () => {
      $("message").disabled = false;
      $("send-button").disabled = false;
      log("info", "data channel open");
    });
    conn.on("data", (d) => log("in", describe(d)));
    conn.on("close", () => {
      $("message").disabled = true;
      $("send-button").disabled = true;
      log("info", "data channel closed");
    });
    conn.on("error", (err) => log("info", "data channel error: " + err.message));
  }

  $("call").addEventListener("submit", (e) => {
    e.preventDefault();
    watch();
  });
  $("hangup").addEventListener("click", hangup);
  $("open-data").addEventListener("submit", (e) => {
    e.preventDefault();
    openData();
  });
  $("send").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("message").value;
    if (!state.data || !state.data.open || text === "") return;
    state.data.send(text);
    log("out", text);
    $("message").value = "";
  });

  if (params.get("peer")) {
    $("target").value = params.get("peer");
    if (params.get("key")) $("key").value = params.get("key");
    $("send-media").checked = params.get("send") === "1";
    watch();
  }
})();
