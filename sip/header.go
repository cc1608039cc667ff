package sip

// HeaderID identifies a header field the server knows by name. Unknown
// headers have the ID HdrOther and are still indexed and reachable by name.
type HeaderID uint8

// Known header fields. Compact forms (RFC 3261 §7.3.3) map to the same IDs.
const (
	HdrOther HeaderID = iota
	HdrVia
	HdrFrom
	HdrTo
	HdrCallID
	HdrCSeq
	HdrMaxForwards
	HdrContact
	HdrRoute
	HdrRecordRoute
	HdrContentLength
	HdrContentType
	HdrContentEncoding
	HdrExpires
	HdrMinExpires
	HdrAuthorization
	HdrProxyAuthorization
	HdrWWWAuthenticate
	HdrProxyAuthenticate
	HdrRequire
	HdrSupported
	HdrProxyRequire
	HdrUnsupported
	HdrAllow
	HdrUserAgent
	HdrServer
	HdrPath
	HdrEvent
	HdrSubject
	HdrReferTo
	HdrReferredBy
	HdrAllowEvents
	HdrSessionExpires
	HdrAcceptContact
	HdrRejectContact
	HdrRequestDisposition
	HdrIdentity
	HdrRetryAfter
	HdrTimestamp
	hdrCount
)

var headerNames = [hdrCount]string{
	HdrOther:              "",
	HdrVia:                "Via",
	HdrFrom:               "From",
	HdrTo:                 "To",
	HdrCallID:             "Call-ID",
	HdrCSeq:               "CSeq",
	HdrMaxForwards:        "Max-Forwards",
	HdrContact:            "Contact",
	HdrRoute:              "Route",
	HdrRecordRoute:        "Record-Route",
	HdrContentLength:      "Content-Length",
	HdrContentType:        "Content-Type",
	HdrContentEncoding:    "Content-Encoding",
	HdrExpires:            "Expires",
	HdrMinExpires:         "Min-Expires",
	HdrAuthorization:      "Authorization",
	HdrProxyAuthorization: "Proxy-Authorization",
	HdrWWWAuthenticate:    "WWW-Authenticate",
	HdrProxyAuthenticate:  "Proxy-Authenticate",
	HdrRequire:            "Require",
	HdrSupported:          "Supported",
	HdrProxyRequire:       "Proxy-Require",
	HdrUnsupported:        "Unsupported",
	HdrAllow:              "Allow",
	HdrUserAgent:          "User-Agent",
	HdrServer:             "Server",
	HdrPath:               "Path",
	HdrEvent:              "Event",
	HdrSubject:            "Subject",
	HdrReferTo:            "Refer-To",
	HdrReferredBy:         "Referred-By",
	HdrAllowEvents:        "Allow-Events",
	HdrSessionExpires:     "Session-Expires",
	HdrAcceptContact:      "Accept-Contact",
	HdrRejectContact:      "Reject-Contact",
	HdrRequestDisposition: "Request-Disposition",
	HdrIdentity:           "Identity",
	HdrRetryAfter:         "Retry-After",
	HdrTimestamp:          "Timestamp",
}

// String returns the canonical name of the header ("" for HdrOther).
func (id HeaderID) String() string {
	if id < hdrCount {
		return headerNames[id]
	}
	return ""
}

// compactForms maps RFC 3261 §7.3.3 (and later RFCs') one-letter names.
var compactForms = [26]HeaderID{
	'a' - 'a': HdrAcceptContact,
	'b' - 'a': HdrReferredBy,
	'c' - 'a': HdrContentType,
	'd' - 'a': HdrRequestDisposition,
	'e' - 'a': HdrContentEncoding,
	'f' - 'a': HdrFrom,
	'i' - 'a': HdrCallID,
	'j' - 'a': HdrRejectContact,
	'k' - 'a': HdrSupported,
	'l' - 'a': HdrContentLength,
	'm' - 'a': HdrContact,
	'o' - 'a': HdrEvent,
	'r' - 'a': HdrReferTo,
	's' - 'a': HdrSubject,
	't' - 'a': HdrTo,
	'u' - 'a': HdrAllowEvents,
	'v' - 'a': HdrVia,
	'x' - 'a': HdrSessionExpires,
	'y' - 'a': HdrIdentity,
}

// LookupHeader returns the ID of a header name, accepting any letter case and
// the compact forms. It does not allocate.
func LookupHeader(name []byte) HeaderID {
	if len(name) == 1 {
		c := lower(name[0])
		if c >= 'a' && c <= 'z' {
			return compactForms[c-'a']
		}
		return HdrOther
	}
	if len(name) == 0 {
		return HdrOther
	}
	// Dispatch on length and first letter, then confirm with a fold compare.
	for _, id := range headersByLen(len(name), lower(name[0])) {
		if equalFold(name, headerNames[id]) {
			return id
		}
	}
	return HdrOther
}

// LookupHeaderString is LookupHeader for a string name.
func LookupHeaderString(name string) HeaderID {
	if len(name) == 1 {
		c := lower(name[0])
		if c >= 'a' && c <= 'z' {
			return compactForms[c-'a']
		}
		return HdrOther
	}
	if len(name) == 0 {
		return HdrOther
	}
	for _, id := range headersByLen(len(name), lower(name[0])) {
		if equalFoldString(name, headerNames[id]) {
			return id
		}
	}
	return HdrOther
}

// headerIndex buckets known headers by (length, lowercase first letter).
var headerIndex = func() map[[2]int][]HeaderID {
	m := make(map[[2]int][]HeaderID)
	for id := HeaderID(1); id < hdrCount; id++ {
		n := headerNames[id]
		k := [2]int{len(n), int(lower(n[0]))}
		m[k] = append(m[k], id)
	}
	return m
}()

// headerTable is headerIndex flattened into an array for allocation-free lookup.
var headerTable = func() (t [24][26][]HeaderID) {
	for k, ids := range headerIndex {
		if k[0] < len(t) && k[1] >= 'a' && k[1] <= 'z' {
			t[k[0]][k[1]-'a'] = ids
		}
	}
	return t
}()

func headersByLen(n int, first byte) []HeaderID {
	if n >= len(headerTable) || first < 'a' || first > 'z' {
		return nil
	}
	return headerTable[n][first-'a']
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold reports whether b equals s ignoring ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if b[i] != s[i] && lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func equalFoldString(a, s string) bool {
	if len(a) != len(s) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] != s[i] && lower(a[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// EqualFold reports whether the bytes b equal the string s, ignoring ASCII case.
func EqualFold(b []byte, s string) bool { return equalFold(b, s) }
