package main

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/veloxsip/velox/internal/sipptest"
)

// Server is one server under test: a row of the results table.
type Server struct {
	// Name labels the row (and selects it with -servers).
	Name string
	// Kind is the implementation ("velox" or "kamailio"); the harness
	// treats every kind the same way, Kind only chooses which binary a
	// missing-binary check looks for.
	Kind string
	// Command is the executable; Args its arguments.
	Command string
	Args    []string
}

// Suite is a benchmark: a pair of SIPp scenarios and the servers to compare.
// Add a suite (stateful, registration, ...) by appending to suites.
type Suite struct {
	// Name selects the suite with -suite.
	Name string
	// Description is printed above the table.
	Description string
	// UAC and UAS are scenario files in bench/scenarios.
	UAC, UAS string
	// Transport is SIPp's -t mode for both ("u1" when empty, "t1" for TCP).
	Transport string
	// Servers builds the server list for the given settings.
	Servers func(e Env) []Server
	// Candidate is the server whose CPU per call is compared, Baselines
	// the servers it is compared against (the best of them).
	Candidate string
	Baselines []string
	// Setup, when set, prepares the session's files in e.Work before the
	// first run (kinds: the Kinds of the servers that will run) and
	// returns notes for the report.
	Setup func(e Env, kinds map[string]bool) ([]string, error)
	// UACArgs, when set, are extra SIPp UAC arguments (an injection file).
	UACArgs func(e Env) []string
}

// Env is what suites need to build their command lines.
type Env struct {
	// Root is the module root (configs are found relative to it).
	Root string
	// Velox and Kamailio are the executables.
	Velox, Kamailio string
	// Listen is the proxy's host:port; To is the UAS host:port.
	Listen, To string
	// VeloxWorkers is passed as --workers when > 0.
	VeloxWorkers int
	// Work is the session's work directory (suite files live there).
	Work string
	// Users is the number of subscribers of the authentication suites.
	Users int
}

// Files of the authentication suites, in Env.Work.
func (e Env) veloxDB() string    { return filepath.Join(e.Work, "velox-users.db") }
func (e Env) kamailioDB() string { return filepath.Join(e.Work, "kamailio-users.db") }
func (e Env) usersCSV() string   { return filepath.Join(e.Work, "users.csv") }
func (e Env) usersInf() string   { return filepath.Join(e.Work, "users-sipp.csv") }

func (e Env) veloxArgs(extra ...string) []string {
	args := append([]string{}, extra...)
	if e.VeloxWorkers > 0 {
		args = append(args, "--workers", strconv.Itoa(e.VeloxWorkers))
	}
	return args
}

func kamailioServer(e Env, name, cfg string, children int) Server {
	// Stateful Kamailio keeps every transaction in shared memory for its
	// wait time, the registrar every binding: give them 1 GiB so they do
	// not fail for lack of memory.
	shm := 128
	if cfg != "stateless.cfg" {
		shm = 1024
	}
	return Server{
		Name: name, Kind: "kamailio", Command: e.Kamailio,
		Args: sipptest.KamailioArgsMem(filepath.Join(e.Root, "bench", "kamailio", cfg), children, e.Listen, e.To, shm),
	}
}

