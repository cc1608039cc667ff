package digestauth

// SetCacheCap changes the cache cap of s (tests).
func SetCacheCap(s *Subscribers, n int) { s.max = n }
