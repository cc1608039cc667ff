// Package interop drives the velox binary (and Kamailio as a reference
// implementation of the same behaviour) with SIPp scenarios. It depends on
// no velox Go package: it only runs executables.
package interop

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/veloxsip/velox/internal/sipptest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	sipptest.CleanupBuilds()
	os.Exit(code)
}

// statelessServer is one implementation of a stateless record-routing proxy
// under test.
type statelessServer struct {
	name string
	// start runs the proxy on 127.0.0.1:listen forwarding to 127.0.0.1:to.
	start func(t *testing.T, listen, to int)
}

func statelessServers() []statelessServer {
	return []statelessServer{
		{name: "velox", start: func(t *testing.T, listen, to int) {
			bin := sipptest.BuildVelox(t)
			addr := fmt.Sprintf("127.0.0.1:%d", listen)
			sipptest.StartServerForTest(t, "velox", addr, bin, "proxy",
				"--listen", "udp:"+addr, "--to", fmt.Sprintf("127.0.0.1:%d", to), "--stateless")
		}},
		{name: "kamailio", start: func(t *testing.T, listen, to int) {
			kam := sipptest.RequireKamailio(t)
			cfg := sipptest.RepoPath(t, "bench/kamailio/stateless.cfg")
			addr := fmt.Sprintf("127.0.0.1:%d", listen)
			args := sipptest.KamailioArgs(cfg, 1, addr, fmt.Sprintf("127.0.0.1:%d", to))
			sipptest.StartServerForTest(t, "kamailio", addr, append([]string{kam}, args...)...)
		}},
	}
}

// proxyFixture is a running proxy with a SIPp UAS behind it.
type proxyFixture struct {
	proxy string // host:port of the proxy
	uas   *sipptest.UAS
}

func startFixture(t *testing.T, s statelessServer) proxyFixture {
	t.Helper()
	sipptest.RequireSipp(t)
	uas := sipptest.StartUASForTest(t, sipptest.Scenario(t, "uas.xml"))
	listen := sipptest.UDPPort(t)
	s.start(t, listen, uas.Opts.Port)
	return proxyFixture{proxy: fmt.Sprintf("127.0.0.1:%d", listen), uas: uas}
}

func logFailure(t *testing.T, res sipptest.Result) {
	t.Helper()
	t.Logf("sipp exit %d, stats: created=%d ok=%d failed=%d retrans=%d unexpected=%d recv-timeout=%d max-retrans=%d",
		res.ExitCode, res.Stats.Created, res.Stats.Successful, res.Stats.Failed, res.Stats.Retransmissions,
		res.Stats.Unexpected, res.Stats.TimeoutOnRecv, res.Stats.MaxUDPRetrans)
	if e := res.ErrorsLog(); e != "" {
		if len(e) > 3000 {
			e = e[:3000]
		}
		t.Logf("sipp unexpected messages:\n%s", e)
	}
}

func TestStateless(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not on PATH")
	}
	for _, s := range statelessServers() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			f := startFixture(t, s)

			t.Run("BasicCall200", func(t *testing.T) {
				const calls = 200
				res := sipptest.RunUACForTest(t, sipptest.UACOptions{
					Scenario: sipptest.Scenario(t, "uac.xml"),
					Target:   f.proxy,
					Calls:    calls,
					Rate:     100,
				})
				if res.Stats.Successful != calls || res.Stats.Failed != 0 || res.ExitCode != 0 {
					logFailure(t, res)
					t.Fatalf("want %d successful calls and 0 failed, got %d ok, %d failed (sipp exit %d)",
						calls, res.Stats.Successful, res.Stats.Failed, res.ExitCode)
				}
				if res.Stats.Retransmissions != 0 {
					t.Logf("note: %d retransmissions on loopback", res.Stats.Retransmissions)
				}
				if us, err := f.uas.Stats(); err == nil && us.Failed != 0 {
					t.Errorf("UAS saw %d failed calls", us.Failed)
				}
			})

			t.Run("OptionsToProxy200", func(t *testing.T) {
				res := sipptest.RunUACForTest(t, sipptest.UACOptions{
					Scenario: sipptest.Scenario(t, "options.xml"),
					Target:   f.proxy,
					Calls:    1,
				})
				if res.Stats.Successful != 1 || res.ExitCode != 0 {
					logFailure(t, res)
					t.Fatalf("OPTIONS to the proxy: want 200, call not successful")
				}
				if code, err := sipptest.ProbeOptions(f.proxy, 2e9); err != nil || code != 200 {
					t.Fatalf("raw OPTIONS probe: code %d, err %v", code, err)
				}
			})

			t.Run("MaxForwards0Gets483", func(t *testing.T) {
				res := sipptest.RunUACForTest(t, sipptest.UACOptions{
					Scenario: sipptest.Scenario(t, "maxfwd0.xml"),
					Target:   f.proxy,
					Calls:    1,
				})
				if res.Stats.Successful != 1 || res.ExitCode != 0 {
					logFailure(t, res)
					t.Fatalf("INVITE with Max-Forwards: 0: want 483")
				}
			})
		})
	}
}
