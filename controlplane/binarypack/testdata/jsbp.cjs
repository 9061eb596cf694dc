// Test oracle for package binarypack: runs the real peerjs-js-binarypack and
// the real PeerJS BinaryPack data connection (over a fake RTCPeerConnection)
// under node. NODE_PATH must point at testdata/npm/node_modules.
//
// stdin:  {"ops": [op, ...]}   stdout: {"results": [result, ...]}
//
// Values travel as tagged JSON ("descs"), exact for every JS value used:
//   {t:"null"} {t:"undef"} {t:"bool",v} {t:"num",bits:"<float64 bits, hex>"}
//   {t:"str",v} {t:"bin",hex,as?} {t:"arr",v:[desc]} {t:"map",v:[[key,desc]]}
//   {t:"date",ms}
// "as" builds binaries as another JS type: Uint8Array, Int16Array, Buffer,
// Blob, DataView or "view" (a Uint8Array into the middle of a larger buffer).
// Map pairs are inserted in the order given; unpacked objects report
// Object.keys order.
//
// ops:
//   {op:"pack", v}                 -> {hex} | {err}
//   {op:"unpack", hex}             -> {v} | {err}
//   {op:"send", conn, v}           -> {msgs:[hex]}  what conn.send(v) puts on the channel
//   {op:"close", conn}             -> {msgs:[hex]}  what conn.close({flush:true}) sends
//   {op:"recv", conn, msgs:[hex]}  -> {events:[{data:desc} | {close:true} | {err}]}
//   {op:"info"}                    -> {chunkedMTU}
// conn names a connection, created on first use (its chunk ids count from 1).
"use strict";

const bp = require("peerjs-js-binarypack");

// PeerJS needs a WebRTC implementation to build a data connection; the fake
// one records what is sent and lets the test deliver messages.
class FakeDataChannel {
	constructor(label) {
		this.label = label;
		this.sent = [];
		this.listeners = {};
		this.bufferedAmount = 0;
		this.readyState = "open";
	}
	addEventListener(type, fn) {
		(this.listeners[type] ||= []).push(fn);
	}
	removeEventListener() {}
	send(m) {
		const u8 = m instanceof ArrayBuffer ? new Uint8Array(m) : new Uint8Array(m.buffer, m.byteOffset, m.byteLength);
		this.sent.push(Buffer.from(u8).toString("hex"));
	}
	close() {}
	deliver(data) {
		const ev = { data };
		if (this.onmessage) this.onmessage(ev);
		for (const fn of this.listeners.message || []) fn(ev);
	}
}
class FakePeerConnection {
	createDataChannel(label) {
		return new FakeDataChannel(label);
	}
	createOffer() {
		return new Promise(() => {}); // negotiation never completes; not needed
	}
	addEventListener() {}
	removeEventListener() {}
	getSenders() {
		return [];
	}
	close() {}
}
globalThis.RTCPeerConnection = FakePeerConnection;

const { Peer } = require("peerjs");

// The BinaryPack connection class is reachable only through a Peer's
// serializer table. This Peer never connects (no WebRTC at load time makes
// it abort asynchronously; the error is ignored).
const peer = new Peer({ host: "127.0.0.1", port: 9, secure: false, debug: 0 });
peer.on("error", () => {});
const BinaryPack = peer._serializers.binary;

const fakeProvider = {
	options: { config: {} },
	socket: { send() {} },
	_removeConnection() {},
	emitError() {},
};

const conns = new Map();
function conn(name) {
	let c = conns.get(name);
	if (!c) {
		const dc = new BinaryPack("remote", fakeProvider, { serialization: "binary", reliable: true });
		dc.events = [];
		dc.on("data", (d) => dc.events.push({ data: toDesc(d) }));
		dc.on("close", () => dc.events.push({ close: true }));
		dc.on("error", (e) => dc.events.push({ err: String(e && e.message) }));
		dc.fake = dc.dataChannel; // close() drops the connection's reference
		dc.fake.onopen(); // marks the connection open
		c = dc;
		conns.set(name, c);
	}
	return c;
}

