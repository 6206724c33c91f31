package firefoxtest

import (
	"fmt"
	"strings"
)

// prefs is the profile's user.js. Firefox fetches much on its own at start
// (updates, experiments, block lists, safe-browsing lists, the OpenH264
// plugin); tests may send traffic only to loopback, so every such service is
// switched off or pointed at a closed loopback port (discardURL).
var prefs = map[string]any{
	// WebDriver BiDi only (1), not the retired CDP emulation.
	"remote.active-protocols": 1,

	// Start quietly on a blank page.
	"browser.shell.checkDefaultBrowser":       false,
	"browser.startup.page":                    0,
	"browser.startup.homepage":                "about:blank",
	"browser.newtabpage.enabled":              false,
	"browser.aboutwelcome.enabled":            false,
	"startup.homepage_welcome_url":            "about:blank",
	"startup.homepage_welcome_url.additional": "",
	"browser.tabs.warnOnClose":                false,
	"toolkit.startup.max_resumed_crashes":     -1,
	"browser.sessionstore.resume_from_crash":  false,
	"datareporting.policy.firstRunURL":        "",

	// No updates of the browser, its add-ons or its media plugins.
	"app.update.disabledForTesting":         true,
	"app.update.auto":                       false,
	"extensions.update.enabled":             false,
	"extensions.systemAddon.update.enabled": false,
	"extensions.getAddons.cache.enabled":    false,
	"extensions.blocklist.enabled":          false,
	"media.gmp-manager.updateEnabled":       false,
	"media.gmp-manager.url":                 discardURL,
	"media.gmp-gmpopenh264.autoupdate":      false,
	"browser.search.update":                 false,

	// No telemetry, studies, experiments or remote settings.
	"toolkit.telemetry.enabled":                          false,
	"toolkit.telemetry.unified":                          false,
	"toolkit.telemetry.server":                           discardURL,
	"toolkit.telemetry.reportingpolicy.firstRun":         false,
	"datareporting.policy.dataSubmissionEnabled":         false,
	"datareporting.healthreport.uploadEnabled":           false,
	"app.normandy.enabled":                               false,
	"app.normandy.api_url":                               "",
	"app.shield.optoutstudies.enabled":                   false,
	"messaging-system.rsexperimentloader.enabled":        false,
	"services.settings.server":                           discardURL,
	"browser.ping-centre.telemetry":                      false,
	"browser.newtabpage.activity-stream.feeds.telemetry": false,
	"browser.newtabpage.activity-stream.telemetry":       false,
	"browser.topsites.contile.enabled":                   false,
	"browser.region.network.url":                         "",
	"browser.region.update.enabled":                      false,
	"geo.provider.network.url":                           "",

	// No safe browsing lists, captive-portal or connectivity probes.
	"browser.safebrowsing.malware.enabled":            false,
	"browser.safebrowsing.phishing.enabled":           false,
	"browser.safebrowsing.downloads.enabled":          false,
	"browser.safebrowsing.blockedURIs.enabled":        false,
	"browser.safebrowsing.provider.google4.updateURL": "",
	"browser.safebrowsing.provider.mozilla.updateURL": "",
	"network.captive-portal-service.enabled":          false,
	"network.connectivity-service.enabled":            false,

	// No speculative connections, prefetches or DNS over HTTPS.
	"network.dns.disablePrefetch":             true,
	"network.prefetch-next":                   false,
	"network.http.speculative-parallel-limit": 0,
	"network.trr.mode":                        5,
	"security.OCSP.enabled":                   0,

	// Media: play without a gesture, no permission prompts, and let ICE
	// gather and use loopback candidates (off by default; the tests' peers
	// live on 127.0.0.1).
	"media.autoplay.default":                            0,
	"media.autoplay.blocking_policy":                    0,
	"media.navigator.permission.disabled":               true,
	"media.peerconnection.ice.loopback":                 true,
	"media.peerconnection.ice.obfuscate_host_addresses": false,
}

// discardURL is a closed port on loopback: a service that tries anyway
// fails at once, without leaving the machine.
const discardURL = "http://127.0.0.1:9/"

// userJS renders prefs in user.js syntax.
func userJS(extra map[string]any) string {
	var b strings.Builder
	write := func(m map[string]any) {
		for k, v := range m {
			switch v := v.(type) {
			case string:
				fmt.Fprintf(&b, "user_pref(%q, %q);\n", k, v)
			default:
				fmt.Fprintf(&b, "user_pref(%q, %v);\n", k, v)
			}
		}
	}
	write(prefs)
	write(extra)
	return b.String()
}
