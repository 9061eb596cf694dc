package datarelay

// Serialization is how a data connection's messages are encoded.
type Serialization uint8

// The serializations of PeerJS, named as the REST API names them.
const (
	Binary     Serialization = iota // API "BINARY", PeerJS "binary"
	BinaryUTF8                      // API "BINARY_UTF8", PeerJS "binary-utf8"
	JSON                            // API "JSON", PeerJS "json"
	None                            // API "NONE", PeerJS "raw"
	numSerializations
)

var (
	apiNames    = [numSerializations]string{"BINARY", "BINARY_UTF8", "JSON", "NONE"}
	peerJSNames = [numSerializations]string{"binary", "binary-utf8", "json", "raw"}
)

// APINames lists the REST API's names, for error messages.
func APINames() []string { return apiNames[:] }

// ParseAPI reads a REST API name ("BINARY", ...).
func ParseAPI(s string) (Serialization, bool) { return parse(&apiNames, s) }

// ParsePeerJS reads a PeerJS name ("binary", ...), as offers carry it.
func ParsePeerJS(s string) (Serialization, bool) { return parse(&peerJSNames, s) }

func parse(names *[numSerializations]string, s string) (Serialization, bool) {
	for i, n := range names {
		if n == s {
			return Serialization(i), true
		}
	}
	return 0, false
}

// APIName is the REST API's name.
func (s Serialization) APIName() string {
	if s >= numSerializations {
		return "UNKNOWN"
	}
	return apiNames[s]
}

// PeerJSName is the name PeerJS offers carry.
func (s Serialization) PeerJSName() string {
	if s >= numSerializations {
		return "unknown"
	}
	return peerJSNames[s]
}

// String is the API name.
func (s Serialization) String() string { return s.APIName() }

// packed reports whether messages are js-binarypack values.
func (s Serialization) packed() bool { return s == Binary || s == BinaryUTF8 }
