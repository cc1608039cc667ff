package transport

import "strings"

// Proto identifies a transport.
type Proto uint8

// The transports. UDP is served by UDPListener, the others by Streams.
const (
	UDP Proto = iota + 1
	TCP
	TLS
	WS
	WSS
)

// numProtos sizes arrays indexed by Proto.
const numProtos = int(WSS) + 1

var protoNames = [numProtos]string{"", "udp", "tcp", "tls", "ws", "wss"}
var protoVia = [numProtos]string{"", "UDP", "TCP", "TLS", "WS", "WSS"}

// String returns the lower-case name: "udp", "tcp", "tls", "ws" or "wss".
func (p Proto) String() string {
	if int(p) < numProtos && p != 0 {
		return protoNames[p]
	}
	return "proto?"
}

// ViaName returns the transport token of a Via header: "UDP", "TCP", "TLS",
// "WS" or "WSS".
func (p Proto) ViaName() string {
	if int(p) < numProtos && p != 0 {
		return protoVia[p]
	}
	return ""
}

// Reliable reports whether the transport is a stream (all but UDP).
func (p Proto) Reliable() bool { return p >= TCP && p <= WSS }

// Secure reports whether the transport runs over TLS (TLS and WSS).
func (p Proto) Secure() bool { return p == TLS || p == WSS }

// isWS reports whether messages travel in WebSocket frames.
func (p Proto) isWS() bool { return p == WS || p == WSS }

// ParseProto parses a transport name, case-insensitively ("udp", "TCP", ...).
func ParseProto(s string) (Proto, bool) {
	for p := UDP; p <= WSS; p++ {
		if strings.EqualFold(s, protoNames[p]) {
			return p, true
		}
	}
	return 0, false
}
