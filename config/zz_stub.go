package config

// TEMPORARY stand-in for the config branch; deleted at merge.

import (
	"fmt"
	"net/netip"
	"strings"
)

type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

func Errorf(pos Pos, format string, args ...any) error {
	return &Error{pos, fmt.Sprintf(format, args...)}
}

type Errors []error

func (e Errors) Error() string {
	var s []string
	for _, x := range e {
		s = append(s, x.Error())
	}
	return strings.Join(s, "\n")
}

type Step struct {
	Module string
	If     string
	IfPos  Pos
	Pos    Pos
}

func (s *Step) Decode(v any) error { return nil }

type LogConfig struct{ Level string }
type Listener struct {
	Proto                  string
	Addr                   netip.AddrPort
	Workers                int
	RecvBuffer, SendBuffer int
	Advertise              string
	AdvertisePort          uint16
	Pos                    Pos
}
type Config struct {
	Log       LogConfig
	Listeners []Listener
	Request   []Step
	File      string
}

var DefaultYAML = []byte("")

func Default() *Config                  { return &Config{} }
func Load(path string) (*Config, error) { return &Config{}, nil }
