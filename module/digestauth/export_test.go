package digestauth

import "context"

// Poll runs one poll of s now, as its goroutine does every PollInterval,
// and reports whether it reloaded the table (tests).
func Poll(s *Subscribers) (bool, error) { return s.poll(context.Background(), false) }

// Stopped reports whether the polling goroutine of s has returned.
func Stopped(s *Subscribers) bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}