function fromHex(hex) {
	return new Uint8Array(Buffer.from(hex, "hex")).buffer;
}

function numFromBits(bits) {
	return Buffer.from(bits, "hex").readDoubleBE(0);
}

function bitsOfNum(n) {
	const b = Buffer.alloc(8);
	b.writeDoubleBE(n, 0);
	return b.toString("hex");
}

function fromDesc(d) {
	switch (d.t) {
		case "null":
			return null;
		case "undef":
			return undefined;
		case "bool":
			return d.v;
		case "num":
			return numFromBits(d.bits);
		case "str":
			return d.v;
		case "date":
			return new Date(d.ms);
		case "bin": {
			const bytes = Buffer.from(d.hex, "hex");
			switch (d.as || "ArrayBuffer") {
				case "ArrayBuffer":
					return new Uint8Array(bytes).buffer;
				case "Uint8Array":
					return new Uint8Array(bytes);
				case "Int16Array":
					return new Int16Array(new Uint8Array(bytes).buffer);
				case "Buffer":
					return Buffer.from(bytes);
				case "Blob":
					return new Blob([new Uint8Array(bytes)]);
				case "DataView":
					return new DataView(new Uint8Array(bytes).buffer);
				case "view": {
					const big = new Uint8Array(bytes.length + 8);
					big.set(bytes, 4);
					return big.subarray(4, 4 + bytes.length);
				}
			}
			throw new Error("bad as " + d.as);
		}
		case "arr":
			return d.v.map(fromDesc);
		case "map": {
			const o = {};
			for (const [k, v] of d.v) o[k] = fromDesc(v);
			return o;
		}
	}
	throw new Error("bad desc " + JSON.stringify(d));
}

function toDesc(v) {
	if (v === null) return { t: "null" };
	if (v === undefined) return { t: "undef" };
	switch (typeof v) {
		case "boolean":
			return { t: "bool", v };
		case "number":
			return { t: "num", bits: bitsOfNum(v) };
		case "string":
			return { t: "str", v };
	}
	if (v instanceof ArrayBuffer) return { t: "bin", hex: Buffer.from(new Uint8Array(v)).toString("hex") };
	if (ArrayBuffer.isView(v)) return { t: "bin", hex: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex") };
	if (Array.isArray(v)) return { t: "arr", v: v.map(toDesc) };
	return { t: "map", v: Object.keys(v).map((k) => [k, toDesc(v[k])]) };
}

async function run(op) {
	try {
		switch (op.op) {
			case "pack":
				return { hex: Buffer.from(new Uint8Array(await bp.pack(fromDesc(op.v)))).toString("hex") };
			case "unpack":
				return { v: toDesc(bp.unpack(fromHex(op.hex))) };
			case "send": {
				const c = conn(op.conn);
				const before = c.fake.sent.length;
				await c.send(fromDesc(op.v));
				return { msgs: c.fake.sent.slice(before) };
			}
			case "close": {
				const c = conn(op.conn);
				const before = c.fake.sent.length;
				c.close({ flush: true });
				return { msgs: c.fake.sent.slice(before) };
			}
			case "recv": {
				const c = conn(op.conn);
				c.events = [];
				for (const hex of op.msgs) {
					try {
						c.fake.deliver(fromHex(hex));
					} catch (e) {
						c.events.push({ err: String(e && e.message) });
					}
				}
				return { events: c.events };
			}
			case "info": {
				const { util } = require("peerjs");
				return { chunkedMTU: util.chunkedMTU };
			}
		}
		throw new Error("bad op " + op.op);
	} catch (e) {
		return { err: String(e && e.message) };
	}
}

async function main() {
	const chunks = [];
	for await (const c of process.stdin) chunks.push(c);
	const { ops } = JSON.parse(Buffer.concat(chunks).toString("utf8"));
	const results = [];
	for (const op of ops) results.push(await run(op));
	process.stdout.write(JSON.stringify({ results }), () => process.exit(0));
}

main().catch((e) => {
	process.stderr.write(String(e && e.stack) + "\n");
	process.exit(1);
});
