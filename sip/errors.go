package sip

// Error is a parse or validation failure. Reason is short text fit for the
// reason phrase of the response sent back (e.g. "Malformed Via header");
// Code is the status code to answer with (400 unless the RFC says otherwise).
type Error struct {
	Code   int
	Reason string
}

func (e *Error) Error() string { return "sip: " + e.Reason }

func badRequest(reason string) *Error { return &Error{Code: 400, Reason: reason} }

// Parse and validation errors. They are package values so returning one
// never allocates.
var (
	ErrEmpty             = badRequest("Empty message")
	ErrStartLine         = badRequest("Malformed start line")
	ErrMethod            = badRequest("Malformed method")
	ErrRequestURI        = badRequest("Malformed Request-URI")
	ErrVersion           = &Error{Code: 505, Reason: "Version Not Supported"}
	ErrStatus            = badRequest("Malformed status line")
	ErrHeaderLine        = badRequest("Malformed header line")
	ErrHeaderName        = badRequest("Malformed header name")
	ErrTooManyHeaders    = badRequest("Too many headers")
	ErrNoHeaderEnd       = badRequest("Incomplete headers")
	ErrContentLength     = badRequest("Malformed Content-Length")
	ErrBodyTruncated     = badRequest("Body shorter than Content-Length")
	ErrMessageTooLarge   = &Error{Code: 513, Reason: "Message Too Large"}
	ErrVia               = badRequest("Malformed Via header")
	ErrNoVia             = badRequest("Missing Via header")
	ErrFrom              = badRequest("Malformed From header")
	ErrTo                = badRequest("Malformed To header")
	ErrNoFrom            = badRequest("Missing From header")
	ErrNoTo              = badRequest("Missing To header")
	ErrCallID            = badRequest("Missing or malformed Call-ID")
	ErrCSeq              = badRequest("Malformed CSeq header")
	ErrNoCSeq            = badRequest("Missing CSeq header")
	ErrCSeqMethod        = badRequest("CSeq method does not match")
	ErrMaxForwards       = badRequest("Malformed Max-Forwards")
	ErrExpires           = badRequest("Malformed Expires")
	ErrContact           = badRequest("Malformed Contact header")
	ErrRoute             = badRequest("Malformed Route header")
	ErrDuplicateHeader   = badRequest("Duplicate single-value header")
	ErrTooManyEdits      = &Error{Code: 500, Reason: "Too many message edits"}
	ErrEditOverlap       = &Error{Code: 500, Reason: "Overlapping message edits"}
	ErrAuthorization     = badRequest("Malformed Authorization header")
	ErrUnsupportedScheme = &Error{Code: 416, Reason: "Unsupported URI Scheme"}
	errNotARequest       = badRequest("Not a request")
	errNotAResponse      = badRequest("Not a response")
	errHeaderNotPresent  = badRequest("Header not present")
)
