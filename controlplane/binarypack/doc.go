// Package binarypack encodes and decodes js-binarypack, the serialization
// PeerJS data connections use for their "binary" and "binary-utf8" modes
// (npm peerjs-js-binarypack 2.x), and splits and joins the chunk messages
// PeerJS sends for values that pack to more than [ChunkMTU] bytes.
//
// No maintained Go implementation exists, and MessagePack libraries cannot
// be used: js-binarypack reuses MessagePack's framing but assigns some type
// bytes differently:
//
//	0xa0-0xaf  binary, length 0-15     (MessagePack: fixstr)
//	0xb0-0xbf  string, length 0-15     (MessagePack: fixstr)
//	0xd8/0xd9  string, 16/32-bit length (MessagePack: fixext16/str8)
//	0xda/0xdb  binary, 16/32-bit length (MessagePack: str16/str32)
//	0xc1       undefined               (MessagePack: never used)
//
// Fixints, nil, booleans, float32/64, (u)int8-64, arrays and maps are as in
// MessagePack. bin8-32, ext and fixext (0xc4-0xc9, 0xd4-0xd7) do not exist;
// the JavaScript unpacker silently reads them as undefined, Unpack rejects
// them.
//
// # Values
//
// Go values map to JavaScript ones as follows:
//
//	nil                   null
//	Undefined{}           undefined
//	bool                  boolean
//	int*, uint*, float*   number
//	string                string (its bytes, which should be UTF-8; JS packs a Date as its toString())
//	[]byte                ArrayBuffer (typed arrays, Blobs and Node Buffers pack the same way)
//	[]any                 Array
//	map[string]any        plain object (or class instance)
//
// JavaScript has one number type, and the JS packer writes a number as the
// smallest integer encoding that holds it whenever it is integral, and as a
// float64 otherwise. Pack does the same for Go floats, so Pack(3.0) and
// Pack(3) are both 0x03, and the output is byte for byte what the JS packer
// writes for the same value. Unpack returns every integer encoding as int64
// (uint64 only above math.MaxInt64) and both float encodings as float64.
//
// Where the JS packer is wrong, Pack is right rather than identical: it
// writes standard IEEE 754 doubles (the JS packer computes the exponent
// with a logarithm and corrupts some values next to powers of two, all
// subnormals and NaN), packs 2^63 as uint64 (JS: int64 -2^63), packs NaN,
// ±Inf and integral values beyond the 64-bit range as float64 (JS: throws
// or writes 0) and packs Undefined as 0xc1 (JS writes undefined as null).
// The JS unpacker has bugs of its own that no encoding choice avoids
// without leaving the JS packer's bytes: it reads int64 values below -2^31
// rounded to a multiple of 2048 (so they do not survive even a trip
// between two PeerJS peers), and it misreads float 0, subnormals and NaN
// (NaN arrives as Infinity).
//
// Object keys are packed in the order a JavaScript engine enumerates them:
// array-index keys ("0" to "4294967294") in numeric order, then the others
// sorted bytewise. Unpack accepts only string keys (the only ones a
// JavaScript sender writes); a repeated key keeps its last value, as in
// JavaScript.
//
// Unpack never panics on malformed input, allocates in proportion to the
// input, limits nesting, and rejects truncated input and trailing bytes
// (where the JavaScript unpacker reads missing bytes as zero and ignores
// extra ones).
//
// # Chunks
//
// PeerJS splits a packed message longer than [ChunkMTU] (16300) bytes into
// 16300-byte slices and sends each one as the packed object
// {__peerData: id, n: index, data: slice, total: count}, with id counting
// from 1 per connection; the receiver joins slices by id and unpacks the
// result. {__peerData: {type: "close"}} asks the receiver to close the
// connection. [Chunker] and [Reassembler] implement both sides. A PeerJS
// receiver cannot take a top-level null or undefined: it reads __peerData
// from the unpacked value and throws.
package binarypack