var suites = []Suite{
	{
		Name:        "stateless",
		Description: "stateless record-routing proxy, basic call INVITE/100/180/200/ACK/BYE/200",
		UAC:         "uac.xml", UAS: "uas.xml",
		Servers: func(e Env) []Server {
			return []Server{
				{Name: "velox", Kind: "velox", Command: e.Velox, Args: e.veloxArgs("proxy",
					"--listen", "udp:"+e.Listen, "--to", e.To, "--stateless")},
				kamailioServer(e, "kamailio-c1", "stateless.cfg", 1),
				kamailioServer(e, "kamailio-c2", "stateless.cfg", 2),
			}
		},
		Candidate: "velox",
		Baselines: []string{"kamailio-c1", "kamailio-c2"},
	},
	{
		Name:        "stateful",
		Description: "transaction-stateful record-routing proxy (Kamailio tm t_relay), basic call",
		UAC:         "uac.xml", UAS: "uas.xml",
		Servers: func(e Env) []Server {
			return []Server{
				{Name: "velox", Kind: "velox", Command: e.Velox, Args: e.veloxArgs("proxy",
					"--listen", "udp:"+e.Listen, "--to", e.To)},
				kamailioServer(e, "kamailio-c1", "stateful.cfg", 1),
				kamailioServer(e, "kamailio-c2", "stateful.cfg", 2),
			}
		},
		Candidate: "velox",
		Baselines: []string{"kamailio-c1", "kamailio-c2"},
	},
	{
		Name: "tcp",
		Description: "transaction-stateful record-routing proxy over TCP (caller and callee connect over TCP; " +
			"Kamailio tm t_relay with tcp_children), basic call",
		UAC: "uac.xml", UAS: "uas.xml", Transport: "t1",
		Servers: func(e Env) []Server {
			kam := func(name string, children int) Server {
				s := kamailioServer(e, name, "stateful-tcp.cfg", children)
				s.Args = append(s.Args, "-A", "LISTEN_TCP=tcp:"+e.Listen, "-A", `TCP_DEST="sip:`+e.To+`;transport=tcp"`)
				return s
			}
			return []Server{
				{Name: "velox", Kind: "velox", Command: e.Velox, Args: e.veloxArgs("proxy",
					"--listen", "udp:"+e.Listen, "--listen", "tcp:"+e.Listen, "--to", "tcp:"+e.To)},
				kam("kamailio-c1", 1),
				kam("kamailio-c2", 2),
			}
		},
		Candidate: "velox",
		Baselines: []string{"kamailio-c1", "kamailio-c2"},
	},
	{
		Name:        "register",
		Description: "registrar, one REGISTER of a new user per call, answered 200 (Kamailio save(\"location\"), usrloc in memory)",
		UAC:         "register/register_load.xml", UAS: "uas.xml",
		Servers: func(e Env) []Server {
			return []Server{
				{Name: "velox", Kind: "velox", Command: e.Velox, Args: e.veloxArgs("registrar",
					"--listen", "udp:"+e.Listen)},
				kamailioServer(e, "kamailio-c1", "registrar.cfg", 1),
				kamailioServer(e, "kamailio-c2", "registrar.cfg", 2),
			}
		},
		Candidate: "velox",
		Baselines: []string{"kamailio-c1", "kamailio-c2"},
	},
	{
		Name: "register-auth",
		Description: "registrar with digest authentication (MD5, qop=auth): REGISTER, 401, REGISTER with credentials, 200, " +
			"each call a different subscriber of the same table (velox registrar --auth --db; Kamailio auth_check with auth_db on db_sqlite, then save(\"location\"), usrloc in memory)",
		UAC: "register/register_auth_load.xml", UAS: "uas.xml",
		Servers: func(e Env) []Server {
			kam := func(name string, children int) Server {
				s := kamailioServer(e, name, "registrar-auth.cfg", children)
				s.Args = append(s.Args, "-A", `DBURL="sqlite://`+e.kamailioDB()+`"`)
				return s
			}
			return []Server{
				{Name: "velox", Kind: "velox", Command: e.Velox, Args: e.veloxArgs("registrar",
					"--listen", "udp:"+e.Listen, "--domain", benchDomain, "--auth", "--db", e.veloxDB(),
					"--auth-algorithms", "MD5")},
				kam("kamailio-c1", 1),
				kam("kamailio-c2", 2),
			}
		},
		Candidate: "velox",
		Baselines: []string{"kamailio-c1", "kamailio-c2"},
		Setup:     setupSubscribers,
		UACArgs:   func(e Env) []string { return []string{"-inf", e.usersInf()} },
	},
}

func findSuite(name string) (Suite, error) {
	for _, s := range suites {
		if s.Name == name {
			return s, nil
		}
	}
	names := ""
	for _, s := range suites {
		names += " " + s.Name
	}
	return Suite{}, fmt.Errorf("unknown suite %q (have:%s)", name, names)
}
