// Package all links every routing module into the binary.
package all

import (
	_ "github.com/veloxsip/velox/module/digestauth"  // auth
	_ "github.com/veloxsip/velox/module/forward"     // forward
	_ "github.com/veloxsip/velox/module/lookup"      // lookup
	_ "github.com/veloxsip/velox/module/looseroute"  // loose-route
	_ "github.com/veloxsip/velox/module/maxforwards" // max-forwards
	_ "github.com/veloxsip/velox/module/recordroute" // record-route
	_ "github.com/veloxsip/velox/module/registrar"   // registrar
	_ "github.com/veloxsip/velox/module/relay"       // relay
	_ "github.com/veloxsip/velox/module/reply"       // reply
	_ "github.com/veloxsip/velox/module/sanity"      // sanity
)
