package sip

import "bytes"

// ParamValue returns the value of the named parameter in a raw parameter
// list such as `transport=udp;lr;maddr=1.2.3.4` (the text after the first
// ';', without it). The name matches in any case; a quoted value is
// returned without its quotes; a flag parameter gives an empty value and
// found. It does not allocate.
func ParamValue(params []byte, name string) (value []byte, found bool) {
	it := NewParamIter(params)
	for {
		n, v, ok := it.Next()
		if !ok {
			return nil, false
		}
		if equalFold(n, name) {
			return v, true
		}
	}
}

// nameStop and valueStop end a parameter name and an unquoted value.
var nameStop, valueStop = func() (n, v [256]bool) {
	for _, c := range "=; \t\r\n" {
		n[c] = true
	}
	for _, c := range "; \t" {
		v[c] = true
	}
	return n, v
}()

// ParamIter walks a raw parameter list. Quoted strings may hold ';', ','
// and escaped quotes; whitespace around names, '=' and ';' is skipped.
type ParamIter struct{ rest []byte }

// NewParamIter returns an iterator over params.
func NewParamIter(params []byte) ParamIter { return ParamIter{rest: params} }

// Next returns the next parameter; ok is false at the end.
func (it *ParamIter) Next() (name, value []byte, ok bool) {
	b := it.rest
	for {
		i := skipWS(b, 0)
		if i >= len(b) {
			it.rest = nil
			return nil, nil, false
		}
		if b[i] == ';' {
			b = b[i+1:]
			continue
		}
		// name runs to '=', ';' or whitespace
		j := i
		for j < len(b) && !nameStop[b[j]] {
			j++
		}
		name = b[i:j]
		k := skipWS(b, j)
		if k < len(b) && b[k] == '=' {
			k = skipWS(b, k+1)
			if k < len(b) && b[k] == '"' {
				e := k + 1
				for e < len(b) && b[e] != '"' {
					if b[e] == '\\' {
						e++
					}
					e++
				}
				if e > len(b) {
					e = len(b)
				}
				value = b[k+1 : e]
				k = e + 1
			} else {
				e := k
				for e < len(b) && !valueStop[b[e]] {
					e++
				}
				value = b[k:e]
				k = e
			}
		} else {
			value = b[j:j]
		}
		// skip to the next ';'
		if k < len(b) && b[k] != ';' {
			if n := bytes.IndexByte(b[k:], ';'); n >= 0 {
				k += n
			} else {
				k = len(b)
			}
		}
		if k < len(b) {
			it.rest = b[k+1:]
		} else {
			it.rest = nil
		}
		if len(name) == 0 {
			b = it.rest
			continue
		}
		return name, value, true
	}
}

// validParams reports whether every ';'-separated parameter has a name
// (RFC 3261 allows no empty parameter such as ";;").
func validParams(params []byte) bool {
	if bytes.IndexByte(params, '"') >= 0 {
		return validQuotedParams(params)
	}
	// Fast path without quotes: every segment between ';' holds a
	// non-blank character (normally its first).
	for {
		i := bytes.IndexByte(params, ';')
		seg := params
		if i >= 0 {
			seg = params[:i]
		}
		if skipWS(seg, 0) == len(seg) {
			return false
		}
		if i < 0 {
			return true
		}
		params = params[i+1:]
	}
}

// validQuotedParams is validParams for a list holding quoted strings.
func validQuotedParams(params []byte) bool {
	inQuote := false
	empty := true
	for i := 0; i < len(params); i++ {
		switch c := params[i]; {
		case inQuote:
			if c == '\\' {
				i++
			} else if c == '"' {
				inQuote = false
			}
		case c == '"':
			inQuote, empty = true, false
		case c == ';':
			if empty {
				return false
			}
			empty = true
		case c != ' ' && c != '\t' && c != '\r' && c != '\n':
			empty = false
		}
	}
	return !empty
}
