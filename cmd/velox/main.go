// Command velox is the Velox SIP server: proxy, registrar and redirect
// server. Run "velox help" for the sub-commands.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

const usage = `velox — a SIP proxy, registrar and redirect server

Usage:
  velox run [-c FILE]            run with a config file (default: the embedded config)
  velox proxy --listen udp:IP:PORT --to HOST:PORT [--to HOST:PORT ...] [--fork parallel]
              [--fr-timeout D] [--fr-inv-timeout D] [--stateless] [--workers N]
                                 run a record-routing proxy with no config file
                                 (transaction-stateful unless --stateless)
  velox registrar --listen udp:IP:PORT [--domain D ...] [--redirect] [--auth] [--db FILE] [--persistence write-back]
                                 run a registrar (and proxy to registered users) with no config file
  velox check -c FILE            validate a config file
  velox user add|passwd|del|list|import manage subscribers (see "velox user help")
  velox config                   print the embedded default config
  velox modules                  list the routing modules
  velox version                  print the version
`

func main() {
	args := os.Args[1:]
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	stopProfile := startProfile()
	var err error
	switch cmd {
	case "run":
		err = cmdRun(args)
	case "proxy":
		err = cmdProxy(args)
	case "registrar":
		err = cmdRegistrar(args)
	case "check":
		err = cmdCheck(args)
	case "user":
		err = cmdUser(args)
	case "config":
		err = cmdConfig(args)
	case "modules":
		err = cmdModules(args)
	case "version":
		fmt.Println("velox", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "velox: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	stopProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "velox:", err)
		os.Exit(1)
	}
}
